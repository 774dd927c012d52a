"""Site vocabulary: where in a decoder block a vector is read or written.

``resid_post[L]`` is the output of block L (= HF ``hidden_states[L+1]``), the default. ``resid_pre[L]`` is the input
of block L (= ``hidden_states[L]``). ``mlp_out[L]`` / ``attn_out[L]`` are the outputs of that submodule of block L
(for Gemma 2/3 that is before the post-sublayer norm).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from torch import nn

from .errors import InvalidArgumentError

Site = Literal["resid_post", "resid_pre", "mlp_out", "attn_out"]
SITES: tuple[str, ...] = ("resid_post", "resid_pre", "mlp_out", "attn_out")


def check_site(site: str) -> str:
    if site not in SITES:
        raise InvalidArgumentError(f"unknown site {site!r}; choose one of {', '.join(SITES)}")
    return site


@dataclass(frozen=True)
class HookPoint:
    """A module and whether the site is its input (pre-hook) or its output (forward hook)."""

    module: nn.Module
    is_input: bool


def hook_point(model, site: str, layer: int) -> HookPoint:
    """Map ``site[layer]`` to the module whose input or output carries it."""
    check_site(site)
    block = model.block(layer)
    if site == "resid_post":
        return HookPoint(block, is_input=False)
    if site == "resid_pre":
        return HookPoint(block, is_input=True)
    name = model.arch.mlp if site == "mlp_out" else model.arch.attn
    return HookPoint(block.get_submodule(name), is_input=False)
