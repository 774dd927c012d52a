"""``steer()``: add, ablate or clamp vectors in a model's forward passes, per row, at chosen absolute positions.

Positions are absolute token indices within each row's real (unpadded) sequence, computed from the attention mask
(or the cache position) by a pre-hook on the top-level model, so "prompt", "generated" and "from position k" mean
the same with and without the KV cache and under left padding.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from .errors import InvalidArgumentError, SteeringPositionError
from .hooks import HookGroup, register
from .inputs import PROMPT_LENGTHS
from .models.load import SteerableModel
from .sites import check_site, hook_point
from .vector import SteeringVector

OPERATORS = ("add", "ablate", "clamp")

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
                k = int(text[len(prefix):])
                if prefix == "last:" and k < 1:
                    raise InvalidArgumentError("positions last:0 steers nothing; use last:K with K >= 1")
                return cls(prefix[:-1], k)
        if text.isdigit():
            return cls("from", int(text))
        raise InvalidArgumentError(
            f"positions {spec!r} not understood; use all, prompt, generated, from:K (absolute position K on) "
            "or last:K (last K prompt tokens, K >= 1)"
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


def _cache_of(kwargs: dict):
    """The KV cache passed to this forward, whatever the keyword is called in the installed transformers.

    transformers 4.x and early 5.x pass ``past_key_values``; 5.24 passes ``cache`` from ``generate``. Any value
    with ``get_seq_length`` is a cache; a legacy tuple-of-tuples under ``past_key_values`` is one too.
    """
    for name in ("cache", "past_key_values"):
        value = kwargs.get(name)
        if value is not None:
            return value
    for value in kwargs.values():
        if hasattr(value, "get_seq_length"):
            return value
    return None


def _cache_length(cache) -> int:
    """Tokens already in ``cache`` (host-side int read from tensor shapes: no device sync for dynamic caches)."""
    if hasattr(cache, "get_seq_length"):
        return int(cache.get_seq_length())
    if isinstance(cache, (tuple, list)):  # legacy ((k, v), ...) with k: (B, H, S, Dh)
        return 0 if not cache or cache[0] is None else int(cache[0][0].shape[-2])
    import transformers

    raise SteeringPositionError(
        f"cannot tell how many tokens the KV cache ({type(cache).__name__}) holds under transformers "
        f"{transformers.__version__}, so steering positions cannot be computed; pass an attention_mask covering "
        "the whole sequence, or report this transformers version to steerscope"
    )


@dataclass
class _RowState:
    """What one steering context remembers between the forward calls of a generation (per batch row)."""

    cache_id: int  # id() of the cache object the sequence lives in; 0 when uncached
    length: int  # tokens (padding included) the sequence holds after the last call
    padding: Tensor  # (B,) left-padding tokens in front of each row
    prompt_len: Tensor  # (B,) real prompt tokens of each row


class _PositionTracker:
    """Absolute positions of each forward call's tokens, from a pre-hook on the top-level model.

    Sources, in order (DESIGN rule 4; no device sync per step):
    1. a 2D ``attention_mask`` covering the call's tokens: positions = cumulative count of real tokens;
    2. the KV cache's length (whatever the cache keyword is called) plus the left padding this context saw
       when the cache was filled (transformers 5.24 drops the mask when no row is padded);
    3. ``cache_position`` when given without a readable cache;
    4. no mask and no cache: a fresh unpadded sequence, positions 0..T-1.
    The prompt of a sequence is what the first call on a fresh sequence holds, unless ``prompt_lengths()`` says.
    """

    def __init__(self, positions: Positions) -> None:
        self.positions = positions
        self.mask: Tensor | None = None
        self.state: _RowState | None = None

    def pre_hook(self, module, args, kwargs):
        abs_pos, state = self._locate(args, kwargs)
        explicit = PROMPT_LENGTHS.get()
        if explicit is not None:
            state.prompt_len = explicit.to(abs_pos.device)
        self.state = state
        self.mask = self.positions.mask(abs_pos, state.prompt_len)[..., None]  # (B, T, 1)

    def _locate(self, args: tuple, kwargs: dict) -> tuple[Tensor, _RowState]:
        ids = kwargs.get("input_ids", args[0] if args else None)
        if ids is None:
            ids = kwargs["inputs_embeds"][..., 0]
        batch, length = ids.shape[:2]
        device = ids.device
        cache = _cache_of(kwargs)
        past = _cache_length(cache) if cache is not None else 0
        cache_id = id(cache) if cache is not None else 0
        prev = self.state
        continues = (prev is not None and cache is not None and prev.cache_id == cache_id and prev.length == past
                     and prev.padding.shape[0] == batch and past > 0)
        mask = kwargs.get("attention_mask")
        if isinstance(mask, Tensor) and mask.ndim == 2 and mask.shape[-1] >= length:
            real = mask.bool()
            pos = (real.long().cumsum(-1) - 1).masked_fill(~real, -1)[:, -length:]  # (B, T), -1 at padding
            padding = prev.padding if continues else (~real).sum(-1)  # (B,) left padding (HF pads on the left)
            fresh = mask.shape[-1] == length
        else:
            cache_position = kwargs.get("cache_position")
            if continues:
                padding = prev.padding
            else:
                padding = torch.zeros(batch, dtype=torch.long, device=device)
            if past == 0 and cache is None and isinstance(cache_position, Tensor) and cache_position.numel():
                start = cache_position.reshape(-1)[:length].to(device).long()  # (T,) absolute cache indices
                pos = start[None, :] - padding[:, None]
            else:
                pos = (torch.arange(length, device=device) + past)[None, :] - padding[:, None]  # (B, T)
            fresh = past == 0
        if fresh or not continues:
            prompt_len = (pos >= 0).sum(-1) if fresh else pos[:, 0].clamp_min(0)
        else:
            prompt_len = prev.prompt_len
        return pos, _RowState(cache_id, past + length, padding.to(device), prompt_len.to(device))

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

    def __enter__(self) -> SteeringHandle:  # noqa: PYI034 (typing.Self needs Python 3.11)
        return self

    def __exit__(self, *exc) -> None:
        self.remove()


def steer(
    model: SteerableModel,
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
        vector: one vector for every row, or a list with one vector (or None) per batch row; with no vector at all
            nothing is steered and no hook is installed.
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
    sites = _per_site_layer(model, vectors, site)
    if not sites:  # no row has a vector: nothing is added, so no hook at all (not even the position tracker)
        return SteeringHandle(group)
    try:
        for (site_name, layer), rows in sites.items():
            point = hook_point(model, site_name, layer)
            # the block's own device (sharded models spread blocks over devices) and the compute dtype (a
            # quantized block's first parameter is uint8/int8, not what flows through the residual stream)
            param = next(point.module.parameters(), None)
            device = param.device if param is not None else model.device
            group.add(register(point, _steering_fn(rows, scales, per_row, operator, tracker, device, model.dtype)))
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


def _steering_fn(rows: list[Tensor | None], scales: list[float], per_row: bool, operator: str, tracker,
                 device: torch.device, dtype: torch.dtype):
    """Precompute (R, D) directions and scales on the module's device/dtype once; R = 1 or batch size.

    Directions are combined in fp32 and cast once. Should the stream arrive in another dtype/device than expected
    (an fp32 residual in a bf16 model, a block moved by accelerate), the cast is redone once and memoised: a
    host-side check, never a device sync.
    """
    d_model = next(r for r in rows if r is not None).shape[-1]
    dirs32 = torch.stack([r.float() if r is not None else torch.zeros(d_model) for r in rows])  # (R, D) cpu-ok: moved next line
    coef32 = torch.tensor(scales, dtype=torch.float32)[:, None]  # (R, 1) cpu-ok: moved with dirs32 in _cast
    unit32 = dirs32 / dirs32.norm(dim=-1, keepdim=True).clamp_min(1e-12)  # zero rows stay zero
    n_rows = dirs32.shape[0]
    cache: dict[tuple[torch.device, torch.dtype], tuple[Tensor, Tensor]] = {}

    def _cast(dev: torch.device, dt: torch.dtype) -> tuple[Tensor, Tensor]:
        key = (dev, dt)
        if key not in cache:
            add = (coef32 * dirs32).to(dev, dt)[:, None, :]  # (R, 1, D)
            cache[key] = (add, unit32.to(dev, dt)[:, None, :])
        return cache[key]

    _cast(device, dtype)

    def fn(x: Tensor) -> Tensor:  # x: (B, T, D)
        if per_row and x.shape[0] != n_rows:
            raise InvalidArgumentError(
                f"steering carries {n_rows} per-row vectors but the batch has {x.shape[0]} rows; pass one per row"
            )
        add, unit = _cast(x.device, x.dtype)
        mask = tracker.current(x).to(x.dtype)  # (B, T, 1)
        if operator == "add":
            return x + mask * add
        along = (x * unit).sum(-1, keepdim=True) * unit  # (B, T, D) component along v̂
        if operator == "ablate":
            return x - mask * along
        return x + mask * (add - along)

    return fn
