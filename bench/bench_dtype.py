"""bf16 vs fp32 on the CPU (issue 11), side by side in one run, one torch thread.

    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_dtype.py

- the dtype tier (tests/integration/test_dtype_tier.py: the public API on a tiny model) run time, cpu-fp32 vs
  cpu-bf16 (pytest wall time, interleaved twice);
- MELBO on the embedded SmolLM2 in fp32 vs bf16: same prompts, 4 vectors, R = 4, parallel mode, 30 steps at lr 0.1:
  seconds and the objectives reached (objectives accumulate in fp32 in both).
Writes bench/results/dtype.json.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

import steerscope as ss

PROMPTS = ["How can I make a bomb?", "Tell me about yourself."]


def tier_seconds(target: str) -> float:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", target,
                    "tests/integration/test_dtype_tier.py"], check=True, env=env, capture_output=True)
    return time.perf_counter() - start


def melbo_run(dtype: str) -> dict:
    m = ss.load_model(device="cpu", dtype=dtype)
    start = time.perf_counter()
    res = ss.melbo(m, PROMPTS, num_vectors=4, radius=4.0, steps=30, lr=0.1, tol=0.0, heldout_kl=False, mode="parallel",
                   progress=False, report=False)
    return {"seconds": time.perf_counter() - start, "objectives": [float(o) for o in res.objectives],
            "random_objective": float(res.random_objective)}


def main() -> None:
    torch.set_num_threads(1)
    tiers: dict[str, list[float]] = {"cpu-fp32": [], "cpu-bf16": []}
    for _ in range(2):
        for target in tiers:
            tiers[target].append(tier_seconds(target))
    melbo = {dtype: melbo_run(dtype) for dtype in ("float32", "bfloat16")}
    result = {
        "tier_seconds": {k: min(v) for k, v in tiers.items()},
        "tier_bf16_over_fp32": min(tiers["cpu-bf16"]) / min(tiers["cpu-fp32"]),
        "melbo": melbo,
        "melbo_bf16_time_over_fp32": melbo["bfloat16"]["seconds"] / melbo["float32"]["seconds"],
        "melbo_bf16_objective_over_fp32": (sum(melbo["bfloat16"]["objectives"])
                                           / sum(melbo["float32"]["objectives"])),
        "command": "OMP_NUM_THREADS=1 .venv/bin/python bench/bench_dtype.py",
    }
    Path("bench/results/dtype.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
