"""steerscope discover lora [PROMPT...] --out DIR (flags: LoraDiscoveryConfig)"""

from __future__ import annotations

import argparse
import json

from .common import config_and_model, non_negative_int, positive_float, prompts_from_args, say_where
from .common import positive_int as _pos
from .flags import config_parser


def register(commands, groups) -> None:
    config_parser(groups["discover"], "lora", "steerscope.runs:discover_lora", required=("out_dir",), func=run,
                  help="train LoRA adapters that move away from the base model coherently (-KL + NLL)",
                  prompts="training prompts (default: the shipped honesty_train set, 400 prompts)",
                  types={"rank": _pos, "epochs": _pos, "max_steps": _pos, "stop_kl": positive_float,
                         "temperature": positive_float, "runs": _pos, "eval_size": _pos,
                         "num_samples": non_negative_int})


def run(args: argparse.Namespace) -> int:
    from ..runs import discover_lora

    prompts = prompts_from_args(args, default_none=True)
    config, m = config_and_model(args)
    result = discover_lora(m, prompts, config=config)
    for r in result.runs:
        h = r.heldout
        print(json.dumps({"run": r.index, "adapter": str(r.adapter_dir), "heldout_kl": round(h["kl"], 4),
                          "base_ppl": round(h["base_ppl"], 2),
                          "base_ppl_of_base_samples": round(h["base_ppl_of_base_samples"], 2)}))
    say_where(args.out_dir)
    return 0
