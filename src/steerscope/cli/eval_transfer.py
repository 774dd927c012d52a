"""steerscope eval transfer VECTOR [PROMPT...] --targets TEXT... (flags: TransferConfig)"""

from __future__ import annotations

from .common import VECTOR_HELP, config_and_model, prompts_from_args, say_where
from .flags import config_parser


def register(commands, groups) -> None:
    config_parser(groups["eval"], "transfer", "steerscope.runs:evaluate_transfer", vector=VECTOR_HELP, func=run,
                  help="how a vector moves held-out prompts: Δ log-prob and hit rate per scale",
                  prompts="held-out prompts (default: the shipped one_shot_heldout set of 30 prompts)",
                  options={"targets": {"metavar": "TEXT"}, "match": {"metavar": "TEXT"}})


def run(args) -> int:
    from ..data import load_prompts
    from ..runs import evaluate_transfer
    from ..vector import load_vector

    prompts = prompts_from_args(args, default_none=True) or load_prompts("one_shot_heldout")
    vector = load_vector(args.vector)
    config, m = config_and_model(args)
    result = evaluate_transfer(m, vector, prompts, config=config)
    base = result.baseline
    print(f"{len(prompts)} prompts; unsteered mean log p(target) {base['mean_logprob']:.3f}"
          + (f", hit rate {base['hit_rate']:.2f}" if base["hit_rate"] is not None else ""))
    print(f"{'scale':>7} {'Δ log p':>9} {'± sem':>7} {'hit rate':>9}")
    for row in result.summary:
        hit = "" if row["hit_rate"] is None else f"{row['hit_rate']:.2f}"
        sem = row["sem_delta_logprob"] or 0.0
        print(f"{row['scale']:>7g} {row['mean_delta_logprob']:>9.3f} {sem:>7.3f} {hit:>9}")
    say_where(args.out_dir)
    return 0
