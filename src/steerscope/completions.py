"""Pack (prompt, completion) pairs into one left-padded batch, and the one-shot promotion/suppression loss.

Shared by ``optimize_vector`` (training rows) and ``evaluate_transfer`` (teacher-forced log-probs). Each row is
``prompt tokens + completion tokens``; the prompt goes through ``inputs.tokenize`` (chat template when the
tokenizer has one), the completion is tokenised on its own without special tokens and appended, so the completion
tokens are exactly what the model would have to generate after the prompt. ``pack_shared`` puts all completions
of one prompt in one row behind a single copy of the prompt (a 4-D attention mask keeps them apart).

Example:
    >>> batch = pack_completions(m, [("Hi", "Sure, here is")])
    >>> batch.ids.shape, batch.target_ids.shape      # (1, T), (number of completion tokens,)
    >>> shared = pack_shared(m, [("Hi", ["Sure, here is", "No"])])   # one row, the prompt computed once
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from .errors import InvalidArgumentError
from .inputs import tokenize
from .steer import Positions

EPS = 1e-6  # keeps log(p + ε) and log(1 − p + ε) finite, as in the reference implementation


@dataclass
class PackedBatch:
    """R left-padded rows of T tokens holding K completions (M completion tokens in all).

    Two layouts: one row per (prompt, completion) pair (``pack_completions``: K = R), or one row per prompt with
    all its completions packed after it (``pack_shared``), where a 4-D attention mask lets each completion see
    the prompt and itself only, and position ids restart after the prompt for every completion.

    Attributes:
        ids, mask: (R, T) token ids and 2-D padding mask (1 = real token).
        position_ids: (R, T) position of each token as the model sees it; -1 at padding.
        attn4d: (R, 1, T, T) additive attention mask for the shared layout, else None.
        prompt_len: (R,) prompt tokens per row (template included).
        completion_len: (K,) tokens per completion; completion_row: (K,) the row holding it.
        pred_index: (M,) flat indices into (R·T) of the positions whose next-token logits predict a completion token.
        target_ids: (M,) the completion token each of those positions must predict.
        token_completion: (M,) the completion each token belongs to.
    """

    ids: Tensor
    mask: Tensor
    position_ids: Tensor
    prompt_len: Tensor
    completion_len: Tensor
    completion_row: Tensor
    pred_index: Tensor
    target_ids: Tensor
    token_completion: Tensor
    attn4d: Tensor | None = None

    @property
    def rows(self) -> int:
        return len(self.ids)

    @property
    def completions(self) -> int:
        return len(self.completion_len)

    def forward_inputs(self) -> tuple[Tensor, Tensor | None]:
        """(attention mask, explicit position ids or None) to run this batch through the model."""
        if self.attn4d is None:
            return self.mask, None
        return self.attn4d, self.position_ids.clamp_min(0)

    def steer_mask(self, positions: Sequence[str]) -> Tensor:
        """(R, T, 1) float: 1 where row r is steered, by the position spec of each row (all | prompt | last:k).

        Positions are the model's positions (completion tokens come after the prompt), exactly as ``steer()``
        computes them when the prompt length is known (``PROMPT_LENGTHS``), so the replayed loss and a full
        steered forward agree.
        """
        return torch.cat([Positions.parse(p).mask(self.position_ids[r : r + 1], self.prompt_len[r : r + 1])
                          for r, p in enumerate(positions)]).unsqueeze(-1).float()


def completion_token_ids(model, completion: str) -> list[int]:
    """Token ids of a completion as it follows a prompt (no special tokens added)."""
    if not isinstance(completion, str) or not completion:
        raise InvalidArgumentError("completions must be non-empty strings")
    ids = model.tokenizer(completion, add_special_tokens=False)["input_ids"]
    if not ids:
        raise InvalidArgumentError(f"completion {completion!r} tokenises to nothing; use visible text")
    return list(ids)


def _pack(model, groups: Sequence[tuple[str, Sequence[str]]], chat: bool, shared: bool) -> PackedBatch:
    """Rows of prompt + completions; ``shared`` packs every completion of a group after one copy of its prompt."""
    if not groups or any(not comps for _, comps in groups):
        raise InvalidArgumentError("nothing to pack: give at least one (prompt, completion) pair")
    prompt_ids: dict[str, list[int]] = {}  # each distinct prompt tokenised once
    for prompt, _ in groups:
        if prompt not in prompt_ids:
            ids, mask = tokenize(model, [prompt], chat=chat)
            prompt_ids[prompt] = ids[0][mask[0].bool()].tolist()
    rows = [(prompt_ids[prompt], [completion_token_ids(model, c) for c in comps]) for prompt, comps in groups]
    width = max(len(p) + sum(len(c) for c in cs) for p, cs in rows)
    n = len(rows)
    # token ids (padding: the pad token, or 0 without one), position ids (-1 at padding) and each token's segment
    # (-1 prompt, i = completion i of the row, -2 padding; it gives the mask and attn4d after the loop)
    # cpu-ok: the packing tensors are filled on the host from Python lists and moved to the device once
    ids, pos, segment = (torch.full((n, width), fill, dtype=torch.long) for fill in (
        int(model.tokenizer.pad_token_id or 0), -1, -2))
    pred, targets, owner, plens, clens, crow = [], [], [], [], [], []
    for r, (p, cs) in enumerate(rows):
        seq = p + [t for c in cs for t in c]
        offset = width - len(seq)  # left padding
        ids[r, offset:] = torch.tensor(seq)  # cpu-ok: host-built row
        pos[r, offset : offset + len(p)] = torch.arange(len(p))  # cpu-ok: host-built row
        segment[r, offset : offset + len(p)] = -1
        plens.append(len(p))
        cursor = offset + len(p)
        for i, c in enumerate(cs):
            pos[r, cursor : cursor + len(c)] = torch.arange(len(p), len(p) + len(c))  # cpu-ok: host-built
            segment[r, cursor : cursor + len(c)] = i
            # the first token is predicted by the last prompt token, the others by the previous token
            pred += [r * width + src for src in (offset + len(p) - 1, *range(cursor, cursor + len(c) - 1))]
            targets += c
            owner += [len(clens)] * len(c)
            clens.append(len(c))
            crow.append(r)
            cursor += len(c)
    mask = (segment != -2).long()
    device = model.device
    attn4d = None
    if shared:
        q, k = segment[:, :, None], segment[:, None, :]  # (R, T, 1), (R, 1, T)
        # a real query sees the real keys up to it that are its row's prompt or its own completion (a padding query
        # sees no real key: left padding puts only padding before it)
        # cpu-ok: host-built causal mask, moved below
        allowed = torch.ones(width, width, dtype=torch.bool).tril() & (k != -2) & ((k == -1) | (k == q))
        # cpu-ok: host-built mask; padding queries see themselves: no all-masked softmax rows
        allowed |= torch.eye(width, dtype=torch.bool)
        # cpu-ok: filled on the host, then moved to the device
        attn4d = torch.zeros((n, 1, width, width), dtype=model.dtype).masked_fill(
            ~allowed[:, None], torch.finfo(model.dtype).min).to(device)
    return PackedBatch(ids=ids.to(device), mask=mask.to(device), position_ids=pos.to(device),
                       prompt_len=torch.tensor(plens, device=device), completion_len=torch.tensor(clens, device=device),
                       completion_row=torch.tensor(crow, device=device), pred_index=torch.tensor(pred, device=device),
                       target_ids=torch.tensor(targets, device=device),
                       token_completion=torch.tensor(owner, device=device), attn4d=attn4d)


def pack_completions(model, pairs: Sequence[tuple[str, str]], *, chat: bool = True) -> PackedBatch:
    """One left-padded batch holding every (prompt, completion) pair as its own row.

    Example:
        >>> b = pack_completions(m, [("Hi", "Sure"), ("Hi", "No")])
        >>> b.rows, b.completions
        (2, 2)
    """
    return _pack(model, [(p, [c]) for p, c in pairs], chat, shared=False)


def pack_shared(model, groups: Sequence[tuple[str, Sequence[str]]], *, chat: bool = True) -> PackedBatch:
    """One row per prompt with all its completions after it (4-D mask: each completion sees the prompt and itself).

    The prompt is then computed once per step instead of once per completion. Exact for full causal attention;
    models with sliding-window attention need every packed row to fit in the window (see ``can_share``).

    Example:
        >>> b = pack_shared(m, [("Hi", ["Sure", "No"])])
        >>> b.rows, b.completions
        (1, 2)
    """
    return _pack(model, groups, chat, shared=True)


def sliding_window(model) -> int | None:
    """The model's sliding attention window, or None when all its attention is full causal attention."""
    config = getattr(model.hf.config, "get_text_config", lambda: model.hf.config)()
    window = getattr(config, "sliding_window", None)
    return None if not window or getattr(config, "use_sliding_window", True) is False else int(window)


def gather_hidden(hidden: Tensor, batch: PackedBatch) -> Tensor:
    """(M, D) final hidden states at the positions that predict completion tokens (LM head on these only)."""
    return hidden.reshape(-1, hidden.shape[-1]).index_select(0, batch.pred_index)


def token_logprobs(logits: Tensor, target_ids: Tensor, coldness: float = 1.0) -> Tensor:
    """(M,) log softmax(coldness · logits)[target] for logits (M, V)."""
    return torch.log_softmax(coldness * logits.float(), dim=-1).gather(-1, target_ids[:, None]).squeeze(-1)


def completion_losses(logprobs: Tensor, batch: PackedBatch, suppress: Tensor, *, normalize_by_length: bool = False,
                      eps: float = EPS) -> Tensor:
    """(K,) loss of each completion from its tokens' log-probs (M,).

    Promotion: −Σ log(p + ε); suppression (``suppress[k]`` True): −Σ log(1 − p + ε); optionally divided by the
    completion's length.
    """
    p = logprobs.exp()
    # (M,): each token's completion is suppressed or promoted
    per_token = torch.where(suppress.to(p.device)[batch.token_completion], -torch.log1p(-p + eps), -torch.log(p + eps))
    per_completion = torch.zeros(batch.completions, device=p.device, dtype=p.dtype).index_add(
        0, batch.token_completion, per_token)
    if normalize_by_length:
        per_completion = per_completion / batch.completion_len.to(per_completion.dtype)
    return per_completion
