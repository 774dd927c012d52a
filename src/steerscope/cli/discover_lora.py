"""steerscope discover lora [--prompts-file F] [--runs N] [--lr] [--max-steps] ... --out DIR"""

from __future__ import annotations

import argparse

from .common import (
    add_model_arg,
    add_report_arg,
    finish_report,
    finite_float,
    input_file,
    output_dir,
    positive_float,
    positive_int,
)


def register(commands, groups) -> None:
    p = groups["discover"].add_parser(
        "lora", help="train LoRA adapters that move away from the base model coherently (-KL + NLL)")
    add_model_arg(p)
    p.add_argument("--prompts-file", type=input_file, help="training prompts (.txt or .jsonl with 'prompt'); default: shipped "
                                          "honesty_train (400 prompts)")
    p.add_argument("--held-out-file", type=input_file, help="held-out prompts for KL and samples; default: shipped honesty_heldout")
    p.add_argument("--rank", type=positive_int, default=2)
    p.add_argument("--target-modules", nargs="+", default=None,
                   help="PEFT target module names (default: every block's MLP output projection)")
    p.add_argument("--lora-alpha", type=finite_float, default=None, help="PEFT lora_alpha (default: = rank)")
    p.add_argument("--alpha", type=finite_float, default=1.1, help="weight of -KL(P||Q)")
    p.add_argument("--beta", type=finite_float, default=0.3, help="weight of NLL(Q, y)")
    p.add_argument("--lr", type=positive_float, default=None, help="Adam learning rate (default: see docs)")
    p.add_argument("--epochs", type=positive_int, default=1)
    p.add_argument("--max-steps", type=positive_int, default=None, help="cap on optimiser steps per run")
    p.add_argument("--stop-kl", type=finite_float, default=0.5,
                   help="stop when a batch's KL per token exceeds this and keep the previous adapter state "
                        "(guards against collapse; 0 disables)")
    p.add_argument("--batch-size", type=positive_int, default=8)
    p.add_argument("--max-new-tokens", type=positive_int, default=128)
    p.add_argument("--temperature", type=positive_float, default=1.0)
    p.add_argument("--runs", type=positive_int, default=1, help="independent adapters to train")
    p.add_argument("--eval-size", type=positive_int, default=32, help="held-out prompts for the KL summary")
    p.add_argument("--num-samples", type=int, default=8, help="held-out prompts shown base vs adapted")
    p.add_argument("--sample-tokens", type=positive_int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-chat", action="store_true", help="do not apply the chat template")
    p.add_argument("--no-resume", action="store_true", help="retrain runs already finished in --out")
    p.add_argument("--out", required=True, type=output_dir, help="run directory")
    add_report_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json

    from ..methods.lora_discovery import DEFAULT_LR, discover_lora
    from .common import load_model_from_args, read_prompts

    prompts = read_prompts(None, args.prompts_file) if args.prompts_file else None
    held_out = read_prompts(None, args.held_out_file) if args.held_out_file else None
    m = load_model_from_args(args)
    result = discover_lora(
        m, prompts, heldout_prompts=held_out, rank=args.rank, target_modules=args.target_modules,
        lora_alpha=args.lora_alpha, alpha=args.alpha, beta=args.beta, lr=args.lr or DEFAULT_LR, epochs=args.epochs,
        max_steps=args.max_steps, stop_kl=args.stop_kl or None, batch_size=args.batch_size, max_new_tokens=args.max_new_tokens,
        temperature=args.temperature, runs=args.runs, out_dir=args.out, seed=args.seed, chat=not args.no_chat,
        eval_size=args.eval_size, num_samples=args.num_samples, sample_tokens=args.sample_tokens,
        resume=not args.no_resume,
    )
    for r in result.runs:
        h = r.heldout
        print(json.dumps({"run": r.index, "adapter": str(r.adapter_dir), "heldout_kl": round(h["kl"], 4),
                          "base_ppl": round(h["base_ppl"], 2),
                          "base_ppl_of_base_samples": round(h["base_ppl_of_base_samples"], 2)}))
    print(f"runs written to {result.out_dir}")
    finish_report(args, args.out)
    return 0
