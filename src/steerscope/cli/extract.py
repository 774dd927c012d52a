"""steerscope extract lora ADAPTER [PROMPT...] --out V | extract contrastive PAIRS --out V (flags: the configs)"""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import config_and_model, input_dir, input_file, non_negative_int, output_file, prompts_from_args
from .flags import config_parser


def layer_list(text: str) -> list[int] | None:
    """``all``, ``8,10,12`` or ``5:15`` (inclusive range)."""
    text = text.strip()
    if text == "all":
        return None
    try:
        if ":" in text:
            a, b = (int(x) for x in text.split(":"))
            if b < a:
                raise ValueError
            return list(range(a, b + 1))
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: use all, a list like 8,10,12 or a range like 5:15") from None
    if not values:
        raise argparse.ArgumentTypeError("give at least one layer")
    return values


def pairs_spec(text: str) -> str:
    """argparse type: a .jsonl file of pairs, or the name of a shipped set (``contrastive_happy_sad``)."""
    from ..data import data_path
    from ..errors import InvalidArgumentError

    if Path(text).exists() or "/" in text or text.endswith(".jsonl"):
        return input_file(text)
    try:
        data_path(text)
    except InvalidArgumentError as exc:
        raise argparse.ArgumentTypeError(f"{text} is neither a file nor {str(exc)[3:]}") from None
    return text


def _out(p) -> None:
    p.add_argument("--out", required=True, type=output_file, metavar="FILE", help="output .safetensors vector file")


def register(commands, groups) -> None:
    def lora_data(p) -> None:
        p.add_argument("adapter", metavar="ADAPTER", type=input_dir, help="PEFT LoRA adapter directory for this model")
        _out(p)

    config_parser(groups["extract"], "lora", "steerscope.methods.from_lora:vector_from_lora", before=lora_data,
                  help="steering vector = mean residual shift a LoRA adapter causes", func=run_lora,
                  prompts="prompts (default: the first 32 shipped held-out honesty prompts)",
                  types={"max_new_tokens": non_negative_int}, choices={"per_layer": ["total", "increment"]})

    def contrastive_data(p) -> None:
        p.add_argument("pairs", metavar="PAIRS", type=pairs_spec, help="jsonl with 'positive', 'negative' (and "
                       "optional 'prompt'); or a shipped set's name, e.g. contrastive_happy_sad")
        _out(p)

    config_parser(groups["extract"], "contrastive", "steerscope.methods.contrastive:contrastive_vector",
                  before=contrastive_data, help="CAA mean difference or PCA of contrastive pairs", func=run_contrastive,
                  types={"layers": layer_list}, options={"layers": {"nargs": None, "metavar": "all|8,10,12|5:15"}},
                  choices={"method": ["mean_diff", "pca"]})


def _save(v, out) -> None:
    """Write the vector to ``out`` and say what it holds."""
    v.save(out)
    norms = v.layer_norms()
    shown = ", ".join(f"{k}:{n:.3g}" for k, n in list(norms.items())[:8])
    print(f"wrote {out}: {v.method} vector, layers {v.layers[0]}..{v.layers[-1]} ({len(v.layers)}), norms {shown}"
          f"{' ...' if len(norms) > 8 else ''}")


def run_lora(args: argparse.Namespace) -> int:
    from ..methods.from_lora import vector_from_lora

    prompts = prompts_from_args(args, default_none=True)
    config, m = config_and_model(args)
    v = vector_from_lora(m, args.adapter, prompts, **config.as_kwargs())  # not @configurable: no config=
    _save(v, args.out)
    return 0


def run_contrastive(args: argparse.Namespace) -> int:
    from ..data import load_pairs
    from ..methods.contrastive import contrastive_vector

    pairs = load_pairs(args.pairs)
    config, m = config_and_model(args)
    v = contrastive_vector(m, pairs, config=config)
    _save(v, args.out)
    return 0
