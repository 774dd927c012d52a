"""Fidelity and time of LoRA exports on the embedded SmolLM2, side by side: exact `bias` vs fitted `rank1`, default
settings (48 calibration prompts, 16 held-out prompts, 24 generated tokens each), for a contrastive vector at
resid_post[15]. Per row: seconds for the whole export (fit + held-out evaluation), and for rank1 also the fit alone
(``evaluate=False``); the bias export (no fit: its time is the held-out evaluation) is the in-run yardstick. Every
adapter is also loaded through PEFT (``PeftModel.from_pretrained``) and its logits on the held-out prompts compared
with steering: max |Δlogit| and max next-token KL.

Run: OMP_NUM_THREADS=1 .venv/bin/python bench/export_fidelity.py   -> bench/results/export_fidelity.json
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


@torch.no_grad()
def peft_vs_steering(m, v, scale: float, adapter_dir: Path) -> dict:
    """Max |logit difference| and max KL(steered || PEFT adapter) over the real tokens of the held-out prompts."""
    from peft import PeftModel

    from steerscope.export.peft_lora import default_prompts
    from steerscope.generate import forward_kwargs

    ids, mask = tokenize(m, default_prompts("heldout"))
    kw = forward_kwargs(ids, mask)
    real = mask.bool()
    with ss.steer(m, v, scale):
        ref = m.hf(**kw).logits[real].double()
    served = PeftModel.from_pretrained(m.hf, str(adapter_dir))
    try:
        out = served(**kw).logits[real].double()
    finally:
        served.unload()
    logp, logq = torch.log_softmax(ref, -1), torch.log_softmax(out, -1)
    kl = (logp.exp() * (logp - logq)).sum(-1).clamp_min(0)
    return {"peft_max_abs_logit_diff": float((out - ref).abs().max()), "peft_kl_max": float(kl.max()),
            "peft_kl_mean": float(kl.mean())}


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
                       "seconds": round(time.perf_counter() - start, 1), **res.fidelity["heldout"],
                       **peft_vs_steering(m, v, scale, Path(tmp) / f"{method}-{scale}")}
                if method == "rank1":
                    start = time.perf_counter()
                    ss.export_lora(m, v, Path(tmp) / "fit-only", method=method, scale=scale, evaluate=False)
                    row["seconds_fit_only"] = round(time.perf_counter() - start, 1)
                    row["candidates"] = {k: c["validation"]["site_rel_error_rms"]
                                         for k, c in res.fidelity["layers"][str(LAYER)]["candidates"].items()}
                rows.append(row)
                print(json.dumps(row), flush=True)
    previous = {"note": "before issue 13 (rank1: separate generate calls per split, full float64 fidelity per "
                        "candidate); same script, another run",
                "seconds": {"bias 4": 37.9, "rank1 4": 167.9, "bias 8": 36.2, "rank1 8": 96.9},
                "kl_mean": {"rank1 4": 1.687e-4, "rank1 8": 6.503e-4}}
    write_json(Path(__file__).parent / "results" / "export_fidelity.json",
               {"model": m.name, "layer": LAYER, "rows": rows, "threads": torch.get_num_threads(),
                "previous": previous})


if __name__ == "__main__":
    main()
