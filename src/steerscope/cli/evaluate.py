"""steerscope eval sweep VECTOR [PROMPT...] | eval linearity ADAPTER VECTOR [PROMPT...] | eval kl VECTOR... --prompts
(flags: SweepConfig, LinearityConfig, KLConfig)"""

from __future__ import annotations

import json
import sys

from ..errors import InvalidArgumentError, SteerscopeError
from .common import (
    VECTOR_HELP,
    add_prompt_args,
    config_and_model,
    finite_float,
    input_dir,
    library_type,
    output_file,
    positive_int,
    prompts_from_args,
    say_where,
    vector_spec,
)
from .flags import config_parser

# count:REGEX | contains:TEXT | module:function, resolved while parsing (a typo fails before the model loads)
METRIC_SPEC = library_type("steerscope.evaluate.metrics:parse_metric")


def register(commands, groups) -> None:
    sweep_help = "generate at many scales; behaviour, coherence and the coherence window"
    for parent, help_text, func in ((groups["eval"], sweep_help, run_sweep),
                                    (commands, "deprecated spelling of `eval sweep`", run_sweep_deprecated)):
        config_parser(parent, "sweep", "steerscope.runs:sweep", vector=VECTOR_HELP, prompts="prompts", help=help_text,
                      func=func, types={"metrics": METRIC_SPEC, "tolerance": finite_float},
                      options={"metrics": {"metavar": "SPEC"}, "completions": {"metavar": "TEXT"}})

    def linearity_data(p) -> None:
        p.add_argument("adapter", metavar="ADAPTER", type=input_dir, help="PEFT LoRA adapter directory")
        judge = p.add_argument_group("judge (with --summarizer http)")
        judge.add_argument("--judge-url", help="OpenAI-compatible base URL, e.g. http://localhost:8000/v1")
        judge.add_argument("--judge-model", help="model name at --judge-url")
        judge.add_argument("--judge-api-key-env", default="OPENAI_API_KEY", help="environment variable with the key")

    config_parser(groups["eval"], "linearity", "steerscope.runs:linearity_score", before=linearity_data,
                  vector=VECTOR_HELP, prompts="prompts", func=run_linearity, types={"batches": positive_int},
                  help="how closely a LoRA's extracted vector reproduces the LoRA",
                  choices={"summarizer": ["keywords", "local", "http"]})

    def kl_data(p) -> None:
        p.add_argument("vectors", nargs="+", metavar="VECTOR", type=vector_spec,
                       help="vector files (a set file means all its vectors), or FILE:INDEX")
        add_prompt_args(p, positional=False)
        p.add_argument("--out", type=output_file, metavar="FILE", help="also write the values to this JSON file")

    config_parser(groups["eval"], "kl", "steerscope.evaluate.kl:kl_divergence", before=kl_data, func=run_kl,
                  help="next-token KL of steered vs reference distributions, many vectors",
                  skip=("reduction",),  # the CLI prints one mean per vector
                  types={"reference": vector_spec, "score_positions": library_type("steerscope.evaluate.kl:parse_score_positions")},
                  choices={"direction": ["forward", "reverse"]}, options={"reference": {"metavar": "VECTOR"}})


def run_sweep(args) -> int:
    from ..runs import sweep
    from ..vector import load_vector

    prompts = prompts_from_args(args)
    vector = load_vector(args.vector)
    config, m = config_and_model(args)
    res = sweep(m, vector, prompts, config=config)
    if comparison := res.prompting_comparison():
        print(f"prompting baseline: {comparison}")
    names = [n for n in res.rows[0] if n not in ("scale", "n", "coherent")]
    print("scale  " + "  ".join(f"{n[:14]:>14}" for n in names) + "  coherent")
    for row in res.rows:
        cells = "  ".join(f"{row[n]:>14.4g}" if isinstance(row[n], float) else f"{row[n]!s:>14}" for n in names)
        print(f"{row['scale']:>5g}  {cells}  {'yes' if row['coherent'] else 'no'}")
    best = "none" if res.best_scale is None else f"{res.best_scale:g}"
    print(f"coherence window [{res.window[0]:g}, {res.window[1]:g}]; best scale {best}")
    say_where(args.out_dir)
    return 0


def run_sweep_deprecated(args) -> int:
    sys.stderr.write("steerscope: note: `steerscope sweep` is now `steerscope eval sweep` (same flags)\n")
    return run_sweep(args)


def run_linearity(args) -> int:
    from ..evaluate.judges import HTTPJudge, LocalJudge
    from ..runs import linearity_score
    from ..vector import load_vector

    prompts = prompts_from_args(args)
    vector = load_vector(args.vector)
    summarizer = args.summarizer
    if summarizer == "http":
        if not (args.judge_url and args.judge_model):
            raise InvalidArgumentError("--summarizer http needs --judge-url and --judge-model")
        summarizer = HTTPJudge(args.judge_url, args.judge_model, api_key_env=args.judge_api_key_env)
    config, m = config_and_model(args)
    if summarizer == "local":
        summarizer = LocalJudge(m)  # the judge is the loaded model
    res = linearity_score(m, args.adapter, vector, prompts, config=config.replace(summarizer=summarizer))
    for i, j in res.matching:
        print(f"LoRA batch {i} <-> vector batch {j}: cos {res.similarity[i, j]:.3f}\n"
              f"  LoRA:   {res.lora_summaries[i]}\n  vector: {res.vector_summaries[j]}")
    print(f"linearity score {res.score:.3f}; embedding-shift cosine {res.embedding_shift_cosine:.3f}")
    if res.control_score is not None:
        print(f"random-vector control: score {res.control_score:.3f}; "
              f"embedding-shift cosine {res.control_embedding_shift_cosine:.3f}")
    say_where(args.out_dir)
    return 0


def _load_many(specs: list[str]):
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
                vectors.extend(vs)
                labels.extend(f"{path}:{i}" for i in range(len(vs)))
                continue
        vectors.append(load_vector(spec))
        labels.append(spec)
    return vectors, labels


def run_kl(args) -> int:
    from ..evaluate.kl import kl_divergence
    from ..io import write_json
    from ..vector import load_vector

    prompts = prompts_from_args(args)
    vectors, labels = _load_many(args.vectors)
    scales = args.scale if isinstance(args.scale, list) else [args.scale] * len(vectors)
    if len(scales) != len(vectors):
        raise InvalidArgumentError(f"--scale gives {len(scales)} values for {len(vectors)} vectors; give 1 or one each")
    reference = load_vector(args.reference) if args.reference else None
    config, m = config_and_model(args, reference=reference)
    values = kl_divergence(m, vectors, prompts, config=config)
    rows = [{"vector": label, "scale": s, "kl": float(v)} for label, s, v in zip(labels, scales, values)]
    for row in rows:
        print(json.dumps(row))
    if args.out:
        settings = {k: getattr(args, k) for k in ("direction", "score_positions", "positions", "reference")}
        write_json(args.out, {**settings, "n_prompts": len(prompts), "rows": rows})
    return 0
