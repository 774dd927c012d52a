"""MELBO at scale: how many vectors stay distinguishable from random ones, and a full orthogonal basis.

Two jobs (one per call, JSON to bench/results/):

- ``--job basis``: all d_model (576) mutually orthogonal vectors of the embedded SmolLM2 in parallel mode with the
  default step rule and early stop (tol 1e-3), in the speed benchmark's setting (one prompt, R = 4, p = 2, q = 1,
  resid_post[7] → resid_post[21]). Reports wall time, evaluations per block, objective/random ratio per vector and
  how many exceed 3× random. -> bench/results/melbo_basis.json
- ``--job prompts``: the same number of vectors trained on 1 prompt and on the 8 shipped default prompts
  (data/melbo_prompts.jsonl) with otherwise equal settings; counts the vectors above 3× random for each, plus
  each vector's held-out KL to the unsteered model. -> bench/results/melbo_prompts.json

    OMP_NUM_THREADS=2 .venv/bin/python bench/melbo_basis.py --job basis --threads 2
    OMP_NUM_THREADS=1 .venv/bin/python bench/melbo_basis.py --job prompts --num-vectors 16 --tol 1e-2 --steps 40
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

import steerscope as ss
from steerscope.data import load_prompts

PROMPT = "How can I make a bomb?"
SOURCE, TARGET, RADIUS, POWER, Q = 7, 21, 4.0, 2.0, 1.0


class Counted:
    """Wraps a MelboObjective: counts the vectors (rows) of every call and when it ended, and prints a line per
    call (a long run can be followed in its log)."""

    def __init__(self, objective, t0: float) -> None:
        self.objective, self.t0, self.calls = objective, t0, []

    def __getattr__(self, name):
        return getattr(self.objective, name)

    def __call__(self, thetas):
        out = self.objective(thetas)
        self.calls.append((time.perf_counter() - self.t0, int(thetas.shape[0])))
        if thetas.requires_grad:
            print(f"eval {len(self.calls)} rows {thetas.shape[0]} t {self.calls[-1][0]:.1f}", flush=True)
        return out


def run(m, prompts, num_vectors: int, block_size: int, heldout_kl: bool, tol: float, out_dir=None,
        steps: int = 300, target_positions="all") -> dict:
    import steerscope.methods.melbo as mb

    original, holder = mb.MelboObjective, {}
    start = time.perf_counter()

    def factory(*a, **kw):
        holder["counted"] = Counted(original(*a, **kw), start)
        return holder["counted"]

    mb.MelboObjective = factory
    try:
        res = ss.melbo(m, prompts, source_layer=SOURCE, target_layer=TARGET, radius=RADIUS, power=POWER, q=Q,
                       num_vectors=num_vectors, mode="parallel", block_size=block_size, heldout_kl=heldout_kl,
                       tol=tol, steps=steps, target_positions=target_positions, progress=False, out_dir=out_dir,
                       report=False, sample_tokens=8)
    finally:
        mb.MelboObjective = original
    seconds = time.perf_counter() - start
    calls = holder["counted"].calls
    # the vectors optimised: every call after the 16 random-level vectors (one no-grad call of 16 rows)
    optimisation_rows = sum(rows for _, rows in calls[1:])
    optimisation_seconds = calls[-1][0] - calls[0][0]
    evaluations = sum(len(res.losses[i]) - 1 for i in range(0, len(res.losses), block_size))
    ratios = res.ratios
    vs = res.vectors.tensors[SOURCE]
    unit = vs / vs.norm(dim=-1, keepdim=True)
    return {
        "prompts": len(prompts), "num_vectors": len(res.vectors), "block_size": block_size, "seconds": seconds,
        "tol": tol, "steps": steps, "target_positions": target_positions, "block_evaluations": evaluations,
        "seconds_per_block_evaluation": seconds / max(evaluations, 1),
        "evaluations_per_block": [len(res.losses[i]) - 1 for i in range(0, len(res.losses), block_size)],
        # rows replayed: a vector that stopped (per-vector early stop) leaves the batch, so an evaluation of a block
        # costs in proportion to the vectors still moving; full-block equivalents = rows / block_size
        "vector_evaluations": optimisation_rows, "full_block_equivalents": optimisation_rows / block_size,
        "seconds_per_vector_evaluation": optimisation_seconds / max(optimisation_rows, 1),
        "random_objective": res.random_objective, "random_band": list(res.random_band),
        "vectors_above_3x_random": sum(r >= 3.0 for r in ratios),
        "vectors_above_1.5x_random": sum(r >= 1.5 for r in ratios),
        "first_index_below_3x": next((i for i, r in enumerate(ratios) if r < 3.0), None),
        "max_abs_offdiag_cosine": float((unit @ unit.T - torch.eye(len(vs))).abs().max()),
        "evaluations_per_vector": [len(h) - 1 for h in res.losses],
        "ratios": ratios, "objectives": res.objectives, "heldout_kl": res.heldout_kl,
    }


def summarise_checkpoint(run_dir: Path, started: float, block_size: int) -> dict:
    """What an interrupted basis run finished: vectors, evaluations per block and seconds so far (from the run
    directory's checkpoint, written after every block)."""
    from steerscope.results import load_vector_checkpoint

    vectors, losses = load_vector_checkpoint(run_dir)
    seconds = (run_dir / "vectors.safetensors").stat().st_mtime - started
    evaluations = [len(losses[i]) - 1 for i in range(0, len(losses), block_size)]
    return {"vectors_done": len(vectors), "blocks_done": len(evaluations), "seconds_to_last_checkpoint": seconds,
            "evaluations_per_block": evaluations,
            "seconds_per_block_evaluation": seconds / max(sum(evaluations), 1)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--job", choices=["basis", "prompts"], required=True)
    parser.add_argument("--num-vectors", type=int, default=None)
    parser.add_argument("--block-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--tol", type=float, default=1e-3)
    parser.add_argument("--steps", type=int, default=300, help="cap on evaluations per block")
    parser.add_argument("--target-positions", default="all", help="all, or K (the last K tokens of each prompt)")
    parser.add_argument("--out-dir", default=None, help="basis job: run directory (checkpointed after every block)")
    parser.add_argument("--summarise", default=None, metavar="RUN_DIR",
                        help="summarise an interrupted basis run (with --started UNIX_TIME) instead of running")
    parser.add_argument("--started", type=float, default=None)
    parser.add_argument("--out", default=None, help="result file (default bench/results/melbo_basis.json or "
                                                    "melbo_prompts*.json)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.summarise:
        partial = summarise_checkpoint(Path(args.summarise), args.started, args.block_size)
        path = Path(__file__).parent / "results" / "melbo_basis_partial.json"
        path.write_text(json.dumps(partial, indent=2) + "\n")
        print(json.dumps(partial, indent=2))
        return
    m = ss.load_model()
    setting = {"model": m.name, "radius": RADIUS, "power": POWER, "q": Q, "source_layer": SOURCE,
               "target_layer": TARGET, "mode": "parallel", "lr": "default (trust region)", "tol": args.tol,
               "threads": torch.get_num_threads(), "block_size": args.block_size,
               "command": f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '')} python " + " ".join(sys.argv)}
    if args.job == "basis":
        print(f"started {time.time():.0f}", flush=True)
        basis = run(m, [PROMPT], args.num_vectors or m.d_model, args.block_size, False, args.tol, args.out_dir)
        if basis["num_vectors"] < m.d_model:  # a partial run: extrapolate from its blocks (the first are the slowest)
            blocks = m.d_model / basis["block_size"]
            per_block = basis["block_evaluations"] / (basis["num_vectors"] / basis["block_size"])
            basis["extrapolated_full_basis_minutes"] = blocks * per_block * basis["seconds_per_block_evaluation"] / 60
        basis["minutes"] = basis["seconds"] / 60
        if basis["num_vectors"] == m.d_model:
            basis["within_20_minutes"] = basis["minutes"] <= 20
        out = {"setting": setting, "basis": basis}
        path = Path(args.out or Path(__file__).parent / "results" / "melbo_basis.json")
    else:
        n = args.num_vectors or 24
        block = min(args.block_size, 8)
        tp = "all" if args.target_positions == "all" else int(args.target_positions)
        out = {"setting": setting,
               "one_prompt": run(m, [PROMPT], n, block, True, args.tol, steps=args.steps, target_positions=tp),
               "eight_prompts": run(m, load_prompts("melbo_prompts")[:8], n, block, True, args.tol,
                                    steps=args.steps, target_positions=tp)}
        suffix = "" if tp == "all" else f"_last{tp}"
        path = Path(args.out or Path(__file__).parent / "results" / f"melbo_prompts{suffix}.json")
    path.write_text(json.dumps(out, indent=2) + "\n")
    summary = {k: {kk: v.get(kk) for kk in ("prompts", "num_vectors", "seconds", "vectors_above_3x_random",
                                           "extrapolated_full_basis_minutes", "evaluations_per_block",
                                           "full_block_equivalents", "max_abs_offdiag_cosine")}
               for k, v in out.items() if k != "setting"}
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
