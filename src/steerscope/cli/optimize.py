"""steerscope optimize --prompt P --promote C... | --examples FILE.jsonl --layer L --out DIR (flags: OneShotConfig)"""

from __future__ import annotations

from ..errors import InvalidArgumentError
from .common import (
    config_and_model,
    input_file,
    non_negative_int,
    output_dir,
    positions_spec,
    positive_float,
    positive_int,
)
from .flags import config_parser


def _examples(p) -> None:
    """The training data: one example from flags, and/or a JSONL file of them (``Example``'s fields)."""
    data = p.add_argument_group("examples (steerscope.Example)")
    data.add_argument("--prompt", help="training prompt (with --promote and/or --suppress)")
    data.add_argument("--promote", nargs="+", default=[], metavar="TEXT", help="completions to make more likely")
    data.add_argument("--suppress", nargs="+", default=[], metavar="TEXT", help="completions to make less likely")
    data.add_argument("--negate", action="store_true", help="the --prompt example is steered with -v")
    data.add_argument("--positions", default="all", type=positions_spec,
                      help="steered tokens of the --prompt example: all | prompt | last:K (default: all)")
    data.add_argument("--examples", type=input_file, metavar="FILE", help='JSONL file, one example per line: '
                      '{"prompt": ..., "promote": [...], "suppress": [...], "negate": false, "positions": "all"}')
    p.add_argument("--out", required=True, type=output_dir, metavar="DIR",
                   help="result directory: vector.safetensors, history.csv, summary.json, loss.png, config.json "
                        "(DIR or DIR/vector.safetensors is the vector for other commands)")


def register(commands, groups) -> None:
    config_parser(commands, "optimize", "steerscope.methods.one_shot:optimize_vector", before=_examples, func=run,
                  help="optimise a one-shot steering vector (promote / suppress completions)",
                  skip=("init",), choices={"site": ["resid_pre", "resid_post"], "operator": ["add", "clamp"]},
                  types={"max_iters": non_negative_int, "max_norm": positive_float, "init_norm": positive_float,
                         "coldness": positive_float, "patience": positive_int, "eps": positive_float})


def read_examples(path: str):
    """Examples from a JSONL file (one JSON object per line)."""
    import json
    from pathlib import Path

    from ..data import read_text_file
    from ..methods.one_shot import Example

    file = Path(path)
    examples = []
    for n, line in enumerate(read_text_file(file, "examples file").splitlines(), 1):
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
    from ..methods.one_shot import Example, optimize_vector
    from ..runs import write_run

    examples = read_examples(args.examples) if args.examples else []
    if args.prompt is not None:
        examples.append(Example(args.prompt, promote=args.promote, suppress=args.suppress, negate=args.negate,
                                positions=args.positions))
    elif args.promote or args.suppress:
        raise InvalidArgumentError("--promote/--suppress need --prompt")
    if not examples:
        raise InvalidArgumentError("give --prompt with --promote/--suppress, or --examples FILE.jsonl")
    if args.satisfice and args.target_loss is None:  # checked again by optimize_vector, but before the model loads
        raise InvalidArgumentError("--satisfice needs --target-loss")
    config, m = config_and_model(args)
    result = optimize_vector(m, examples, config=config)
    out = write_run(result, args.out)
    first = result.history[0]["loss"] if result.history else float("nan")
    print(f"loss {first:.4f} -> {result.final_loss:.4f} in {len(result.history)} steps ({result.stop_reason}); "
          f"norm {result.vector.norm():.3f}")
    print(f"vector: {out / 'vector.safetensors'} (loss curve: {out / 'loss.png'})")
    return 0
