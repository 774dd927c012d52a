"""Model inputs: chat formatting, left-padded tokenisation, position ids, forward keyword arguments, and where each
row's prompt ends (``prompt_lengths``). The bottom of the stack above the model: hooks, steering, replay and
generation all build on it, and it imports none of them.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import Tensor

from .errors import InvalidArgumentError

__all__ = ["PROMPT_LENGTHS", "forked_rng", "format_prompt", "forward_kwargs", "position_ids", "prompt_lengths",
           "tokenize"]


def format_prompt(model, prompt: str, chat: bool = True) -> str:
    """Apply the tokenizer's chat template (user turn + generation prompt) when it has one and ``chat`` is set."""
    tok = model.tokenizer
    if chat and getattr(tok, "chat_template", None):
        return tok.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True)
    return prompt


def tokenize(model, prompts: Sequence[str], *, chat: bool = True, add_special_tokens: bool | None = None):
    """Left-padded batch: (input_ids (B, T), attention_mask (B, T)) on the model's device."""
    if isinstance(prompts, str):
        prompts = [prompts]
    if not prompts:
        raise InvalidArgumentError("no prompts given; pass at least one non-empty prompt")
    if not all(isinstance(p, str) and p.strip() for p in prompts):
        raise InvalidArgumentError("prompts must be non-empty strings")
    if add_special_tokens is None:  # the chat template already holds its special tokens
        add_special_tokens = not (chat and getattr(model.tokenizer, "chat_template", None))
    enc = model.tokenizer([format_prompt(model, p, chat) for p in prompts], return_tensors="pt", padding=True,
                          add_special_tokens=add_special_tokens)
    return enc["input_ids"].to(model.device), enc["attention_mask"].to(model.device)


def position_ids(attention_mask: Tensor) -> Tensor:
    """(B, T) positions counted over real tokens only, as HF generate does: left padding does not shift them.
    Matters for absolute position embeddings (GPT-2); rotary models are shift-invariant anyway."""
    return (attention_mask.long().cumsum(-1) - 1).clamp_min(0)


def forward_kwargs(input_ids: Tensor, attention_mask: Tensor | None) -> dict:
    """Keyword arguments for a padding-correct, cache-free forward of a left-padded batch."""
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    return dict(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids(attention_mask),
                use_cache=False)


# Set by generate() while it runs so every active steering context knows where each row's prompt ends,
# also for uncached generation where every forward starts from position 0.
PROMPT_LENGTHS: contextvars.ContextVar[Tensor | None] = contextvars.ContextVar("steerscope_prompt_lengths", default=None)


@contextmanager
def prompt_lengths(lengths: Tensor | Sequence[int]) -> Iterator[None]:
    """Tell every steering context inside the block where each row's prompt ends (real tokens, padding excluded).

    Needed only when a forward call does not show it: uncached generation re-runs the whole sequence at every
    step, and scoring a prompt+completion batch must not count the completion as prompt.

    Example:
        >>> with ss.prompt_lengths(mask.sum(-1)), ss.steer(m, v, positions="generated"):
        ...     m.hf.generate(ids, attention_mask=mask, use_cache=False, max_new_tokens=8)
    """
    if not isinstance(lengths, Tensor):
        # cpu-ok: the pre-hook moves it to each forward's device
        lengths = torch.tensor(list(lengths), dtype=torch.long)
    token = PROMPT_LENGTHS.set(lengths)
    try:
        yield
    finally:
        PROMPT_LENGTHS.reset(token)


@contextmanager
def forked_rng(model, seed: int | None = None) -> Iterator[None]:
    """With a ``seed``: run the block on a forked torch RNG (CPU and the model's CUDA devices) seeded with it, so
    the caller's global RNG state is the same afterwards. ``seed=None``: no fork, the global RNG is used (and
    advanced) as usual, so unseeded calls keep differing from each other.

    Example:
        >>> with forked_rng(m, seed=0):
        ...     out = m.hf.generate(ids, do_sample=True)
    """
    cuda = sorted({p.device.index or 0 for p in model.hf.parameters() if p.device.type == "cuda"})
    with torch.random.fork_rng(devices=cuda, enabled=seed is not None):
        if seed is not None:
            torch.manual_seed(seed)
        yield
