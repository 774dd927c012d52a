"""steerscope sweep VECTOR --scales -8:8:1 ... | steerscope eval linearity ... | steerscope eval kl VECTOR... ..."""

from __future__ import annotations

import re

from .common import (
    add_model_arg,
    add_report_arg,
    finish_report,
    finite_float,
    float_list,
    input_dir,
    input_file,
    non_negative_float,
    output_dir,
    output_file,
    positions_spec,
    positive_int,
    sampling,
    vector_spec,
)

# let `--scales -8:8:1` parse as a value, not as an unknown option
_NEGATIVE_VALUE = re.compile(r"^-\d[\d.:,eE+-]*$")


def _score_positions(text: str) -> str:
    """argparse type for scored positions: ``first_generated | all | last:K`` (K >= 1)."""
    import argparse

    kind, sep, k = text.strip().partition(":")
    if text.strip() in ("first_generated", "all") or (sep and kind == "last" and k.isdigit() and int(k) >= 1):
        return text
    raise argparse.ArgumentTypeError(f"positions {text!r} not understood; use first_generated, all or last:K "
                                     "(K >= 1)")


def _prompt_args(p) -> None:
    p.add_argument("--prompts", nargs="+", default=None, metavar="PROMPT", help="prompts (or use --prompts-file)")
    p.add_argument("--prompts-file", type=input_file, help=".txt (one per line) or .jsonl with a 'prompt' key")


def _gen_args(p, max_new_tokens: int = 48) -> None:
    p.add_argument("--max-new-tokens", type=positive_int, default=max_new_tokens)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sample", action="store_true", help="sample instead of greedy decoding")
    p.add_argument("--temperature", type=non_negative_float, default=1.0, help="with --sample; 0 means greedy")
    p.add_argument("--positions", default="all", type=positions_spec, help="steered tokens: all | prompt | generated | from:K | last:K")
    p.add_argument("--batch-size", type=positive_int, default=32)
    p.add_argument("--no-chat", action="store_true", help="do not apply the chat template")


def register(commands, groups) -> None:
    p = commands.add_parser("sweep", help="generate at many scales; behaviour, coherence and the coherence window")
    p._negative_number_matcher = _NEGATIVE_VALUE
    p.add_argument("vector", metavar="VECTOR", type=vector_spec, help="vector file, or FILE:INDEX for one vector of a set")
    _prompt_args(p)
    add_model_arg(p)
    p.add_argument("--scales", type=float_list, default=[-8.0, -4.0, -2.0, -1.0, 0.0, 1.0, 2.0, 4.0, 8.0],
                   help="start:stop:step (inclusive) or a list like -4,0,4 (0 is always added)")
    p.add_argument("--metric", dest="metrics", action="append", default=None, metavar="SPEC",
                   help="count:REGEX | contains:TEXT | module:function (repeatable)")
    p.add_argument("--completion", dest="completions", action="append", default=None, metavar="TEXT",
                   help="given completion whose mean log-prob is measured (once for all prompts, or one per prompt)")
    p.add_argument("--objective", default=None, help="metric that picks the best scale (default: the first)")
    p.add_argument("--minimize", action="store_true", help="pick the scale minimising the objective")
    p.add_argument("--tolerance", type=finite_float, default=None,
                   help="relative perplexity tolerance of the window (default 2.0: up to 3x the baseline)")
    p.add_argument("--operator", default="add", choices=["add", "ablate", "clamp"])
    p.add_argument("--prompt-baseline", default=None, metavar="SYSTEM_PROMPT",
                   help="also measure a system prompt that asks for the behaviour (prompted, prompted+steered)")
    _gen_args(p)
    p.add_argument("--out", dest="out_dir", default="sweep", type=output_dir, help="directory for sweep.csv/.json/.png, samples.jsonl")
    p.add_argument("--resume", action="store_true", help="continue an interrupted sweep in --out")
    add_report_arg(p)
    p.set_defaults(func=run_sweep)

    lin = groups["eval"].add_parser("linearity", help="how closely a LoRA's extracted vector reproduces the LoRA")
    lin.add_argument("--adapter", required=True, type=input_dir, help="PEFT LoRA adapter directory")
    lin.add_argument("--vector", required=True, type=vector_spec, help="vector file, or FILE:INDEX")
    _prompt_args(lin)
    add_model_arg(lin)
    lin.add_argument("--batches", type=positive_int, default=6)
    lin.add_argument("--scale", type=finite_float, default=1.0)
    lin.add_argument("--summarizer", default="keywords", choices=["keywords", "local", "http"],
                     help="keywords: offline log-odds; local: LocalJudge on the embedded model; http: --judge-url")
    lin.add_argument("--judge-url", help="OpenAI-compatible base URL, e.g. http://localhost:8000/v1")
    lin.add_argument("--judge-model", help="model name at --judge-url")
    lin.add_argument("--judge-api-key-env", default="OPENAI_API_KEY", help="environment variable with the key")
    lin.add_argument("--embedder", default=None, help="sentence-transformers model dir (default: shipped MiniLM)")
    lin.add_argument("--control", action="store_true",
                     help="also score a random vector with the same per-layer norms (the noise floor)")
    _gen_args(lin)
    lin.add_argument("--out", dest="out_dir", default="linearity", type=output_dir, help="directory for linearity.json + heatmap")
    add_report_arg(lin)
    lin.set_defaults(func=run_linearity)

    kl = groups["eval"].add_parser("kl", help="next-token KL of steered vs reference distributions, many vectors")
    kl._negative_number_matcher = _NEGATIVE_VALUE
    kl.add_argument("vectors", nargs="+", metavar="VECTOR", type=vector_spec, help="vector files (a set file means all its vectors), "
                    "or FILE:INDEX")
    _prompt_args(kl)
    add_model_arg(kl)
    kl.add_argument("--scales", type=float_list, default=[1.0], help="one scale, or one per vector")
    kl.add_argument("--reference", default=None, type=vector_spec, help="reference vector (default: the unsteered model)")
    kl.add_argument("--reference-scale", type=finite_float, default=1.0)
    kl.add_argument("--direction", default="forward", choices=["forward", "reverse"],
                    help="forward: KL(steered || reference); reverse: KL(reference || steered)")
    kl.add_argument("--positions", default="first_generated", type=_score_positions, help="first_generated | last:K | all")
    kl.add_argument("--steer-positions", default="all", type=positions_spec, help="tokens the vectors steer (see steer())")
    kl.add_argument("--batch-size", type=positive_int, default=32)
    kl.add_argument("--no-chat", action="store_true", help="do not apply the chat template")
    kl.add_argument("--out", default=None, type=output_file, help="also write the values to this JSON file")
    kl.set_defaults(func=run_kl)


def _prompts(args) -> list[str]:
    from .common import read_prompts

    return read_prompts(args.prompts, args.prompts_file)


def run_sweep(args) -> int:
    from ..evaluate.metrics import parse_metric
    from ..evaluate.sweep import sweep
    from ..steer import Positions
    from ..vector import load_vector
    from .common import load_model_from_args

    prompts = _prompts(args)
    Positions.parse(args.positions)
    metrics = dict(parse_metric(spec) for spec in args.metrics or [])  # fail on a bad spec before loading a model
    completions = args.completions[0] if args.completions and len(args.completions) == 1 else args.completions
    vector = load_vector(args.vector)
    m = load_model_from_args(args)
    res = sweep(m, vector, prompts, scales=args.scales, metrics=metrics, completions=completions,
                objective=args.objective, maximize=not args.minimize, tolerance=args.tolerance,
                max_new_tokens=args.max_new_tokens, seed=args.seed, do_sample=sampling(args),
                temperature=args.temperature, chat=not args.no_chat, positions=args.positions,
                operator=args.operator, batch_size=args.batch_size, out_dir=args.out_dir, resume=args.resume,
                prompt_baseline=args.prompt_baseline)
    if res.prompting_comparison():
        print(f"prompting baseline: {res.prompting_comparison()}")
    names = [n for n in res.rows[0] if n not in ("scale", "n", "coherent")]
    print("scale  " + "  ".join(f"{n[:14]:>14}" for n in names) + "  coherent")
    for row in res.rows:
        cells = "  ".join(f"{row[n]:>14.4g}" if isinstance(row[n], float) else f"{row[n]!s:>14}" for n in names)
        print(f"{row['scale']:>5g}  {cells}  {'yes' if row['coherent'] else 'no'}")
    best = "none" if res.best_scale is None else f"{res.best_scale:g}"
    print(f"coherence window [{res.window[0]:g}, {res.window[1]:g}]; best scale {best}; written to {args.out_dir}/")
    finish_report(args, args.out_dir)
    return 0


def run_linearity(args) -> int:
    from ..errors import InvalidArgumentError
    from ..evaluate.judges import HTTPJudge, LocalJudge
    from ..evaluate.linearity import linearity_score
    from ..vector import load_vector
    from .common import load_model_from_args

    prompts = _prompts(args)
    vector = load_vector(args.vector)
    if args.summarizer == "http":
        if not (args.judge_url and args.judge_model):
            raise InvalidArgumentError("--summarizer http needs --judge-url and --judge-model")
        summarizer = HTTPJudge(args.judge_url, args.judge_model, api_key_env=args.judge_api_key_env)
    m = load_model_from_args(args)
    if args.summarizer == "local":
        summarizer = LocalJudge(m)
    elif args.summarizer == "keywords":
        summarizer = "keywords"
    res = linearity_score(m, args.adapter, vector, prompts, batches=args.batches, summarizer=summarizer,
                          embedder=args.embedder, scale=args.scale, max_new_tokens=args.max_new_tokens,
                          seed=args.seed, do_sample=sampling(args), temperature=args.temperature,
                          chat=not args.no_chat, positions=args.positions, batch_size=args.batch_size,
                          control=args.control, out_dir=args.out_dir)
    for i, j in res.matching:
        print(f"LoRA batch {i} <-> vector batch {j}: cos {res.similarity[i, j]:.3f}\n"
              f"  LoRA:   {res.lora_summaries[i]}\n  vector: {res.vector_summaries[j]}")
    print(f"linearity score {res.score:.3f}; embedding-shift cosine {res.embedding_shift_cosine:.3f}; "
          f"written to {args.out_dir}/")
    if res.control_score is not None:
        print(f"random-vector control: score {res.control_score:.3f}; "
              f"embedding-shift cosine {res.control_embedding_shift_cosine:.3f}")
    finish_report(args, args.out_dir)
    return 0


def _load_many(specs: list[str]):
    from ..errors import SteerscopeError
    from ..vector import VectorSet, load_vector, split_spec

    vectors, labels = [], []
    for spec in specs:
        path, index = split_spec(spec)
        if index is None:
            try:
                vs = VectorSet.load(path)
            except SteerscopeError:  # not a set file: a single vector (load_vector reports real problems)
                vs = None
            if vs is not None and len(vs) > 1:
                vectors.extend(vs[i] for i in range(len(vs)))
                labels.extend(f"{path}:{i}" for i in range(len(vs)))
                continue
        vectors.append(load_vector(spec))
        labels.append(spec)
    return vectors, labels


def run_kl(args) -> int:
    import json

    from ..errors import InvalidArgumentError
    from ..evaluate.kl import kl_divergence
    from ..io import write_json
    from ..vector import load_vector
    from .common import load_model_from_args

    prompts = _prompts(args)
    vectors, labels = _load_many(args.vectors)
    scales = args.scales if len(args.scales) > 1 else args.scales[0]
    if isinstance(scales, list) and len(scales) != len(vectors):
        raise InvalidArgumentError(f"--scales gives {len(scales)} values for {len(vectors)} vectors; give 1 or one each")
    reference = load_vector(args.reference) if args.reference else None
    m = load_model_from_args(args)
    values = kl_divergence(m, vectors, prompts, reference=reference, reference_scale=args.reference_scale,
                           direction=args.direction, score_positions=args.positions, scale=scales,
                           batch_size=args.batch_size, chat=not args.no_chat, positions=args.steer_positions,
                           progress=True)
    rows = [{"vector": label, "scale": s, "kl": float(v)} for label, s, v in
            zip(labels, scales if isinstance(scales, list) else [scales] * len(labels), values)]
    for row in rows:
        print(json.dumps(row))
    if args.out:
        write_json(args.out, {"direction": args.direction, "positions": args.positions,
                              "reference": args.reference, "n_prompts": len(prompts), "rows": rows})
    return 0
