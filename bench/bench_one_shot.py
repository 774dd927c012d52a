"""One-shot optimisation: steerscope's replayed batch vs the naive reference loop, same example, same steps.

Both start from the same random vector with the same hyperparameters (Adam, lr, coldness, max_norm) and run the same
number of steps on one example with several completions to promote and suppress. The naive loop runs one full
steered forward (all 30 blocks + LM head at every position) and one backward per completion per step, accumulating
the gradient; steerscope runs blocks < L once, then one padded, replayed forward/backward of all completions per
step with the LM head at the completion positions only, the completions packed behind one copy of the prompt
(share_prompt). An ablation runs the replayed batch with one row per completion (share_prompt=False). The loss
curves must agree to numerical noise.

Run:  .venv/bin/python bench/bench_one_shot.py [--steps 10] [--layer 8] [--rounds 2]
Writes bench/results/one_shot.json.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

import steerscope as ss
from steerscope.io import write_json
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the oracle lives with the tests
from reference.one_shot_naive import optimize_vector_naive  # noqa: E402

EXAMPLE = ss.Example(
    "Write a poem about cats.",
    promote=["Sure, here is", "Sure! Here's a poem"],
    suppress=["In the realm", "I'm sorry, but"],
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--layer", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2, help="alternate fast/naive runs this many times")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "one_shot.json"))
    args = parser.parse_args()

    m = ss.load_model()
    hp = {
        "layer": args.layer,
        "site": "resid_pre",
        "lr": 0.05,
        "max_iters": args.steps,
        "max_norm": 20.0,
        "coldness": 0.7,
        "operator": "add",
    }
    g = torch.Generator().manual_seed(0)
    init = torch.randn(m.d_model, generator=g)
    init = init / init.norm()

    fast_step, rows_step, naive_step, fast_total, naive_total = [], [], [], [], []
    fast_losses = naive_losses = None
    for r in range(args.rounds):  # interleaved so background load hits both alike
        t0 = time.perf_counter()
        fast = ss.optimize_vector(m, [EXAMPLE], init=init, tol=0.0, progress=False, **hp)
        fast_total.append(time.perf_counter() - t0)
        fast_step += [row["seconds"] for row in fast.history]
        # ablation: replayed and batched, but one padded row per completion (no shared prompt)
        rows = ss.optimize_vector(m, [EXAMPLE], init=init, tol=0.0, progress=False, share_prompt=False, **hp)
        rows_step += [row["seconds"] for row in rows.history]
        t0 = time.perf_counter()
        v_naive, naive_losses, seconds = optimize_vector_naive(m, [EXAMPLE], init=init, **hp)
        naive_total.append(time.perf_counter() - t0)
        naive_step += seconds
        fast_losses = fast.losses
        print(f"round {r}: fast {fast_total[-1]:.1f} s, naive {naive_total[-1]:.1f} s")

    diffs = [abs(a - b) for a, b in zip(fast_losses, naive_losses)]
    rel = [d / max(abs(b), 1e-12) for d, b in zip(diffs, naive_losses)]
    vec_diff = float((fast.vector.directions[args.layer] - v_naive.cpu()).abs().max())
    med_fast, med_naive = statistics.median(fast_step), statistics.median(naive_step)
    med_rows = statistics.median(rows_step)
    rows_diff = max(abs(a - b) for a, b in zip(rows.losses, naive_losses))
    n_completions = len(EXAMPLE.promote) + len(EXAMPLE.suppress)
    result = {
        "what": "one-shot optimisation, per-step time: steerscope (replayed, batched) vs naive reference loop",
        "model": m.name,
        "layer": args.layer,
        "steps": args.steps,
        "rounds": args.rounds,
        "completions": n_completions,
        "example": EXAMPLE.to_dict(),
        "hyperparameters": hp,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "load_avg_1min": os.getloadavg()[0],
        "torch": torch.__version__,
        "python": platform.python_version(),
        "fast_step_seconds_median": med_fast,
        "naive_step_seconds_median": med_naive,
        "speedup_per_step": med_naive / med_fast,
        "rows_variant_step_seconds_median": med_rows,
        "speedup_per_step_rows_variant": med_naive / med_rows,
        "rows_variant_max_abs_loss_diff": rows_diff,
        "fast_total_seconds": fast_total,
        "naive_total_seconds": naive_total,
        "speedup_total": statistics.median(naive_total) / statistics.median(fast_total),
        "loss_fast": fast_losses,
        "loss_naive": naive_losses,
        "max_abs_loss_diff": max(diffs),
        "max_rel_loss_diff": max(rel),
        "max_abs_vector_diff": vec_diff,
        "curves_agree": max(rel) < 1e-4,
        "command": "python bench/bench_one_shot.py "
        + f"--steps {args.steps} --layer {args.layer} --rounds {args.rounds}",
    }
    write_json(args.out, result)
    print(
        f"per step: fast {med_fast:.3f} s (one row per completion: {med_rows:.3f} s), naive {med_naive:.3f} s -> "
        f"{med_naive / med_fast:.2f}x; "
        f"loss curves max |diff| {max(diffs):.2e} (rel {max(rel):.2e}); wrote {args.out}"
    )


if __name__ == "__main__":
    main()
