"""steerscope optimize --prompt P --promote C... --suppress C... | --examples FILE.jsonl --layer L --out V.safetensors"""

from __future__ import annotations

from .common import add_model_arg, finite_float, input_file, output_file, positions_spec, positive_int


def positive_float(text: str) -> float:
    import argparse

    value = finite_float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be greater than 0")
    return value


def register(commands, groups) -> None:
    p = commands.add_parser(
        "optimize", help="optimise a one-shot steering vector (promote / suppress completions)"
    )
    p.add_argument("--prompt", help="training prompt (with --promote and/or --suppress)")
    p.add_argument("--promote", nargs="+", default=[], metavar="TEXT", help="completions to make more likely")
    p.add_argument(
        "--suppress", nargs="+", default=[], metavar="TEXT", help="completions to make less likely"
    )
    p.add_argument("--negate", action="store_true", help="the --prompt example is steered with -v")
    p.add_argument(
        "--positions", default="all", type=positions_spec, help="steered tokens of the --prompt example: all | prompt | last:K"
    )
    p.add_argument(
        "--examples",
        type=input_file,
        help="JSONL file, one example per line: "
        '{"prompt": ..., "promote": [...], "suppress": [...], "negate": false, "positions": "all"}',
    )
    add_model_arg(p)
    p.add_argument("--layer", type=int, required=True, help="decoder block to steer (0-based)")
    p.add_argument("--site", default="resid_pre", choices=["resid_pre", "resid_post"])
    p.add_argument("--lr", type=positive_float, default=0.01)
    p.add_argument("--max-iters", type=positive_int, default=50)
    p.add_argument(
        "--max-norm", type=positive_float, default=None, help="rescale to this norm after each step"
    )
    p.add_argument("--init-norm", type=positive_float, default=1.0)
    p.add_argument("--coldness", type=positive_float, default=0.7)
    p.add_argument(
        "--target-loss", type=finite_float, default=None, help="stop at this loss (or satisfice it)"
    )
    p.add_argument(
        "--normalize-by-length", action="store_true", help="divide each completion's loss by its length"
    )
    p.add_argument("--satisfice", action="store_true", help="minimise (loss - target_loss)^2")
    p.add_argument("--operator", default="add", choices=["add", "clamp"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--tol", type=finite_float, default=1e-6, help="converged when the loss moves less than this ..."
    )
    p.add_argument("--patience", type=positive_int, default=5, help="... for this many steps in a row")
    p.add_argument("--no-chat", action="store_true", help="do not apply the chat template")
    p.add_argument(
        "--out",
        default="one_shot.safetensors",
        type=output_file,
        help="vector file; <stem>.loss.csv and <stem>.loss.png are written next to it",
    )
    p.set_defaults(func=run)


def read_examples(path: str):
    """Examples from a JSONL file (one JSON object per line)."""
    import json
    from pathlib import Path

    from ..errors import InvalidArgumentError
    from ..methods.one_shot import Example

    file = Path(path)
    if not file.is_file():
        raise InvalidArgumentError(f"examples file {file} does not exist")
    examples = []
    for n, line in enumerate(file.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidArgumentError(f"{file}:{n}: not valid JSON ({exc})") from None
        try:
            examples.append(Example.from_dict(data))
        except (InvalidArgumentError, TypeError) as exc:
            raise InvalidArgumentError(f"{file}:{n}: {exc}") from None
    if not examples:
        raise InvalidArgumentError(f"{file} holds no examples")
    return examples


def run(args) -> int:
    from ..errors import InvalidArgumentError
    from ..methods.one_shot import Example, optimize_vector
    from .common import load_model_from_args

    examples = read_examples(args.examples) if args.examples else []
    if args.prompt is not None:
        examples.append(
            Example(
                args.prompt,
                promote=args.promote,
                suppress=args.suppress,
                negate=args.negate,
                positions=args.positions,
            )
        )
    elif args.promote or args.suppress:
        raise InvalidArgumentError("--promote/--suppress need --prompt")
    if not examples:
        raise InvalidArgumentError("give --prompt with --promote/--suppress, or --examples FILE.jsonl")
    if args.satisfice and args.target_loss is None:
        raise InvalidArgumentError("--satisfice needs --target-loss")
    m = load_model_from_args(args)
    result = optimize_vector(
        m,
        examples,
        layer=args.layer,
        site=args.site,
        lr=args.lr,
        max_iters=args.max_iters,
        max_norm=args.max_norm,
        init_norm=args.init_norm,
        coldness=args.coldness,
        target_loss=args.target_loss,
        normalize_by_length=args.normalize_by_length,
        satisfice=args.satisfice,
        operator=args.operator,
        seed=args.seed,
        tol=args.tol,
        patience=args.patience,
        chat=not args.no_chat,
    )
    paths = result.save(args.out)
    first = result.history[0]["loss"] if result.history else float("nan")
    print(
        f"loss {first:.4f} -> {result.final_loss:.4f} in {len(result.history)} steps ({result.stop_reason}); "
        f"norm {result.vector.norm():.3f}"
    )
    for name, path in paths.items():
        print(f"{name}: {path}")
    return 0
