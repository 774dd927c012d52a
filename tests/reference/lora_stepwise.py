"""Test oracle (not shipped): the LoRA-discovery loss terms computed token by token, a full forward of P and Q per
continuation token, as the original implementation did. ``loss_terms`` must agree; ``bench/bench_lora_step.py``
times the two side by side."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch
from torch import Tensor

from steerscope.methods._lora_common import LossTerms, tail_logits, terms_from_logits


def loss_terms_stepwise(model, seq: Tensor, attn: Tensor, cont_mask: Tensor,
                        base: Callable[[], contextlib.AbstractContextManager], *, alpha: float, beta: float) -> LossTerms:
    """The same terms as ``loss_terms``, token by token (slow)."""
    n = cont_mask.shape[1]
    start = seq.shape[1] - n
    p_steps, q_steps = [], []
    for t in range(n):
        prefix, prefix_attn = seq[:, : start + t], attn[:, : start + t]
        with torch.no_grad(), base():
            p_steps.append(tail_logits(model, prefix, prefix_attn, 1))  # (B, 1, V)
        q_steps.append(tail_logits(model, prefix, prefix_attn, 1))
    return terms_from_logits(torch.cat(p_steps, 1), torch.cat(q_steps, 1), seq[:, start:], cont_mask,
                             alpha=alpha, beta=beta)
