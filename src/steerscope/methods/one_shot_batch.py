"""Pack (prompt, completion) pairs into one left-padded batch, and the one-shot promotion/suppression loss.

Shared by ``optimize_vector`` (training rows) and ``evaluate_transfer`` (teacher-forced log-probs). Each row is
``prompt tokens + completion tokens``; the prompt goes through ``generate.tokenize`` (chat template when the
tokenizer has one), the completion is tokenised on its own without special tokens and appended, so the completion
tokens are exactly what the model would have to generate after the prompt.

Example:
    >>> batch = pack_completions(m, [("Hi", "Sure, here is")])
    >>> batch.ids.shape, batch.target_ids.shape      # (1, T), (number of completion tokens,)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from ..errors import InvalidArgumentError
from ..generate import tokenize
from ..steer import Positions

EPS = 1e-6  # keeps log(p + ε) and log(1 − p + ε) finite, as in the reference implementation


@dataclass
class PackedBatch:
    """N rows of ``prompt + completion``, left-padded to T tokens.

    Attributes:
        ids, mask: (N, T) token ids and attention mask (left padding).
        prompt_len: (N,) prompt tokens per row (real tokens, template included).
        completion_len: (N,) completion tokens per row.
        pred_index: (M,) flat indices into (N·T) of the positions whose next-token logits predict a completion token.
        target_ids: (M,) the completion token each of those positions must predict.
        token_row: (M,) the row each completion token belongs to.
    """

    ids: Tensor
    mask: Tensor
    prompt_len: Tensor
    completion_len: Tensor
    pred_index: Tensor
    target_ids: Tensor
    token_row: Tensor

    @property
    def rows(self) -> int:
        return int(self.ids.shape[0])

    def steer_mask(self, positions: Sequence[str]) -> Tensor:
        """(N, T, 1) float: 1 where row r is steered, by the position spec of each row (all | prompt | last:k).

        Positions are absolute within the row's real tokens, exactly as ``steer()`` computes them when the prompt
        length is known (``PROMPT_LENGTHS``), so the replayed loss and a full steered forward agree.
        """
        abs_pos = (self.mask.long().cumsum(-1) - 1).masked_fill(self.mask == 0, -1)  # (N, T), -1 at padding
        rows = [Positions.parse(p).mask(abs_pos[r:r + 1], self.prompt_len[r:r + 1]) for r, p in enumerate(positions)]
        return torch.cat(rows).unsqueeze(-1).to(torch.float32)


def completion_token_ids(model, completion: str) -> list[int]:
    """Token ids of a completion as it follows a prompt (no special tokens added)."""
    if not isinstance(completion, str) or not completion:
        raise InvalidArgumentError("completions must be non-empty strings")
    ids = model.tokenizer(completion, add_special_tokens=False)["input_ids"]
    if not ids:
        raise InvalidArgumentError(f"completion {completion!r} tokenises to nothing; use visible text")
    return list(ids)


def pack_completions(model, pairs: Sequence[tuple[str, str]], *, chat: bool = True) -> PackedBatch:
    """One left-padded batch holding every (prompt, completion) pair as a row.

    Example:
        >>> b = pack_completions(m, [("Hi", "Sure"), ("Hi", "No")])
        >>> b.rows
        2
    """
    if not pairs:
        raise InvalidArgumentError("nothing to pack: give at least one (prompt, completion) pair")
    prompt_cache: dict[str, list[int]] = {}
    seqs, plens, clens = [], [], []
    for prompt, completion in pairs:
        if prompt not in prompt_cache:
            ids, mask = tokenize(model, [prompt], chat=chat)
            prompt_cache[prompt] = ids[0][mask[0].bool()].tolist()
        p, c = prompt_cache[prompt], completion_token_ids(model, completion)
        seqs.append(p + c)
        plens.append(len(p))
        clens.append(len(c))
    n, width = len(seqs), max(len(s) for s in seqs)
    pad = model.tokenizer.pad_token_id
    pad = 0 if pad is None else int(pad)
    ids = torch.full((n, width), pad, dtype=torch.long)
    mask = torch.zeros((n, width), dtype=torch.long)
    pred, targets, owner = [], [], []
    for r, seq in enumerate(seqs):
        offset = width - len(seq)  # left padding
        ids[r, offset:] = torch.tensor(seq)
        mask[r, offset:] = 1
        first = offset + plens[r]  # index of the first completion token
        for i in range(clens[r]):
            pred.append(r * width + first + i - 1)  # the logits one position earlier predict it
            targets.append(seq[plens[r] + i])
            owner.append(r)
    device = model.device
    return PackedBatch(
        ids=ids.to(device),
        mask=mask.to(device),
        prompt_len=torch.tensor(plens, device=device),
        completion_len=torch.tensor(clens, device=device),
        pred_index=torch.tensor(pred, device=device),
        target_ids=torch.tensor(targets, device=device),
        token_row=torch.tensor(owner, device=device),
    )


def gather_hidden(hidden: Tensor, batch: PackedBatch) -> Tensor:
    """(M, D) final hidden states at the positions that predict completion tokens (LM head on these only)."""
    return hidden.reshape(-1, hidden.shape[-1]).index_select(0, batch.pred_index)


def token_logprobs(logits: Tensor, target_ids: Tensor, coldness: float = 1.0) -> Tensor:
    """(M,) log softmax(coldness · logits)[target] for logits (M, V)."""
    return torch.log_softmax(coldness * logits.float(), dim=-1).gather(-1, target_ids[:, None]).squeeze(-1)


def completion_losses(
    logprobs: Tensor,
    batch: PackedBatch,
    suppress: Tensor,
    *,
    normalize_by_length: bool = False,
    eps: float = EPS,
) -> Tensor:
    """(N,) loss of each completion from its tokens' log-probs (M,).

    Promotion: −Σ log(p + ε); suppression (``suppress[r]`` True): −Σ log(1 − p + ε); optionally divided by the
    completion's length.
    """
    p = logprobs.exp()
    is_sup = suppress.to(p.device)[batch.token_row]  # (M,)
    per_token = torch.where(is_sup, -torch.log1p(-p + eps), -torch.log(p + eps))
    per_row = torch.zeros(batch.rows, device=p.device, dtype=p.dtype).index_add(0, batch.token_row, per_token)
    if normalize_by_length:
        per_row = per_row / batch.completion_len.to(per_row.dtype)
    return per_row
