"""Steering overhead, per-row batching and model loading on the embedded model, measured side by side in one run.

    .venv/bin/python bench/bench_steer.py

- generation tokens/s unsteered vs steered (one vector at resid_post[10]) at batch 1 and 16, interleaved repeats
- 16 different vectors x 1 prompt: one batched generate with per-row vectors vs 16 sequential steered generates
- cold load (GGUF dequantisation into an empty cache) vs warm load (cached safetensors)
Writes bench/results/steer.json.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

import steerscope as ss

TOKENS = 32
PROMPT = "Write a short paragraph about the history of bicycles."


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def gen(m, prompts, vectors=None) -> None:
    # min_new_tokens: every row generates exactly TOKENS tokens, so tokens/s compare fairly
    ss.generate(m, prompts, vectors=vectors, max_new_tokens=TOKENS, min_new_tokens=TOKENS, seed=0)


def overhead(m, batch: int, repeats: int) -> dict:
    v = ss.SteeringVector({10: torch.randn(m.d_model) * 4})
    prompts = [PROMPT] * batch
    plain, steered = [], []
    gen(m, prompts)  # warm-up
    for _ in range(repeats):  # interleaved so drift in machine load hits both equally
        plain.append(timed(lambda: gen(m, prompts)))
        steered.append(timed(lambda: gen(m, prompts, v)))
    p, s = statistics.median(plain), statistics.median(steered)
    return {"batch": batch, "unsteered_tokens_per_s": batch * TOKENS / p, "steered_tokens_per_s": batch * TOKENS / s,
            "overhead_fraction": s / p - 1}


def per_row(m) -> dict:
    vectors = [ss.SteeringVector({10: torch.randn(m.d_model, generator=torch.Generator().manual_seed(i)) * 4})
               for i in range(16)]
    batched = timed(lambda: gen(m, [PROMPT] * 16, vectors))
    sequential = timed(lambda: [gen(m, [PROMPT], v) for v in vectors])
    return {"vectors": 16, "batched_seconds": batched, "sequential_seconds": sequential,
            "speedup": sequential / batched}


def loading() -> dict:
    from steerscope.models import load as load_mod

    with tempfile.TemporaryDirectory() as cache:
        old = os.environ.get("STEERSCOPE_CACHE")
        os.environ["STEERSCOPE_CACHE"] = cache
        try:
            cold = timed(lambda: load_mod.load_model())
            warm = timed(lambda: load_mod.load_model())
        finally:
            if old is None:
                os.environ.pop("STEERSCOPE_CACHE")
            else:
                os.environ["STEERSCOPE_CACHE"] = old
    return {"cold_gguf_seconds": cold, "warm_cached_seconds": warm, "speedup": cold / warm}


def main() -> None:
    m = ss.load_model()
    result = {
        "model": m.name, "max_new_tokens": TOKENS, "threads": torch.get_num_threads(),
        "overhead": [overhead(m, 1, 5), overhead(m, 16, 3)],
        "per_row_batching": per_row(m),
        "loading": loading(),
    }
    out = Path("bench/results/steer.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
