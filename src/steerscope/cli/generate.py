"""steerscope generate PROMPT... [--vector FILE[:INDEX]] [--scale] [--layer] [--positions] ..."""

from __future__ import annotations

import argparse
import json

from .common import (
    VECTOR_HELP,
    add_model_arg,
    finite_float,
    input_file,
    non_negative_float,
    positions_spec,
    positive_int,
    read_prompts,
    sampling,
    vector_spec,
)


def register(commands, groups) -> None:
    p = commands.add_parser("generate", help="generate text, optionally steered (baseline shown alongside)")
    p.add_argument("prompts", nargs="*", metavar="PROMPT")
    p.add_argument("--prompts-file", type=input_file, help=".txt (one per line) or .jsonl with a 'prompt' key")
    add_model_arg(p)
    p.add_argument("--vector", type=vector_spec, help=VECTOR_HELP)
    p.add_argument("--scale", type=finite_float, default=1.0)
    p.add_argument("--layer", type=int, help="use only this layer of a multi-layer vector")
    p.add_argument("--positions", default="all", type=positions_spec, help="all | prompt | generated | from:K | last:K")
    p.add_argument("--operator", default="add", choices=["add", "ablate", "clamp"])
    p.add_argument("--max-new-tokens", type=positive_int, default=48)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--do-sample", "--sample", action=argparse.BooleanOptionalAction, default=False,
                   help="sample instead of greedy decoding (default: False)")
    p.add_argument("--temperature", type=non_negative_float, default=1.0, help="with --do-sample; 0 means greedy")
    p.add_argument("--chat", action=argparse.BooleanOptionalAction, default=True,
                   help="apply the chat template (default: True)")
    p.add_argument("--no-baseline", action="store_true", help="only print steered completions")
    p.add_argument("--json", action="store_true", help="print JSON lines")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..errors import InvalidArgumentError
    from ..generate import generate
    from ..vector import load_vector
    from .common import load_model_from_args  # looked up at run time (tests replace it)

    prompts = read_prompts(args.prompts, args.prompts_file)
    vector = load_vector(args.vector) if args.vector else None
    if vector is not None and args.layer is not None:
        if args.layer not in vector.directions:
            raise InvalidArgumentError(f"--layer {args.layer}: the vector has layers {vector.layers}")
        vector = type(vector)({args.layer: vector.directions[args.layer]}, vector.site)
    m = load_model_from_args(args)  # generate() checks the vector's width and layers before its first batch
    rows_vectors, rows_prompts, labels = [], [], []
    for prompt in prompts:
        if vector is None or not args.no_baseline:
            rows_vectors.append(None), rows_prompts.append(prompt), labels.append("baseline")
        if vector is not None:
            rows_vectors.append(vector), rows_prompts.append(prompt), labels.append(f"steered x{args.scale:g}")
    outs = generate(m, rows_prompts, vectors=rows_vectors, scales=args.scale, max_new_tokens=args.max_new_tokens,
                    do_sample=sampling(args), temperature=args.temperature, seed=args.seed, chat=args.chat,
                    positions=args.positions, operator=args.operator, progress=True)
    for prompt, label, text in zip(rows_prompts, labels, outs):
        if args.json:
            print(json.dumps({"prompt": prompt, "kind": label, "scale": 0.0 if label == "baseline" else args.scale,
                              "completion": text}))
        else:
            print(f"--- {label} | {prompt}\n{text}\n")
    return 0
