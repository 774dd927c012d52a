"""Test oracle (not shipped): one-shot steering written the slow, obvious way (for tests and the benchmark).

Each step runs one full steered forward (``steer()`` on the whole model, LM head over every position) and one
backward per completion, accumulating the gradient into the vector before the Adam step. ``optimize_vector`` must
produce the same loss trajectory; ``bench/bench_one_shot.py`` times the two side by side.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch
from torch import Tensor

from steerscope.completions import EPS, completion_token_ids
from steerscope.inputs import forward_kwargs, prompt_lengths, tokenize
from steerscope.methods.one_shot import Example
from steerscope.steer import steer
from steerscope.vector import SteeringVector


def naive_completion_loss(
    model,
    v: Tensor,
    example: Example,
    completion: str,
    *,
    suppress: bool,
    layer: int,
    site: str = "resid_pre",
    operator: str = "add",
    coldness: float = 0.7,
    normalize_by_length: bool = False,
    chat: bool = True,
    eps: float = EPS,
) -> Tensor:
    """Loss of one completion through the full model, steered by ``steer()`` with ``±v`` (differentiable in v)."""
    ids, _ = tokenize(model, [example.prompt], chat=chat)
    comp = torch.tensor([completion_token_ids(model, completion)], device=ids.device)
    full = torch.cat([ids, comp], dim=1)  # (1, P + C), no padding
    plen = ids.shape[1]
    vec = SteeringVector({layer: v}, site)
    # prompt_lengths: so "prompt"/"last:k" know where the prompt ends
    with prompt_lengths(torch.tensor([plen], device=ids.device)), steer(
        model, vec, -1.0 if example.negate else 1.0, positions=example.positions, operator=operator
    ):
        logits = model.hf(**forward_kwargs(full, None)).logits[0]  # (P + C, V)
    logp = (
        torch.log_softmax(coldness * logits[plen - 1 : -1].float(), -1)
        .gather(-1, comp[0][:, None])
        .squeeze(-1)
    )
    p = logp.exp()
    loss = (-torch.log(1 - p + eps) if suppress else -torch.log(p + eps)).sum()
    return loss / comp.shape[1] if normalize_by_length else loss


def optimize_vector_naive(
    model,
    examples: Sequence[Example],
    *,
    layer: int,
    site: str = "resid_pre",
    lr: float = 0.01,
    max_iters: int = 50,
    max_norm: float | None = None,
    init: Tensor,
    coldness: float = 0.7,
    normalize_by_length: bool = False,
    operator: str = "add",
    chat: bool = True,
) -> tuple[Tensor, list[float], list[float]]:
    """Plain loop: per step, forward + backward each completion separately, accumulate, Adam step, clip the norm.
    Returns the final vector, the loss before each step and each step's wall time in seconds."""
    v = init.detach().clone().to(model.device, model.dtype).requires_grad_(True)
    opt = torch.optim.Adam([v], lr=lr)
    jobs = [(ex, c, False) for ex in examples for c in ex.promote] + [
        (ex, c, True) for ex in examples for c in ex.suppress
    ]
    losses, seconds = [], []
    for _ in range(max_iters):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        total = 0.0
        for ex, completion, sup in jobs:
            loss = naive_completion_loss(
                model,
                v,
                ex,
                completion,
                suppress=sup,
                layer=layer,
                site=site,
                operator=operator,
                coldness=coldness,
                normalize_by_length=normalize_by_length,
                chat=chat,
            )
            loss.backward()  # gradient accumulation: one graph per completion
            total += float(loss.detach())
        losses.append(total)
        opt.step()
        with torch.no_grad():
            if max_norm is not None and v.norm() > max_norm:
                v.mul_(max_norm / v.norm())
        seconds.append(time.perf_counter() - t0)
    return v.detach(), losses, seconds
