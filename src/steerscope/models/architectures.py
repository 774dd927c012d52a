"""Where each architecture keeps its decoder blocks, attention and MLP: data, not code.

Each entry names attribute paths relative to the HF ``*ForCausalLM`` module (``layers``) or to one block
(the rest). ``attn_out_proj`` / ``mlp_out_proj`` are the linear layers whose output is written into the
residual stream (used by LoRA export); ``post_norms`` marks families (Gemma 2/3) that normalise a
sublayer's output before adding it to the residual, so that projection's output is not what is added.

Override or extend at run time::

    from steerscope.models.architectures import ARCHITECTURES, ArchSpec
    ARCHITECTURES["my_model"] = ArchSpec(layers="model.decoder.layers", attn="attn", mlp="ffn",
                                         attn_out_proj="attn.out", mlp_out_proj="ffn.down")
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from torch import nn

from ..errors import ArchitectureError


@dataclass(frozen=True)
class ArchSpec:
    layers: str
    attn: str
    mlp: str
    attn_out_proj: str | None = None
    mlp_out_proj: str | None = None
    post_norms: bool = False
    final_norm: str | None = "model.norm"


_LLAMA_LIKE = ArchSpec(
    layers="model.layers", attn="self_attn", mlp="mlp", attn_out_proj="self_attn.o_proj", mlp_out_proj="mlp.down_proj"
)

# Gemma 2/3 normalise each sublayer's output before adding it to the residual stream
_GEMMA_POST_NORMS = replace(_LLAMA_LIKE, post_norms=True)

ARCHITECTURES: dict[str, ArchSpec] = {
    "llama": _LLAMA_LIKE,
    "mistral": _LLAMA_LIKE,
    "qwen2": _LLAMA_LIKE,
    "qwen3": _LLAMA_LIKE,
    "phi3": _LLAMA_LIKE,
    "gemma": _LLAMA_LIKE,
    "gemma2": _GEMMA_POST_NORMS,
    "gemma3_text": _GEMMA_POST_NORMS,
    "gpt2": ArchSpec(
        layers="transformer.h",
        attn="attn",
        mlp="mlp",
        attn_out_proj="attn.c_proj",
        mlp_out_proj="mlp.c_proj",
        final_norm="transformer.ln_f",
    ),
    "gpt_neox": ArchSpec(
        layers="gpt_neox.layers",
        attn="attention",
        mlp="mlp",
        attn_out_proj="attention.dense",
        mlp_out_proj="mlp.dense_4h_to_h",
        final_norm="gpt_neox.final_layer_norm",
    ),
}


def get_submodule(root: nn.Module, path: str) -> nn.Module:
    """``root.get_submodule`` with an error that names the override to use."""
    try:
        return root.get_submodule(path)
    except AttributeError as exc:
        raise ArchitectureError(
            f"module path {path!r} not found in {type(root).__name__}; register the right paths in "
            "steerscope.models.architectures.ARCHITECTURES[model_type]"
        ) from exc


def resolve_architecture(hf_model: nn.Module, model_type: str) -> ArchSpec:
    """The table entry for ``model_type``, else a fallback found by looking for the block list."""
    if model_type in ARCHITECTURES:
        return ARCHITECTURES[model_type]
    n_layers = getattr(hf_model.config, "num_hidden_layers", None)
    candidates = [
        name
        for name, module in hf_model.named_modules()
        if isinstance(module, nn.ModuleList) and n_layers is not None and len(module) == n_layers
    ]
    if len(candidates) != 1:
        raise ArchitectureError(
            f"unknown architecture {model_type!r}: found {len(candidates)} candidate block lists "
            f"({', '.join(candidates) or 'none'}); add an entry to "
            f"steerscope.models.architectures.ARCHITECTURES[{model_type!r}] = ArchSpec(layers=..., attn=..., mlp=...)"
        )
    block = hf_model.get_submodule(candidates[0])[0]
    children = dict(block.named_children())
    attn = next((n for n in children if "attn" in n or "attention" in n), "self_attn")
    mlp = next((n for n in children if "mlp" in n or "ffn" in n or "feed_forward" in n), "mlp")
    # the final norm cannot be guessed safely; methods that need logits from replayed blocks ask for it
    return ArchSpec(layers=candidates[0], attn=attn, mlp=mlp, final_norm=None)
