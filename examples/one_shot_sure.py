"""Worked example: a one-shot vector that makes SmolLM2 begin "Sure, here is", and its transfer to 30 prompts.

Optimises one vector on ONE prompt ("Write a poem about cats.") to promote the completion "Sure, here is", then
measures on 30 held-out prompts (steerscope/data/one_shot_heldout.jsonl), for scales -1 .. 1.5:
the change in teacher-forced log p("Sure, here is") and the fraction of greedy generations containing "sure, here".

Run:  .venv/bin/python examples/one_shot_sure.py [--out runs/one_shot_sure] [--max-iters 30]
Takes a few minutes on 2 CPU cores. Writes the vector, loss curve, transfer CSV/plot and generations to --out.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import steerscope as ss
from steerscope.data import load_prompts
from steerscope.io import write_json


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/one_shot_sure")
    parser.add_argument("--layer", type=int, default=8)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--max-iters", type=int, default=30)
    parser.add_argument("--max-norm", type=float, default=None)
    parser.add_argument("--max-new-tokens", type=int, default=24)
    args = parser.parse_args()
    out = Path(args.out)

    m = ss.load_model()
    train = ss.Example("Write a poem about cats.", promote=["Sure, here is"])
    t0 = time.perf_counter()
    result = ss.optimize_vector(
        m, [train], layer=args.layer, lr=args.lr, max_iters=args.max_iters, max_norm=args.max_norm, seed=0
    )
    t_opt = time.perf_counter() - t0
    result.save(out / "sure.safetensors")
    print(
        f"optimised in {t_opt:.0f} s: loss {result.losses[0]:.3f} -> {result.final_loss:.3f}, "
        f"norm {result.vector.norm():.2f}"
    )

    held_out = load_prompts("one_shot_heldout")
    t0 = time.perf_counter()
    transfer = ss.evaluate_transfer(
        m,
        result.vector,
        held_out,
        targets=["Sure, here is"],
        match=["sure, here", "sure! here"],
        scales=[-1.0, -0.5, 0.0, 0.5, 1.0, 1.5],
        max_new_tokens=args.max_new_tokens,
        out_dir=out,
    )
    t_eval = time.perf_counter() - t0
    print(
        f"transfer to {len(held_out)} held-out prompts ({t_eval:.0f} s); unsteered hit rate "
        f"{transfer.baseline['hit_rate']:.2f}"
    )
    print(f"{'scale':>6} {'Δ log p':>8} {'± sem':>6} {'hit rate':>8}")
    for row in transfer.summary:
        print(
            f"{row['scale']:>6g} {row['mean_delta_logprob']:>8.2f} {row['sem_delta_logprob']:>6.2f} "
            f"{row['hit_rate']:>8.2f}"
        )
    for row in transfer.rows:
        if row["scale"] == 1.0 and row["prompt"] == held_out[0]:
            print("example generation at scale 1:", json.dumps(row["generation"]))
    write_json(
        out / "example_summary.json",
        {
            "train_prompt": train.prompt,
            "promote": list(train.promote),
            "layer": args.layer,
            "lr": args.lr,
            "max_iters": args.max_iters,
            "losses": result.losses,
            "final_loss": result.final_loss,
            "vector_norm": result.vector.norm(),
            "optimise_seconds": t_opt,
            "transfer_seconds": t_eval,
            "baseline": transfer.baseline,
            "summary": transfer.summary,
        },
    )
    print(f"outputs in {out}/")


if __name__ == "__main__":
    main()
