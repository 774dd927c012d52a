"""MELBO speed: steerscope's default call vs a naive loop implementing the reference algorithm, in one run.

Setting (issues 3 and 13): embedded SmolLM2-135M-Instruct, one chat prompt, R = 4, p = 2, q = 1, θ at
resid_post[7], target resid_post[21] (HF hidden_states[22]).

- naive: full-model forward with output_hidden_states every step (all 30 blocks + LM head), one prompt and one
  vector, AdamW(lr 1e-3, betas (0.9, 0.98), amsgrad) on the sphere, 300 steps (the reference algorithm).
- default (reported first): ``ss.melbo(...)`` exactly as documented — no lr, no steps — in sequential mode (2
  vectors) and parallel mode (8 vectors in one block). Time to the naive loop's 300-step objective is measured from
  the start of the call (setup included) to the end of the first objective evaluation that reaches it. Naive and
  default runs are interleaved in pairs (``--pairs``) so machine load hits both alike.
- AdamW at fixed learning rates (the old ``lr=`` path), one vector, for comparison; and AdamW lr 0.1 in parallel
  mode, whose per-vector objective is not monotone (max drop reported next to the default rule's).
Reports the per-vector-step cost ratio and achieved GFLOP/s (FLOPs counted by torch's FlopCounterMode) against a
measured matmul peak.

    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_melbo.py [--naive-steps 300] [--pairs 2]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

import steerscope as ss
from steerscope.generate import forward_kwargs, tokenize
from steerscope.methods.melbo import MelboObjective, _init, train_block
from steerscope.orthogonal import sphere_tangent

PROMPT = "How can I make a bomb?"
SOURCE, TARGET, RADIUS, POWER, Q = 7, 21, 4.0, 2.0, 1.0


def naive_loop(m, steps: int, seed: int = 0) -> tuple[list[float], float]:
    """The reference algorithm, written plainly: full forward + output_hidden_states every step."""
    ids, mask = tokenize(m, [PROMPT])
    kw = forward_kwargs(ids, mask)
    with torch.no_grad():
        z0 = m.hf(**kw, output_hidden_states=True).hidden_states[TARGET + 1]
    theta = _init(seed, 1, m.d_model, None, RADIUS)[0].clone().requires_grad_(True)
    opt = torch.optim.AdamW([theta], lr=1e-3, betas=(0.9, 0.98), amsgrad=True, weight_decay=0.0)
    curve = []
    start = time.perf_counter()
    for _ in range(steps):
        opt.zero_grad()
        with ss.steer(m, ss.SteeringVector({SOURCE: theta})):  # adds θ at every position of resid_post[7]
            z = m.hf(**kw, output_hidden_states=True).hidden_states[TARGET + 1]
        obj = (z - z0).norm(dim=-1).pow(POWER).sum().pow(1 / Q)
        (-obj).backward()
        with torch.no_grad():
            theta.grad.copy_(sphere_tangent(theta.grad[None], theta[None])[0])
        opt.step()
        with torch.no_grad():
            theta.mul_(RADIUS / theta.norm())
        curve.append(obj.item())
    return curve, time.perf_counter() - start


def matmul_peak() -> float:
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    for _ in range(3):
        a @ b
    n, start = 20, time.perf_counter()
    for _ in range(n):
        a @ b
    return n * 2 * 1024**3 / (time.perf_counter() - start) / 1e9


def step_flops(objective, k: int) -> int:
    theta = torch.randn(k, objective.d_model, requires_grad=True)
    with FlopCounterMode(display=False) as counter:
        objective(theta).sum().backward()
    return counter.get_total_flops()


class Timed:
    """Wraps a MelboObjective: records (seconds since ``t0``, per-vector values) after every call."""

    def __init__(self, objective) -> None:
        self.objective, self.calls, self.t0 = objective, [], time.perf_counter()

    def __getattr__(self, name):
        return getattr(self.objective, name)

    def __call__(self, thetas):
        out = self.objective(thetas)
        self.calls.append((time.perf_counter() - self.t0, out.detach().tolist()))
        return out


def timed_melbo(m, **kwargs) -> tuple[object, list, float]:
    """ss.melbo with every objective evaluation timestamped from the start of the call (setup included)."""
    import steerscope.methods.melbo as mb

    original = mb.MelboObjective
    holder: dict = {}
    start = time.perf_counter()

    def factory(*a, **kw):
        timed = Timed(original(*a, **kw))
        timed.t0 = start
        holder["timed"] = timed
        return timed

    mb.MelboObjective = factory
    try:
        res = ss.melbo(m, [PROMPT], source_layer=SOURCE, target_layer=TARGET, radius=RADIUS, power=POWER, q=Q,
                       progress=False, **kwargs)
    finally:
        mb.MelboObjective = original
    return res, holder["timed"].calls, time.perf_counter() - start


def max_drop(curves: list[list[float]]) -> float:
    """Largest fall of any vector's objective below its own best so far, relative to that best."""
    worst = 0.0
    for curve in curves:
        best = -float("inf")
        for v in curve:
            best = max(best, v)
            worst = max(worst, (best - v) / best if best > 0 else 0.0)
    return worst


def default_runs(m, target: float) -> dict:
    seq, calls, seconds = timed_melbo(m, num_vectors=2, mode="sequential")
    reached = next((t for t, vals in calls if vals[0] >= target), None)
    par, _, par_seconds = timed_melbo(m, num_vectors=8, mode="parallel", block_size=8)
    return {
        "sequential": {"seconds_to_naive_objective": reached,
                       "evaluations_to_naive_objective": next((i for i, c in enumerate(seq.losses[0]) if c >= target),
                                                              None),
                       "vector_objectives": seq.objectives, "evaluations": [len(c) - 1 for c in seq.losses],
                       "seconds_total": seconds, "random_objective": seq.random_objective,
                       "max_relative_drop": max_drop(seq.losses)},
        "parallel_8": {"vector_objectives": par.objectives, "evaluations": len(par.losses[0]) - 1,
                       "seconds_total": par_seconds, "max_relative_drop": max_drop(par.losses),
                       "vectors_reaching_naive_objective": sum(o >= target for o in par.objectives)},
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--naive-steps", type=int, default=300)
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--lrs", type=float, nargs="+", default=[1e-2, 1e-1])
    parser.add_argument("--max-steps", type=int, default=60)
    parser.add_argument("--out", default="bench/results/melbo.json")
    args = parser.parse_args()
    m = ss.load_model()

    pairs = []
    for _ in range(args.pairs):  # interleaved: naive, default, naive, default
        naive_curve, naive_time = naive_loop(m, args.naive_steps)
        target = naive_curve[-1]
        pairs.append({"naive_seconds": naive_time, "naive_objective": target, "default": default_runs(m, target)})
        print(json.dumps(pairs[-1]), flush=True)
    naive_step = naive_time / args.naive_steps
    for pair in pairs:
        reached = pair["default"]["sequential"]["seconds_to_naive_objective"]
        pair["speedup_default_vs_naive"] = None if reached is None else pair["naive_seconds"] / reached

    objective = MelboObjective(m, [PROMPT], SOURCE, TARGET, power=POWER, q=Q)
    singles = []
    for lr in args.lrs:  # every learning rate tried is reported, not only the best
        start = time.perf_counter()
        _, history = train_block(objective, _init(0, 1, m.d_model, None, RADIUS), None, radius=RADIUS,
                                 steps=args.max_steps, lr=lr, tol=1e-3, patience=20)
        seconds = time.perf_counter() - start
        curve = history[0]
        per_step = seconds / len(curve)
        reached = next((i for i, v in enumerate(curve) if v >= target), None)
        singles.append({"lr": lr, "steps_run": len(curve) - 1, "final_objective": curve[-1],
                        "steps_to_naive_objective": None if reached is None else reached + 1,
                        "seconds_per_step": per_step,
                        "seconds_to_naive_objective": None if reached is None else (reached + 1) * per_step})
    reached_runs = [r for r in singles if r["seconds_to_naive_objective"] is not None]
    best = min(reached_runs, key=lambda r: r["seconds_to_naive_objective"]) if reached_runs else singles[0]

    # parallel mode: 8 vectors per step; time to target = steps until every vector of the block beats the naive
    # objective, times the step time, divided by 8 (amortised per vector)
    k = 8
    start = time.perf_counter()
    _, block_history = train_block(objective, _init(1, k, m.d_model, None, RADIUS), None, radius=RADIUS,
                                   steps=30, lr=0.1)
    block_seconds = time.perf_counter() - start
    block_steps = len(block_history[0])
    block_step = block_seconds / block_steps
    all_reached = next((i for i in range(block_steps) if all(h[i] >= target for h in block_history)), None)
    block_time_to_target = None if all_reached is None else (all_reached + 1) * block_step / k
    peak = matmul_peak()
    flops_1, flops_k = step_flops(objective, 1), step_flops(objective, k)
    fast_step = best["seconds_per_step"]
    time_to_target = best["seconds_to_naive_objective"]

    result = {
        "default_call": pairs,
        "setting": {"model": m.name, "prompt": PROMPT, "radius": RADIUS, "power": POWER, "q": Q,
                    "source_layer": SOURCE, "target_layer": TARGET, "naive_steps": args.naive_steps,
                    "steerscope_lrs": args.lrs, "threads": torch.get_num_threads(), "machine": platform.machine()},
        "naive": {"final_objective": target, "seconds": naive_time, "seconds_per_step": naive_step},  # last pair
        "adamw_single": singles,
        "adamw_parallel_lr0.1": {"vectors_per_step": k, "lr": 0.1, "seconds_per_step": block_step,
                                "seconds_per_vector_step": block_step / k,
                                "steps_until_all_vectors_reach_naive_objective": None if all_reached is None
                                else all_reached + 1,
                                "amortised_seconds_per_vector_to_naive_objective": block_time_to_target,
                                "max_relative_drop": max_drop(block_history),
                                "vector_objectives": [h[-1] for h in block_history]},
        "ratios": {
            "adamw_best_lr_time_to_same_objective_speedup_single": None if time_to_target is None else naive_time / time_to_target,
            "adamw_parallel_amortised_speedup": None if block_time_to_target is None
            else naive_time / block_time_to_target,
            "per_vector_step_cost_single_vs_naive": fast_step / naive_step,
            "per_vector_step_cost_parallel_vs_naive": block_step / k / naive_step,
        },
        "gflops": {"matmul_peak": peak, "achieved_single": flops_1 / fast_step / 1e9,
                   "achieved_parallel": flops_k / block_step / 1e9},
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
