"""steerscope extract lora ADAPTER_DIR --out V | steerscope extract contrastive --pairs FILE.jsonl --out V"""

from __future__ import annotations

import argparse

from .common import add_model_arg, input_dir, input_file, non_negative_float, output_file, positive_int


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


def register(commands, groups) -> None:
    p = groups["extract"].add_parser("lora", help="steering vector = mean residual shift a LoRA adapter causes")
    p.add_argument("adapter", metavar="ADAPTER_DIR", type=input_dir, help="PEFT LoRA adapter directory for this model")
    add_model_arg(p)
    p.add_argument("prompts", nargs="*", metavar="PROMPT")
    p.add_argument("--prompts-file", type=input_file, help="default: the first 32 shipped held-out honesty prompts")
    p.add_argument("--max-new-tokens", type=int, default=32, help="continuation sampled per prompt (0: none)")
    p.add_argument("--greedy", action="store_true", help="greedy continuations instead of sampling")
    p.add_argument("--temperature", type=non_negative_float, default=1.0, help="0 means greedy")
    p.add_argument("--per-layer", choices=["total", "increment"], default="total")
    p.add_argument("--batch-size", type=positive_int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-chat", action="store_true")
    p.add_argument("--out", required=True, type=output_file, help="output .safetensors vector file")
    p.set_defaults(func=run_lora)

    c = groups["extract"].add_parser("contrastive", help="CAA mean difference or PCA of contrastive pairs")
    add_model_arg(c)
    c.add_argument("--pairs", required=True, type=input_file,
                   help="jsonl with 'positive', 'negative' (and optional 'prompt'); or a shipped set's name, "
                        "e.g. contrastive_happy_sad")
    c.add_argument("--layers", type=layer_list, default=None, help="all | 8,10,12 | 5:15 (default all)")
    c.add_argument("--method", choices=["mean_diff", "pca"], default="mean_diff")
    c.add_argument("--read-position", type=int, default=-1, help="real token to read (-1: last)")
    c.add_argument("--site", default="resid_post", choices=["resid_post", "resid_pre", "mlp_out", "attn_out"])
    c.add_argument("--center", action="store_true", help="centred PCA (default: uncentred)")
    c.add_argument("--batch-size", type=positive_int, default=16)
    c.add_argument("--no-chat", action="store_true")
    c.add_argument("--out", required=True, type=output_file, help="output .safetensors vector file")
    c.set_defaults(func=run_contrastive)


def _report(v, out) -> None:
    norms = v.layer_norms() if hasattr(v, "layer_norms") else {}
    shown = ", ".join(f"{k}:{n:.3g}" for k, n in list(norms.items())[:8])
    print(f"wrote {out}: {v.method} vector, layers {v.layers[0]}..{v.layers[-1]} ({len(v.layers)}), norms {shown}"
          f"{' ...' if len(norms) > 8 else ''}")


def run_lora(args: argparse.Namespace) -> int:
    from ..methods.from_lora import vector_from_lora
    from .common import load_model_from_args, read_prompts

    prompts = read_prompts(args.prompts, args.prompts_file) if (args.prompts or args.prompts_file) else None
    m = load_model_from_args(args)
    v = vector_from_lora(m, args.adapter, prompts, max_new_tokens=args.max_new_tokens, do_sample=not args.greedy and args.temperature > 0,
                         temperature=args.temperature, batch_size=args.batch_size, chat=not args.no_chat,
                         seed=args.seed, per_layer=args.per_layer, progress=True)
    v.save(args.out)
    _report(v, args.out)
    return 0


def run_contrastive(args: argparse.Namespace) -> int:
    from ..data import load_pairs
    from ..methods.contrastive import contrastive_vector
    from .common import load_model_from_args

    pairs = load_pairs(args.pairs)
    m = load_model_from_args(args)
    v = contrastive_vector(m, pairs, layers=args.layers, method=args.method, read_position=args.read_position,
                           site=args.site, chat=not args.no_chat, batch_size=args.batch_size, center=args.center)
    v.save(args.out)
    _report(v, args.out)
    return 0
