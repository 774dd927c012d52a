"""The decoding state of a continuously batched generation: a KV cache whose rows can join and leave between steps.

Rows are left-padded to a common cache length. New requests are prefilled as their own small batch and merged into
the running batch by left-padding whichever side is shorter (keys/values of padded slots are zeros and masked out);
finished rows are dropped with an index-select and all-padding columns on the left are trimmed. Every forward gets
the full 2D attention mask (B, S_total) and explicit position ids, so steering positions (computed from the mask)
and rotary positions are exact for every row, whatever joined the batch when.

Steering is per row: for the rows present in a forward, ``steer(model, [v_row...], scale=[...], positions=...)`` is
entered once per (positions, operator) group and term slot, and kept until the batch composition changes.

Example:
    >>> state = BatchState(m)
    >>> first = state.admit([Row(prompt_ids=[1, 2, 3], terms=[])])   # prefill, next-token logits (1, V)
    >>> logits = state.step(torch.tensor([[5]]))                       # one decoding step for every row
"""

from __future__ import annotations

import logging
from contextlib import ExitStack
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from ..inputs import prompt_lengths
from ..steer import steer
from ..vector import SteeringVector

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Term:
    """One vector applied to one request: ``scale * vector`` at ``positions`` with ``operator``."""

    vector: SteeringVector
    scale: float
    positions: str = "all"
    operator: str = "add"


@dataclass
class Row:
    """One sequence in the batch: its prompt, steering terms and the tokens generated so far."""

    prompt_ids: list[int]
    terms: list[Term]
    generated: list[int] = field(default_factory=list)
    payload: object = None  # the scheduler's request object


def steering_stack(model, rows: list[Row]) -> ExitStack:
    """Enter the steering contexts for ``rows`` (one per (positions, operator) group and term slot).

    Term j of every row shares one ``steer`` call (rows without a j-th term get None). Slots are entered last to
    first so that, with ``prepend=True`` hooks, term 0 is applied first, as in
    ``with steer(m, v1): generate(m, p, vectors=v0)``.
    """
    stack = ExitStack()
    groups: dict[tuple[str, str], list[list[Term]]] = {}
    for b, row in enumerate(rows):
        for term in row.terms:
            groups.setdefault((term.positions, term.operator), [[] for _ in rows])[b].append(term)
    try:
        for (positions, operator), per_row in groups.items():
            depth = max(len(t) for t in per_row)
            for j in reversed(range(depth)):
                vecs = [t[j].vector if j < len(t) else None for t in per_row]
                scales = [t[j].scale if j < len(t) else 0.0 for t in per_row]
                stack.enter_context(steer(model, vecs, scales, positions=positions, operator=operator))
    except BaseException:
        stack.close()
        raise
    return stack


def _left_pad(x: Tensor, n: int, dim: int) -> Tensor:
    """Pad ``x`` with n zeros on the left of dimension ``dim`` (0 <= dim < x.ndim)."""
    if n == 0:
        return x
    pad = [0, 0] * (x.ndim - 1 - dim) + [n, 0]
    return F.pad(x, pad)


class BatchState:
    """Rows, their KV cache and attention mask; ``admit`` prefills and merges, ``step`` decodes, ``keep`` drops.

    Args:
        model: a ``SteerableModel``.
    """

    def __init__(self, model) -> None:
        self.model = model
        self.rows: list[Row] = []
        self.cache = None
        self.mask: Tensor | None = None  # (B, S) long, 1 at real tokens
        self._steering: ExitStack | None = None
        self.mergeable = True  # set False on the first cache whose layers cannot be left-padded and merged

    @property
    def size(self) -> int:
        return len(self.rows)

    def _forward(self, rows: list[Row], ids: Tensor, mask: Tensor, pos: Tensor, cache, steering: ExitStack | None):
        from transformers import DynamicCache

        if cache is None:
            cache = DynamicCache(config=self.model.hf.config)
        plen = torch.tensor([len(r.prompt_ids) for r in rows], device=ids.device)
        own = steering is None
        stack = steering_stack(self.model, rows) if own else steering
        try:
            with prompt_lengths(plen):
                out = self.model.hf(input_ids=ids, attention_mask=mask, position_ids=pos, cache=cache,
                                    use_cache=True, logits_to_keep=1)
        finally:
            if own:
                stack.close()
        return out.logits[:, -1, :], cache

    @torch.no_grad()
    def admit(self, rows: list[Row]) -> Tensor:
        """Prefill ``rows`` as one left-padded batch, merge them into the running batch; next-token logits (n, V)."""
        self._drop_steering()  # the running batch's hooks expect its row count
        device = self.model.device
        width = max(len(r.prompt_ids) for r in rows)
        pad = self.model.tokenizer.pad_token_id or 0
        ids = torch.tensor([[pad] * (width - len(r.prompt_ids)) + r.prompt_ids for r in rows], device=device)
        mask = torch.tensor([[0] * (width - len(r.prompt_ids)) + [1] * len(r.prompt_ids) for r in rows],
                            device=device)
        pos = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 0)
        logits, cache = self._forward(rows, ids, mask, pos, None, None)
        self._merge(rows, cache, mask)
        return logits

    def _merge(self, rows: list[Row], cache, mask: Tensor) -> None:
        self._drop_steering()
        layers = getattr(cache, "layers", None)
        if layers is None or any(type(layer).__name__ != "DynamicLayer" for layer in layers):
            self.mergeable = False
        if not self.rows:
            self.rows, self.cache, self.mask = list(rows), cache, mask
            return
        if not self.mergeable:
            raise RuntimeError("this model's cache cannot take new rows while others decode; admit into an empty batch")
        old, new = self.mask.shape[1], mask.shape[1]
        total = max(old, new)
        for mine, theirs in zip(self.cache.layers, cache.layers):
            mine.keys = torch.cat([_left_pad(mine.keys, total - old, 2), _left_pad(theirs.keys, total - new, 2)])
            mine.values = torch.cat([_left_pad(mine.values, total - old, 2), _left_pad(theirs.values, total - new, 2)])
        self.mask = torch.cat([_left_pad(self.mask, total - old, 1), _left_pad(mask, total - new, 1)])
        self.rows.extend(rows)

    @torch.no_grad()
    def step(self, tokens: Tensor) -> Tensor:
        """Feed one token per row (B, 1); next-token logits (B, V)."""
        if self._steering is None:
            self._steering = steering_stack(self.model, self.rows)
        mask = torch.cat([self.mask, torch.ones_like(self.mask[:, :1])], dim=1)  # (B, S + 1)
        pos = self.mask.sum(-1, keepdim=True)  # (B, 1): real tokens so far = position of the new one
        logits, self.cache = self._forward(self.rows, tokens, mask, pos, self.cache, self._steering)
        self.mask = mask
        return logits

    def keep(self, indices: list[int]) -> None:
        """Keep only these rows (in this order); trim the cache columns that became padding for every row."""
        if len(indices) == len(self.rows):
            return
        self._drop_steering()
        if not indices:
            self.rows, self.cache, self.mask = [], None, None
            return
        idx = torch.tensor(indices, device=self.mask.device)
        mask = self.mask.index_select(0, idx)
        start = int((mask.sum(0) > 0).long().argmax())  # first column some row still uses
        self.mask = mask[:, start:]
        for layer in self.cache.layers:
            layer.keys = layer.keys.index_select(0, idx)[:, :, start:]
            layer.values = layer.values.index_select(0, idx)[:, :, start:]
        self.rows = [self.rows[i] for i in indices]

    def _drop_steering(self) -> None:
        if self._steering is not None:
            self._steering.close()
            self._steering = None

    def close(self) -> None:
        """Remove steering hooks and forget every row."""
        self._drop_steering()
        self.rows, self.cache, self.mask = [], None, None
