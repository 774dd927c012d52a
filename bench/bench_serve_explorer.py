"""Explorer request latency and report writing time on the embedded model, measured side by side in one run.

    .venv/bin/python bench/bench_serve_explorer.py

- one explorer request (unsteered + k vectors, 32 new tokens) through the server app (/explore/api/generate),
  whose k + 1 rows are prefilled and decoded together by the server's scheduler, vs the same k + 1 completions as
  separate generate calls; k = 1, 4, 8
- write_report on a MELBO-like run of 8 vectors x 6 prompts (real completions from the embedded model)
Writes bench/results/explorer.json.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import torch
from fastapi.testclient import TestClient

import steerscope as ss
from steerscope.app import ExplorerSource, create_app
from steerscope.io import write_csv, write_json
from steerscope.samples import write_samples

TOKENS = 32
REPEATS = 2  # interleaved; the minimum of each side is kept (the machine is shared)
PROMPT = "Tell me about yourself."
LAYER = 7


def main() -> None:
    m = ss.load_model()
    torch.manual_seed(0)
    vs = ss.VectorSet({LAYER: torch.nn.functional.normalize(torch.randn(8, m.d_model), dim=-1) * 8.0}, method="bench")
    source = ExplorerSource(vs, [{"index": i, "norm": 8.0} for i in range(8)], "bench", m.name)
    client = TestClient(create_app(m, explorer=source), base_url="http://127.0.0.1/explore/")
    # warm-up of both paths and batch shapes (first calls of a shape are slow on CPU)
    client.post("api/generate", json={"prompt": PROMPT, "vectors": [0], "max_new_tokens": 4})
    ss.generate(m, [PROMPT], max_new_tokens=4)
    ss.generate(m, [PROMPT], vectors=vs[0], max_new_tokens=4)
    results = {"model": m.name, "max_new_tokens": TOKENS, "torch_threads": torch.get_num_threads(),
               "repeats": REPEATS, "requests": []}
    for k in (1, 4, 8):
        body = {"prompt": PROMPT, "vectors": list(range(k)), "scale": 1.0, "max_new_tokens": TOKENS}
        batched, separate = float("inf"), float("inf")
        for _ in range(REPEATS):
            start = time.perf_counter()
            r = client.post("api/generate", json=body)
            batched = min(batched, time.perf_counter() - start)
            assert r.status_code == 200, r.text
            start = time.perf_counter()
            for v in [None] + [vs[i] for i in range(k)]:
                ss.generate(m, [PROMPT], vectors=v, scales=1.0, max_new_tokens=TOKENS)
            separate = min(separate, time.perf_counter() - start)
        row = {"vectors": k, "rows": k + 1, "request_s": round(batched, 2), "separate_generates_s": round(separate, 2),
               "speedup": round(separate / batched, 2)}
        print(row, flush=True)
        results["requests"].append(row)

    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp)
        vs.save(run / "vectors.safetensors")
        write_json(run / "config.json", {"method": "melbo", "model_name": m.name, "n_layers": m.n_layers,
                                         "d_model": m.d_model})
        write_csv(run / "vectors.csv", [{"index": i, "norm": 8.0, "objective": float(i)} for i in range(8)])
        write_csv(run / "losses.csv", [{"vector": i, "step": s, "loss": 1.0 / (s + 1)} for i in range(8) for s in range(40)])
        prompts = ["Tell me about yourself.", "How do I bake bread?", "Write a haiku about rain.",
                   "What is a prime number?", "Give me advice on sleep.", "Describe Paris."]
        write_samples(m, vs, {"heldout": prompts}, run / "samples.jsonl", max_new_tokens=32, progress=False)
        start = time.perf_counter()
        path = ss.write_report(run)
        results["report"] = {"vectors": 8, "prompts": len(prompts), "seconds": round(time.perf_counter() - start, 2),
                             "kilobytes": round(path.stat().st_size / 1024, 1)}
        print(results["report"], flush=True)
    out = Path(__file__).parent / "results" / "explorer.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
