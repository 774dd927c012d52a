"""LoRA adapter → steering vector: the adapter's mean effect on the residual stream, per layer.

For every layer l: v_l = mean over all real tokens of all prompts (and their sampled continuations) of
h_l(with adapter) − h_l(base) at ``resid_post[l]``. Works for any PEFT LoRA adapter directory of the model.

``per_layer="total"`` (default) stores that cumulative shift at every layer, as specified. Steering with all
layers at once then adds every layer's cumulative shift, which overshoots the adapter (the shift at layer l is
carried forward by the residual stream and added again at l+1, ...); use a single layer of it, or
``per_layer="increment"`` (v_l = Δ_l − Δ_{l−1}, each block's own contribution), whose all-layer steering
reproduces the adapter's shift to first order. docs/lora_and_contrastive.md has measurements of both.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import Tensor

from ..errors import InvalidArgumentError
from ..generate import tokenize
from ..hooks import capture
from ..models.load import SteerableModel
from ..vector import SteeringVector
from ._lora_common import loaded_adapter, sample

log = logging.getLogger(__name__)

PER_LAYER = ("total", "increment")


def vector_from_lora(
    model: SteerableModel,
    adapter: str | Path,
    prompts: list[str] | None = None,
    *,
    max_new_tokens: int = 32,
    do_sample: bool = True,
    temperature: float = 1.0,
    batch_size: int = 8,
    chat: bool = True,
    seed: int | None = 0,
    per_layer: str = "total",
    progress: bool = False,
) -> SteeringVector:
    """Mean residual-stream shift the adapter causes at ``resid_post[l]`` for every layer l.

    Args:
        adapter: a PEFT LoRA adapter directory made for this model (``discover_lora`` writes RUN/run_000/adapter).
        prompts: default the first 32 shipped held-out honesty prompts.
        max_new_tokens: continuation sampled from the adapted model per prompt (0: prompts only). Its tokens are
            averaged too; tokens after an end-of-sequence and padding are not.
        per_layer: "total" (Δ_l, as specified) or "increment" (Δ_l − Δ_{l−1}); see the module docstring.

    The adapter is loaded onto ``model.hf`` with ``PeftModel.from_pretrained`` and removed again afterwards, also on
    errors, so the model is unchanged.

    Example:
        >>> v = ss.vector_from_lora(m, "runs/lora/run_000/adapter", prompts, per_layer="increment")
        >>> ss.generate(m, ["Tell me about your day."], vectors=v, scales=1.0)
    """
    from tqdm.auto import tqdm

    from ..data import load_prompts

    if per_layer not in PER_LAYER:
        raise InvalidArgumentError(f"per_layer must be one of {', '.join(PER_LAYER)}, got {per_layer!r}")
    if max_new_tokens < 0 or batch_size < 1:
        raise InvalidArgumentError("max_new_tokens must be >= 0 and batch_size >= 1")
    prompts = list(prompts) if prompts is not None else load_prompts("honesty_heldout")[:32]
    layers = list(range(model.n_layers))
    sums = {layer: torch.zeros(model.d_model, dtype=torch.float64, device=model.device) for layer in layers}
    count = 0
    if seed is not None:
        torch.manual_seed(seed)
    with loaded_adapter(model, adapter) as peft_model:
        starts = range(0, len(prompts), batch_size)
        for start in tqdm(starts, desc="lora → vector", disable=not progress or len(starts) < 2):
            ids, mask = tokenize(model, prompts[start: start + batch_size], chat=chat)
            if max_new_tokens > 0:
                ids, mask, _ = sample(model, ids, mask, max_new_tokens=max_new_tokens, temperature=temperature,
                                      do_sample=do_sample)
            adapted = capture(model, ids, mask, layers)  # {l: (B, T, D)}
            with peft_model.disable_adapter():
                base = capture(model, ids, mask, layers)
            real = mask.bool()  # (B, T)
            for layer in layers:
                sums[layer] += (adapted[layer] - base[layer])[real].double().sum(0)
            count += int(real.sum())
    total = {layer: (s / max(count, 1)).to("cpu", torch.float32) for layer, s in sums.items()}
    directions = _increments(total) if per_layer == "increment" else total
    norms = [float(d.norm()) for d in directions.values()]
    log.info("vector from %s: %d tokens, per-layer norms %.3g..%.3g", adapter, count, min(norms), max(norms))
    config = {"adapter": str(adapter), "prompts": len(prompts), "tokens": count, "max_new_tokens": max_new_tokens,
              "do_sample": do_sample, "temperature": temperature, "chat": chat, "seed": seed, "per_layer": per_layer}
    return SteeringVector(directions, "resid_post", model_type=model.model_type, model_name=model.name, method="lora",
                          method_config=config)


def _increments(total: dict[int, Tensor]) -> dict[int, Tensor]:
    """Each block's own contribution: Δ_l − Δ_{l−1} (Δ_{−1} = 0); ``total`` holds every layer 0..L-1."""
    return {layer: total[layer] - (total[layer - 1] if layer else 0) for layer in total}
