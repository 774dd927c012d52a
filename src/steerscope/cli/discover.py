"""steerscope discover melbo | ortho"""

from __future__ import annotations

from .common import (
    add_model_arg,
    check_new_run,
    finite_float,
    input_file,
    output_dir,
    positive_float,
    positive_int,
    vector_spec,
)


def _radius(text: str):
    return "auto" if text == "auto" else positive_float(text)


def _target_positions(text: str):
    return "all" if text == "all" else positive_int(text.removeprefix("last:"))


def _common(p) -> None:
    p.add_argument("prompts", nargs="*", metavar="PROMPT", help="training prompts")
    p.add_argument("--prompts-file", type=input_file, help=".txt (one per line) or .jsonl with a 'prompt' key")
    add_model_arg(p)
    p.add_argument("--source-layer", type=int, default=None, help="block whose output θ is added to (default ≈ 1/4)")
    p.add_argument("--target-layer", type=int, default=None, help="block whose output is compared (default ≈ 3/4)")
    p.add_argument("--num-vectors", type=positive_int, default=8)
    p.add_argument("--steps", type=positive_int, default=None, help="optimisation steps per vector (>= 1)")
    p.add_argument("--lr", type=positive_float, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, type=output_dir, help="run directory")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    p.add_argument("--no-chat", action="store_true")
    p.add_argument("--sample-tokens", type=positive_int, default=40, help="tokens per sample completion")
    p.add_argument("--no-report", action="store_true", help="do not write report.html at the end")


def register(commands, groups) -> None:
    p = groups["discover"].add_parser("melbo", help="MELBO: unsupervised orthogonal steering vectors")
    _common(p)
    p.add_argument("--radius", type=_radius, default="auto", help="‖θ‖, or auto (knee of a radius sweep)")
    p.add_argument("--power", type=finite_float, default=2.0)
    p.add_argument("--q", type=finite_float, default=None)
    p.add_argument("--target-positions", type=_target_positions, default="all", help="all, or K (last K tokens)")
    p.add_argument("--mode", choices=["sequential", "parallel"], default="sequential")
    p.add_argument("--block-size", type=positive_int, default=4, help="vectors per block in parallel mode")
    p.add_argument("--tol", type=finite_float, default=None,
                   help="early stop when the objective rises by less than this fraction over 10 steps (default 1e-3; 0: never)")
    p.add_argument("--min-ratio", type=finite_float, default=None,
                   help="stop when 3 vectors in a row end below this multiple of the random level (e.g. 3)")
    p.add_argument("--not-orthogonal", action="store_true", help="do not constrain vectors to be orthogonal")
    p.add_argument("--heldout-file", type=input_file, help="held-out prompts for samples (default: a few shipped prompts)")
    p.set_defaults(func=run_melbo)

    p = groups["discover"].add_parser("ortho", help="MELBO-ortho: vectors orthogonal to θ₀ with the same effect")
    _common(p)
    p.add_argument("--base", required=True, type=vector_spec, help="θ₀: vector file or FILE:INDEX of a MELBO run's vectors")
    p.add_argument("--block-size", type=positive_int, default=1, help="vectors trained together (block-parallel)")
    p.add_argument("--collapse-ratio", type=finite_float, default=0.05)
    p.add_argument("--kl-direction", choices=["forward", "reverse"], default="forward",
                   help="forward = KL(P_i||P_0), reverse = KL(P_0||P_i)")
    p.set_defaults(func=run_ortho, num_vectors=100)


def _prompts(args) -> list[str]:
    from .common import read_prompts

    return read_prompts(args.prompts, args.prompts_file)


def run_melbo(args) -> int:
    from ..methods.melbo import melbo
    from .common import load_model_from_args, read_prompts

    # no prompts: melbo's default training set (the shipped melbo_prompts)
    prompts = _prompts(args) if args.prompts or args.prompts_file else None
    heldout = read_prompts(None, args.heldout_file) if args.heldout_file else None
    check_new_run(args.out, args.resume)
    m = load_model_from_args(args)
    extra = {k: v for k, v in (("steps", args.steps), ("lr", args.lr), ("tol", args.tol),
                               ("min_ratio", args.min_ratio)) if v is not None}
    res = melbo(m, prompts, source_layer=args.source_layer, target_layer=args.target_layer,
                num_vectors=args.num_vectors, radius=args.radius, power=args.power, q=args.q,
                target_positions=args.target_positions, orthogonal=not args.not_orthogonal, mode=args.mode,
                block_size=args.block_size, seed=args.seed, chat=not args.no_chat, out_dir=args.out,
                resume=args.resume, heldout_prompts=heldout, sample_tokens=args.sample_tokens,
                report=not args.no_report, **extra)
    print(f"{len(res.vectors)} vectors, R = {res.radius:.4g}; objective vs random: "
          + ", ".join(f"{o / max(res.random_objective, 1e-30):.2f}x" for o in res.objectives))
    _say_where(args.out)
    return 0


def run_ortho(args) -> int:
    from ..methods.ortho import melbo_ortho
    from ..vector import load_vector
    from .common import load_model_from_args

    prompts = _prompts(args)
    base = load_vector(args.base)
    check_new_run(args.out, args.resume)
    m = load_model_from_args(args)
    extra = {k: v for k, v in (("steps", args.steps), ("lr", args.lr)) if v is not None}
    res = melbo_ortho(m, base, prompts, source_layer=args.source_layer, target_layer=args.target_layer,
                      num_vectors=args.num_vectors, block_size=args.block_size, collapse_ratio=args.collapse_ratio,
                      kl_direction=args.kl_direction, seed=args.seed, chat=not args.no_chat, out_dir=args.out,
                      resume=args.resume, sample_tokens=args.sample_tokens, report=not args.no_report, **extra)
    first = res.analysis[: min(10, len(res.analysis))]
    print(f"{len(res.vectors)} orthogonal vectors; mean KL of the first {len(first)} to θ₀: "
          f"{sum(r['kl'] for r in first) / max(1, len(first)):.4g} nats")
    _say_where(args.out)
    return 0


def _say_where(out: str) -> None:
    from pathlib import Path

    report = Path(out) / "report.html"
    print(f"run directory: {out}" + (f"\nreport: {report}" if report.is_file() else ""))
    print(f"explore: steerscope explore {out}")
