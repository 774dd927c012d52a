"""steerscope discover melbo [PROMPT...] --out DIR | discover ortho VECTOR PROMPT... --out DIR (flags: the configs)"""

from __future__ import annotations

from .common import (
    config_and_model,
    non_negative_int,
    positive_float,
    positive_int,
    prompts_from_args,
    say_where,
)
from .flags import config_parser


def _radius(text: str):
    return "auto" if text == "auto" else positive_float(text)


def _target_positions(text: str):
    return "all" if text == "all" else positive_int(text.removeprefix("last:"))


def register(commands, groups) -> None:
    config_parser(groups["discover"], "melbo", "steerscope.runs:melbo", required=("out_dir",), func=run_melbo,
                  help="MELBO: unsupervised orthogonal steering vectors", choices={"mode": ["sequential", "parallel"]},
                  prompts="training prompts (default: the shipped melbo_prompts)",
                  types={"radius": _radius, "target_positions": _target_positions, "min_ratio_patience": positive_int})
    config_parser(groups["discover"], "ortho", "steerscope.runs:melbo_ortho", required=("out_dir",), func=run_ortho,
                  help="MELBO-ortho: vectors orthogonal to θ₀ with the same effect",
                  vector="θ₀: vector file, or FILE:INDEX of a MELBO run's vectors", prompts="training prompts",
                  types={"collapse_patience": positive_int, "moving_average": positive_int,
                         "sample_vectors": non_negative_int}, choices={"kl_direction": ["forward", "reverse"]})


def run_melbo(args) -> int:
    from ..runs import melbo

    prompts = prompts_from_args(args, default_none=True)  # none: melbo's own training set
    config, m = config_and_model(args)
    res = melbo(m, prompts, config=config)
    print(f"{len(res.vectors)} vectors, R = {res.radius:.4g}; objective vs random: "
          + ", ".join(f"{o / max(res.random_objective, 1e-30):.2f}x" for o in res.objectives))
    say_where(args.out_dir, explore=True)
    return 0


def run_ortho(args) -> int:
    from ..runs import melbo_ortho
    from ..vector import load_vector

    prompts = prompts_from_args(args)
    base = load_vector(args.vector)
    config, m = config_and_model(args)
    res = melbo_ortho(m, base, prompts, config=config)
    first = res.analysis[:10]
    print(f"{len(res.vectors)} orthogonal vectors; mean KL of the first {len(first)} to θ₀: "
          f"{sum(r['kl'] for r in first) / max(1, len(first)):.4g} nats")
    say_where(args.out_dir, explore=True)
    return 0
