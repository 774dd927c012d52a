"""Fidelity of LoRA exports on the embedded SmolLM2, side by side: exact `bias` vs fitted `rank1`, default settings
(48 calibration prompts, 16 held-out prompts, 24 generated tokens each), for a contrastive vector at resid_post[15].

Run: .venv/bin/python bench/export_fidelity.py   -> bench/results/export_fidelity.json
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import torch

import steerscope as ss
from steerscope.generate import tokenize
from steerscope.hooks import capture
from steerscope.io import write_json

LAYER, SCALES = 15, (4.0, 8.0)


def contrastive(m):
    pos = ["I am so happy today!", "What a wonderful, joyful day.", "I love everything about this."]
    neg = ["I am so sad today.", "What a terrible, miserable day.", "I hate everything about this."]

    def mean(prompts):
        ids, mask = tokenize(m, prompts)
        acts = capture(m, ids, mask, [LAYER])[LAYER]
        return (acts * mask[..., None]).sum((0, 1)) / mask.sum()

    return ss.SteeringVector({LAYER: mean(pos) - mean(neg)}, model_type=m.model_type, method="contrastive")


def main() -> None:
    if "--threads" in sys.argv:
        torch.set_num_threads(int(sys.argv[sys.argv.index("--threads") + 1]))
    m = ss.load_model()
    v = contrastive(m)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for scale in SCALES:
            for method in ("bias", "rank1"):
                start = time.perf_counter()
                res = ss.export_lora(m, v, Path(tmp) / f"{method}-{scale}", method=method, scale=scale)
                row = {"method": method, "scale": scale, "vector_norm": v.norm(), "modules": res.modules,
                       "seconds": round(time.perf_counter() - start, 1), **res.fidelity["heldout"]}
                if method == "rank1":
                    row["candidates"] = {k: c["validation"]["kl_mean"]
                                         for k, c in res.fidelity["layers"][str(LAYER)]["candidates"].items()}
                rows.append(row)
                print(json.dumps(row), flush=True)
    write_json(Path(__file__).parent / "results" / "export_fidelity.json",
               {"model": m.name, "layer": LAYER, "rows": rows, "threads": torch.get_num_threads()})


if __name__ == "__main__":
    main()
