"""The one place hooks are registered, plus recording activations with an early stop.

Rules (DESIGN.md): hooks return a new output of the same type (bare tensor or tuple), never edit in place,
are registered first in line (``prepend=True``) so ``output_hidden_states`` observers see the steered stream,
and are removed in ``finally``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from .errors import StopForward
from .inputs import forward_kwargs
from .models.load import SteerableModel
from .sites import HookPoint, hook_point

TensorFn = Callable[[Tensor], Tensor]


def output_tensor(output) -> Tensor:
    """The hidden states inside a module output (bare tensor in transformers 5, tuple in older releases)."""
    return output[0] if isinstance(output, tuple) else output


def replace_output(output, new: Tensor):
    """``output`` with its hidden states swapped for ``new``, same container type."""
    if isinstance(output, tuple):
        return (new, *output[1:])
    return new


def register(point: HookPoint, fn: TensorFn, *, prepend: bool = True) -> RemovableHandle:
    """Install ``fn`` (hidden (B, T, D) -> hidden (B, T, D)) on a site's input or output."""
    if point.is_input:

        def pre_hook(module, args, kwargs):
            if args:
                return (fn(args[0]), *args[1:]), kwargs
            return args, {**kwargs, "hidden_states": fn(kwargs["hidden_states"])}

        return point.module.register_forward_pre_hook(pre_hook, with_kwargs=True, prepend=prepend)

    def hook(module, args, output):
        return replace_output(output, fn(output_tensor(output)))

    return point.module.register_forward_hook(hook, prepend=prepend)


class HookGroup:
    """Handles registered together and removed together (idempotent); as a context manager, removed on leaving
    the block, also on errors."""

    def __init__(self) -> None:
        self.handles: list[RemovableHandle] = []

    def add(self, handle: RemovableHandle) -> None:
        self.handles.append(handle)

    def remove(self) -> None:
        while self.handles:
            self.handles.pop().remove()

    def __enter__(self) -> HookGroup:  # noqa: PYI034 (typing.Self needs Python 3.11)
        return self

    def __exit__(self, *exc) -> None:
        self.remove()


@contextmanager
def record_activations(
    model: SteerableModel, layers: list[int], site: str = "resid_post", *, stop_early: bool = True, detach: bool = True
) -> Iterator[dict[int, Tensor]]:
    """Record ``site[L]`` for each layer into a dict filled during the forward passes run inside the block.

    With ``stop_early`` the forward ends after the last recorded layer (no later blocks, no LM head); run the
    model through ``run_until_stopped`` then.

    Example:
        >>> with record_activations(m, [5, 9]) as acts:
        ...     run_until_stopped(m.hf, input_ids=ids, attention_mask=mask)
        >>> acts[9].shape    # (B, T, D)
    """
    acts: dict[int, Tensor] = {}
    last = max(layers)

    def recorder(layer: int) -> TensorFn:
        def fn(x: Tensor) -> Tensor:
            acts[layer] = x.detach() if detach else x
            if stop_early and layer == last:
                raise StopForward
            return x

        return fn

    with HookGroup() as group:
        for layer in layers:
            # appended (not prepended) so steering hooks on the same module run before the recorder
            group.add(register(hook_point(model, site, layer), recorder(layer), prepend=False))
        yield acts


def run_until_stopped(module: nn.Module, *args, **kwargs):
    """Call ``module`` and swallow the ``StopForward`` an early-stopping hook raises. Returns the output or None."""
    try:
        return module(*args, **kwargs)
    except StopForward:
        return None


@torch.no_grad()
def capture(model, input_ids: Tensor, attention_mask: Tensor | None, layers: list[int], site: str = "resid_post"):
    """One no-grad forward that records ``site[L]`` for each layer and stops after the last: {L: (B, T, D)}."""
    with record_activations(model, layers, site) as acts:
        run_until_stopped(model.hf, **forward_kwargs(input_ids, attention_mask))
    return dict(acts)
