"""Replay a range of decoder blocks from cached inputs: the engine of every optimisation in steerscope.

Anything optimised at layer L does not depend on blocks before it. ``LayerReplay`` runs the model once without
gradients, capturing with pre-hooks the hidden state entering block ``start`` and the exact arguments each block
``start..end`` receives (masks, rotary embeddings, cache positions: captured per block because e.g. Gemma 3 gives
sliding and global layers different masks). ``run(h)`` then replays only those blocks. Batches of k variants of
the same prompts (k vectors) are laid out as ``(k·B, T, D)``: variant i, prompt b at row ``i·B + b``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import torch
from torch import Tensor, nn

from .errors import InvalidArgumentError, StopForward
from .hooks import HookGroup, output_tensor, run_until_stopped
from .inputs import forward_kwargs
from .models.architectures import get_submodule


def default_source_target(n_layers: int) -> tuple[int, int]:
    """Source ≈ 1/4 depth, target ≈ 3/4 depth (SmolLM2's 30 blocks: 7 and 21, the MELBO reference's
    len(layers) − 8). Used by MELBO and MELBO-ortho."""
    return max(0, n_layers // 4), max(1, (3 * n_layers) // 4 - 1)


def _map_tensors(value: Any, fn: Callable[[Tensor], Tensor]) -> Any:
    """``value`` with ``fn`` applied to every tensor inside (tuples, lists, dicts); other objects unchanged."""
    if isinstance(value, Tensor):
        return fn(value)
    if isinstance(value, (tuple, list)):
        return type(value)(_map_tensors(v, fn) for v in value)
    if isinstance(value, dict):
        return {k: _map_tensors(v, fn) for k, v in value.items()}
    return value


def _block_device(module: nn.Module, default: torch.device) -> torch.device:
    """The device a module computes on: its first parameter's (``default`` if it has none)."""
    return next((param.device for param in module.parameters()), default)


class LayerReplay:
    """Cached inputs of blocks ``start..end`` (inclusive) for one batch of prompts.

    Attributes:
        hidden: (B, T, D) the residual stream entering block ``start`` (= ``resid_pre[start]``).
        attention_mask: (B, T) the padding mask the batch was run with.

    Example:
        >>> replay = LayerReplay(m, ids, mask, start=8, end=21)       # θ lives at resid_post[7]
        >>> z = replay.run(replay.hidden + theta)                     # resid_post[21], (B, T, D)
    """

    def __init__(self, model, input_ids: Tensor, attention_mask: Tensor | None, start: int, end: int,
                 position_ids: Tensor | None = None) -> None:
        if not 0 <= start <= end < model.n_layers:
            raise InvalidArgumentError(f"cannot replay blocks {start}..{end}: this model has blocks "
                                       f"0..{model.n_layers - 1} and start <= end")
        self.model, self.start, self.end = model, start, end
        self.batch = int(input_ids.shape[0])
        self.attention_mask = attention_mask if attention_mask is not None else torch.ones_like(input_ids)
        self._inputs: list[tuple[tuple, dict]] = []  # per block: its arguments after the hidden state
        self._tiled: dict[int, list[tuple[tuple, dict]]] = {1: self._inputs}
        self._capture(input_ids, attention_mask, position_ids)

    @torch.no_grad()
    def _capture(self, input_ids: Tensor, attention_mask: Tensor | None, position_ids: Tensor | None) -> None:
        """One forward, stopped after block ``end``: sets ``hidden`` and keeps each block's other arguments."""

        def hook(index: int, module, args, kwargs):
            hidden = args[0] if args else kwargs["hidden_states"]
            if index == self.start:
                self.hidden = hidden.detach()
            # kept on the block's own device: a sharded model (device_map) spreads blocks over devices
            device = _block_device(module, hidden.device)
            rest = {k: v for k, v in kwargs.items() if k != "hidden_states"}
            self._inputs.append(_map_tensors((args[1:], rest), lambda t: t.to(device)))
            if index == self.end:
                raise StopForward

        with HookGroup() as group:
            for index in range(self.start, self.end + 1):
                group.add(self.model.layers[index].register_forward_pre_hook(partial(hook, index), with_kwargs=True,
                                                                             prepend=True))
            # explicit position_ids go with a custom 4-D mask (e.g. several completions packed after one prompt)
            kwargs = forward_kwargs(input_ids, attention_mask if position_ids is None else None)
            if position_ids is not None:
                kwargs.update(attention_mask=attention_mask, position_ids=position_ids)
            run_until_stopped(self.model.hf, **kwargs)

    def _inputs_for(self, rows: int) -> list[tuple[tuple, dict]]:
        """The blocks' arguments for ``rows`` = k·B rows: every (B, ...) tensor (ndim >= 2) tiled k times."""
        if rows % self.batch:
            raise InvalidArgumentError(f"replay batch of {rows} rows is not a multiple of the {self.batch} prompts")
        times = rows // self.batch
        if times not in self._tiled:
            self._tiled[times] = _map_tensors(
                self._inputs, lambda t: torch.cat([t] * times) if t.ndim >= 2 and t.shape[0] == self.batch else t)
        return self._tiled[times]

    def run(self, hidden: Tensor, *, until: int | None = None) -> Tensor:
        """Blocks ``start..until`` (default ``end``) on ``hidden`` (k·B, T, D); returns ``resid_post[until]``."""
        until = self.end if until is None else until
        if not self.start <= until <= self.end:  # inputs were captured for these blocks only
            raise InvalidArgumentError(f"until={until} is outside the replayed blocks {self.start}..{self.end}")
        blocks = self.model.layers[self.start:until + 1]
        for block, (args, kwargs) in zip(blocks, self._inputs_for(hidden.shape[0])):
            hidden = hidden.to(_block_device(block, hidden.device))  # no-op unless the model is sharded
            hidden = output_tensor(block(hidden, *args, **kwargs))
        return hidden

    def run_shifted(self, thetas: Tensor) -> Tensor:
        """``run`` with each row of ``thetas`` (k, D) added at every position of ``hidden`` (padding included; it is
        masked out of attention): (k·B, T, D), vector i on prompt b at row i·B + b. θ may be an fp32 master copy on
        any device: it is moved to the hidden state's device and cast to its dtype where it enters."""
        shift = thetas.to(self.hidden.device, self.hidden.dtype).repeat_interleave(self.batch, 0)[:, None, :]
        return self.run(self.hidden.repeat(thetas.shape[0], 1, 1) + shift)

    def logits(self, hidden: Tensor) -> Tensor:
        """Replay through ``end``, then the final norm and LM head: (k·B, T, vocab). Needs end = last block."""
        if self.end != self.model.n_layers - 1:
            raise InvalidArgumentError("logits() needs a replay that ends at the last block")
        return hidden_to_logits(self.model, self.run(hidden))


def hidden_to_logits(model, hidden: Tensor) -> Tensor:
    """Final norm + LM head (+ Gemma's logit soft-capping) on the last block's output."""
    if model.arch.final_norm is None:
        raise InvalidArgumentError(f"steerscope does not know the final norm of {model.model_type!r}; set "
                                   f"final_norm in steerscope.models.architectures.ARCHITECTURES[{model.model_type!r}]")
    for module in (get_submodule(model.hf, model.arch.final_norm), model.hf.get_output_embeddings()):
        hidden = module(hidden.to(_block_device(module, hidden.device)))  # final norm, then the LM head
    cap = getattr(model.hf.config, "final_logit_softcapping", None)
    return torch.tanh(hidden / cap) * cap if cap else hidden  # hidden: now the logits
