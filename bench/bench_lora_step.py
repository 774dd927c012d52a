"""LoRA discovery step: one teacher-forced pass of P and Q vs a token-by-token loop (as in the original code).

Same batch, same sampled continuations, same adapter: both compute L = alpha·(−KL(P‖Q)) + beta·NLL(Q, y) and
backpropagate it. Reports the loss values of both and the speed ratio, measured side by side in one run.

    .venv/bin/python bench/bench_lora_step.py [--batch-size 4] [--new-tokens 32] [--repeats 2]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import torch


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "lora_step.json"))
    args = parser.parse_args()

    from peft import LoraConfig, get_peft_model

    import steerscope as ss
    from steerscope.data import load_prompts
    from steerscope.generate import tokenize
    from steerscope.io import write_json
    from steerscope.methods._lora_common import (
        default_target_modules,
        detach_peft,
        loss_terms,
        sample,
    )

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the oracle lives with the tests
    from reference.lora_stepwise import loss_terms_stepwise

    m = ss.load_model()
    prompts = load_prompts("honesty_train")[: args.batch_size]
    torch.manual_seed(0)
    pm = get_peft_model(m.hf, LoraConfig(r=2, lora_alpha=2, target_modules=default_target_modules(m)))
    try:
        with torch.no_grad():  # a non-trivial adapter so KL > 0
            for name, p in pm.named_parameters():
                if "lora_B" in name:
                    p.normal_(0, 1.0)
        ids, mask = tokenize(m, prompts)
        seq, attn, cont = sample(m, ids, mask, max_new_tokens=args.new_tokens)
        params = [p for p in pm.parameters() if p.requires_grad]

        def step(fn):
            for p in params:
                p.grad = None
            start = time.perf_counter()
            terms = fn(m, seq, attn, cont, pm.disable_adapter, alpha=1.1, beta=0.3)
            terms.loss.backward()
            elapsed = time.perf_counter() - start
            grad = torch.cat([p.grad.flatten() for p in params]).clone()
            return elapsed, terms, grad

        one = [step(loss_terms) for _ in range(args.repeats)]
        loop = [step(loss_terms_stepwise) for _ in range(args.repeats)]
    finally:
        detach_peft(pm)
    t_one = min(r[0] for r in one)
    t_loop = min(r[0] for r in loop)
    a, b = one[0][1], loop[0][1]
    ga, gb = one[0][2], loop[0][2]
    result = {
        "what": "one LoRA-discovery step (loss + backward): one-pass teacher forcing vs token-by-token loop",
        "model": m.name, "batch_size": args.batch_size, "new_tokens": args.new_tokens,
        "prompt_tokens": int(ids.shape[1]), "loss_tokens": a.tokens, "repeats": args.repeats,
        "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(), "platform": platform.platform(),
        "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "one_pass_seconds": t_one, "token_loop_seconds": t_loop, "speedup": t_loop / t_one,
        "one_pass": {"loss": float(a.loss), "kl": float(a.kl), "nll": float(a.nll)},
        "token_loop": {"loss": float(b.loss), "kl": float(b.kl), "nll": float(b.nll)},
        "max_abs_loss_diff": abs(float(a.loss) - float(b.loss)),
        "grad_rel_diff": float((ga - gb).norm() / gb.norm().clamp_min(1e-12)),
        "goal_speedup": 5.0,
    }
    write_json(args.out, result)
    print(f"one pass {t_one:.2f} s, token loop {t_loop:.2f} s, speedup {t_loop / t_one:.1f}x; "
          f"loss {float(a.loss):.6f} vs {float(b.loss):.6f}; grad rel diff {result['grad_rel_diff']:.2e} -> {args.out}")


if __name__ == "__main__":
    main()
