"""kl_divergence: many vectors in one batched call vs one call per vector, side by side in one run.

    python bench/bench_kl.py [--vectors 16] [--prompts 4]

Writes bench/results/bench_kl.json with both timings, their ratio, and the largest difference between the
two results (they must agree).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

import steerscope as ss
from steerscope.io import write_json

PROMPTS = ["Tell me about your favourite food.", "How do I learn to swim?", "Write a short poem about the sea.",
           "What is the capital of France?", "Give me three tips for better sleep.", "Why is the sky blue?",
           "Describe a rainy day in a city.", "How do plants make food?"]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--vectors", type=int, default=16)
    p.add_argument("--prompts", type=int, default=4)
    args = p.parse_args()
    m = ss.load_model()
    g = torch.Generator().manual_seed(0)
    vectors = [ss.SteeringVector({10: torch.randn(m.d_model, generator=g) * 8}) for _ in range(args.vectors)]
    prompts = PROMPTS[: args.prompts]
    ss.kl_divergence(m, vectors[:1], prompts)  # warm-up
    t = time.perf_counter()
    batched = ss.kl_divergence(m, vectors, prompts, batch_size=64)
    t_batched = time.perf_counter() - t
    t = time.perf_counter()
    looped = torch.cat([ss.kl_divergence(m, [v], prompts) for v in vectors])
    t_looped = time.perf_counter() - t
    out = {"n_vectors": args.vectors, "n_prompts": args.prompts, "threads": torch.get_num_threads(),
           "seconds_batched": t_batched, "seconds_one_call_per_vector": t_looped,
           "speedup": t_looped / t_batched, "max_abs_difference": float((batched - looped).abs().max())}
    print(out)
    write_json(Path(__file__).parent / "results" / "bench_kl.json", out)


if __name__ == "__main__":
    main()
