"""steerscope eval transfer --vector FILE[:INDEX] --targets TEXT... [PROMPT...] [--scales -1:1.5:0.5] --out DIR"""

from __future__ import annotations

from .common import (
    add_model_arg,
    add_report_arg,
    finish_report,
    float_list,
    input_file,
    output_dir,
    positions_spec,
    positive_int,
    vector_spec,
)


def register(commands, groups) -> None:
    p = groups["eval"].add_parser(
        "transfer", help="how a vector moves held-out prompts: Δ log-prob and hit rate per scale"
    )
    p.add_argument(
        "prompts",
        nargs="*",
        metavar="PROMPT",
        help="held-out prompts (default: the shipped one_shot_heldout set of 30 prompts)",
    )
    p.add_argument("--prompts-file", type=input_file, help=".txt (one per line) or .jsonl with a 'prompt' key")
    add_model_arg(p)
    p.add_argument("--vector", required=True, type=vector_spec, help="vector file, or FILE:INDEX for one vector of a set")
    p.add_argument(
        "--targets",
        nargs="+",
        required=True,
        metavar="TEXT",
        help="completions whose teacher-forced log-prob is measured",
    )
    p.add_argument(
        "--match",
        nargs="+",
        default=None,
        metavar="TEXT",
        help="strings looked for in generations, case-insensitive (default: the targets)",
    )
    p.add_argument(
        "--scales",
        type=float_list,
        nargs="+",
        default=[[-1.0, -0.5, 0.0, 0.5, 1.0, 1.5]],
        help="scales: -1 -0.5 0 1, or --scales=-1:1.5:0.5 (start:stop:step) / --scales=-1,0,1 "
        "(default -1 -0.5 0 0.5 1 1.5)",
    )
    p.add_argument("--max-new-tokens", type=positive_int, default=24)
    p.add_argument("--positions", default="all", type=positions_spec, help="all | prompt | generated | from:K | last:K")
    p.add_argument("--operator", default="add", choices=["add", "ablate", "clamp"])
    p.add_argument("--batch-size", type=positive_int, default=32)
    p.add_argument("--no-chat", action="store_true", help="do not apply the chat template")
    p.add_argument("--no-generate", action="store_true", help="only teacher-forced log-probs, no generations")
    p.add_argument(
        "--out", default="transfer", type=output_dir, help="directory for transfer.csv, transfer.png, generations.jsonl"
    )
    add_report_arg(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from ..data import load_prompts
    from ..evaluate.transfer import evaluate_transfer
    from ..steer import Positions
    from ..vector import load_vector
    from .common import load_model_from_args, read_prompts

    prompts = (
        read_prompts(args.prompts, args.prompts_file)
        if args.prompts or args.prompts_file
        else load_prompts("one_shot_heldout")
    )
    Positions.parse(args.positions)
    vector = load_vector(args.vector)
    m = load_model_from_args(args)
    result = evaluate_transfer(
        m,
        vector,
        prompts,
        targets=args.targets,
        match=args.match,
        scales=[x for part in args.scales for x in part],
        max_new_tokens=args.max_new_tokens,
        positions=args.positions,
        operator=args.operator,
        chat=not args.no_chat,
        do_generate=not args.no_generate,
        batch_size=args.batch_size,
    )
    paths = result.write(args.out)
    base = result.baseline
    print(
        f"{len(prompts)} prompts; unsteered mean log p(target) {base['mean_logprob']:.3f}"
        + (f", hit rate {base['hit_rate']:.2f}" if base["hit_rate"] is not None else "")
    )
    print(f"{'scale':>7} {'Δ log p':>9} {'± sem':>7} {'hit rate':>9}")
    for row in result.summary:
        hit = "" if row["hit_rate"] is None else f"{row['hit_rate']:.2f}"
        sem = row["sem_delta_logprob"] or 0.0
        print(f"{row['scale']:>7g} {row['mean_delta_logprob']:>9.3f} {sem:>7.3f} {hit:>9}")
    for name, path in paths.items():
        print(f"{name}: {path}")
    finish_report(args, args.out)
    return 0
