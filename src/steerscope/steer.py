"""``steer()``: add, ablate or clamp vectors in a model's forward passes, per row, at chosen absolute positions.

Positions are absolute token indices within each row's real (unpadded) sequence, computed from the attention mask
(or the cache position) by a pre-hook on the top-level model, so "prompt", "generated" and "from position k" mean
the same with and without the KV cache and under left padding.
"""

from __future__ import annotations

import contextvars
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from .errors import InvalidArgumentError
from .hooks import HookGroup, register
from .sites import check_site, hook_point
from .vector import SteeringVector

OPERATORS = ("add", "ablate", "clamp")

# Set by generate() while it runs so every active steering context knows where each row's prompt ends,
# also for uncached generation where every forward starts from position 0.
PROMPT_LENGTHS: contextvars.ContextVar[Tensor | None] = contextvars.ContextVar("steerscope_prompt_lengths", default=None)


@dataclass(frozen=True)
class Positions:
    """Parsed position spec. kind: all | prompt | generated | from (abs >= k) | last (last k prompt tokens)."""

    kind: str
    k: int = 0

    @classmethod
    def parse(cls, spec: str | int | Positions) -> Positions:
        if isinstance(spec, Positions):
            return spec
        if isinstance(spec, int):
            return cls("from", spec)
        text = str(spec).strip()
        if text in ("all", "prompt", "generated"):
            return cls(text)
        for prefix in ("from:", "last:"):
            if text.startswith(prefix) and text[len(prefix):].isdigit():
                return cls(prefix[:-1], int(text[len(prefix):]))
        if text.isdigit():
            return cls("from", int(text))
        raise InvalidArgumentError(
            f"positions {spec!r} not understood; use all, prompt, generated, from:K (absolute position K on) "
            "or last:K (last K prompt tokens)"
        )

    def mask(self, abs_pos: Tensor, prompt_len: Tensor) -> Tensor:
        """(B, T) bool: which tokens to steer. abs_pos is -1 at padding."""
        real = abs_pos >= 0
        plen = prompt_len[:, None]
        if self.kind == "all":
            return real
        if self.kind == "prompt":
            return real & (abs_pos < plen)
        if self.kind == "generated":
            return abs_pos >= plen
        if self.kind == "from":
            return abs_pos >= self.k
        return real & (abs_pos < plen) & (abs_pos >= plen - self.k)  # last k prompt tokens


def absolute_positions(args: tuple, kwargs: dict) -> Tensor:
    """(B, T) absolute positions of the tokens in this forward call; -1 at left padding."""
    ids = kwargs.get("input_ids", args[0] if args else None)
    if ids is None:
        ids = kwargs["inputs_embeds"][..., 0]
    batch, length = ids.shape[:2]
    mask = kwargs.get("attention_mask")
    if isinstance(mask, Tensor) and mask.ndim == 2 and mask.shape[-1] >= length:
        pos = mask.long().cumsum(-1) - 1  # (B, S): index among real tokens
        pos = pos.masked_fill(mask == 0, -1)
        return pos[:, -length:]
    past = 0
    cache_position = kwargs.get("cache_position")
    if isinstance(cache_position, Tensor) and cache_position.numel():
        past = int(cache_position.reshape(-1)[0])
    elif kwargs.get("past_key_values") is not None and hasattr(kwargs["past_key_values"], "get_seq_length"):
        past = int(kwargs["past_key_values"].get_seq_length())
    return (torch.arange(length, device=ids.device) + past).expand(batch, length)


class _PositionTracker:
    """Per-forward mask (B, T, 1) of the steered tokens, from a pre-hook on the top-level model."""

    def __init__(self, positions: Positions) -> None:
        self.positions = positions
        self.mask: Tensor | None = None
        self.prompt_len: Tensor | None = None

    def pre_hook(self, module, args, kwargs):
        abs_pos = absolute_positions(args, kwargs)
        explicit = PROMPT_LENGTHS.get()
        if explicit is not None:
            self.prompt_len = explicit.to(abs_pos.device)
        elif (abs_pos.max(dim=-1).values < abs_pos.shape[-1]).all() and abs_pos[:, 0].le(0).all():
            # a fresh sequence (no cache): its real tokens are the prompt of what follows
            self.prompt_len = (abs_pos >= 0).sum(-1)
        if self.prompt_len is None or self.prompt_len.shape[0] != abs_pos.shape[0]:
            self.prompt_len = (abs_pos >= 0).sum(-1)
        self.mask = self.positions.mask(abs_pos, self.prompt_len)[..., None]

    def post_hook(self, module, args, output):
        self.mask = None

    def current(self, x: Tensor) -> Tensor:
        if self.mask is None or self.mask.shape[:2] != x.shape[:2]:
            # called outside a top-level forward (e.g. a submodule run directly): steer by chunk index
            pos = torch.arange(x.shape[1], device=x.device).expand(x.shape[0], -1)
            return self.positions.mask(pos, torch.full((x.shape[0],), x.shape[1], device=x.device))[..., None]
        return self.mask


def _as_rows(vector, scale) -> tuple[list[SteeringVector | None], list[float], bool]:
    """Normalise (vector | list, scale | list) into per-row lists; the bool says whether rows are per-row."""
    per_row = isinstance(vector, (list, tuple))
    vectors = list(vector) if per_row else [vector]
    if isinstance(scale, (list, tuple, Tensor)):
        scales = [float(s) for s in scale]
        if not per_row:
            vectors, per_row = vectors * len(scales), True
        elif len(scales) != len(vectors):
            raise InvalidArgumentError(f"got {len(vectors)} per-row vectors but {len(scales)} scales; give one each")
    else:
        scales = [float(scale)] * len(vectors)
    for s in scales:
        if not math.isfinite(s):
            raise InvalidArgumentError(f"scale must be a finite number, got {s}")
    if not any(isinstance(v, SteeringVector) for v in vectors):
        if not all(v is None for v in vectors):
            raise InvalidArgumentError("steer() takes SteeringVector objects (or None for an unsteered row)")
    return vectors, scales, per_row


class SteeringHandle:
    """Active steering; remove with ``.remove()`` or use as a context manager (removal happens in ``finally``)."""

    def __init__(self, group: HookGroup) -> None:
        self._group = group

    def remove(self) -> None:
        self._group.remove()

    def __enter__(self) -> SteeringHandle:
        return self

    def __exit__(self, *exc) -> None:
        self.remove()


def steer(
    model,
    vector: SteeringVector | Sequence[SteeringVector | None] | None,
    scale: float | Sequence[float] = 1.0,
    *,
    site: str | None = None,
    positions: str | int = "all",
    operator: str = "add",
) -> SteeringHandle:
    """Steer ``model`` until the returned handle is removed (or its ``with`` block ends).

    Args:
        model: a ``SteerableModel``.
        vector: one vector for every row, or a list with one vector (or None) per batch row.
        scale: one scale, or one per row (a single vector with a list of scales gives per-row scales).
        site: override the vector's site (``resid_post``, ``resid_pre``, ``mlp_out``, ``attn_out``).
        positions: ``all``, ``prompt``, ``generated``, ``from:K`` / int K, or ``last:K`` (last K prompt tokens).
        operator: ``add`` (x + s·v), ``ablate`` (x − (x·v̂)v̂) or ``clamp`` (x − (x·v̂)v̂ + s·v).

    Example:
        >>> with ss.steer(m, v, scale=4.0, positions="generated"):
        ...     out = ss.generate(m, ["Hi"])
        >>> with ss.steer(m, [v1, None, v2], scale=[4.0, 0.0, 2.0]):   # three rows, three treatments
        ...     logits = m.hf(**batch).logits
    """
    if operator not in OPERATORS:
        raise InvalidArgumentError(f"unknown operator {operator!r}; choose one of {', '.join(OPERATORS)}")
    vectors, scales, per_row = _as_rows(vector, scale)
    tracker = _PositionTracker(Positions.parse(positions))
    group = HookGroup()
    try:
        for (site_name, layer), rows in _per_site_layer(model, vectors, site).items():
            point = hook_point(model, site_name, layer)
            param = next(point.module.parameters(), None)
            param = param if param is not None else next(model.hf.parameters())
            group.add(register(point, _steering_fn(rows, scales, per_row, operator, tracker, param)))
        group.add(model.hf.register_forward_pre_hook(tracker.pre_hook, with_kwargs=True, prepend=True))
        group.add(model.hf.register_forward_hook(tracker.post_hook))
    except BaseException:
        group.remove()
        raise
    return SteeringHandle(group)


def _per_site_layer(model, vectors, site_override) -> dict[tuple[str, int], list[Tensor | None]]:
    """{(site, layer): per-row directions (None where a row has nothing there)}, widths checked."""
    table: dict[tuple[str, int], list[Tensor | None]] = {}
    for row, v in enumerate(vectors):
        if v is None:
            continue
        model.check_width(v.d_model)
        site_name = check_site(site_override or v.site)
        for layer, direction in v.directions.items():
            model.check_layer(layer)
            table.setdefault((site_name, layer), [None] * len(vectors))[row] = direction
    return table


def _steering_fn(rows: list[Tensor | None], scales: list[float], per_row: bool, operator: str, tracker, param):
    """Precompute (R, D) directions and scales on the module's device/dtype once; R = 1 or batch size."""
    d_model = next(r for r in rows if r is not None).shape[-1]
    dirs = torch.stack([r if r is not None else torch.zeros(d_model) for r in rows]).to(param.device, param.dtype)
    coef = torch.tensor(scales, device=param.device, dtype=param.dtype)[:, None]  # (R, 1)
    unit = dirs / dirs.norm(dim=-1, keepdim=True).clamp_min(1e-12)  # zero rows stay zero
    add = (coef * dirs)[:, None, :]  # (R, 1, D)
    unit = unit[:, None, :]
    n_rows = dirs.shape[0]

    def fn(x: Tensor) -> Tensor:  # x: (B, T, D)
        if per_row and x.shape[0] != n_rows:
            raise InvalidArgumentError(
                f"steering carries {n_rows} per-row vectors but the batch has {x.shape[0]} rows; pass one per row"
            )
        mask = tracker.current(x).to(x.dtype)  # (B, T, 1)
        if operator == "add":
            return x + mask * add
        along = (x * unit).sum(-1, keepdim=True) * unit  # (B, T, D) component along v̂
        if operator == "ablate":
            return x - mask * along
        return x + mask * (add - along)

    return fn
