"""Shared by the LoRA methods: attach/detach PEFT adapters without leaving traces, sample continuations, and the
one-pass KL/NLL loss terms of LoRA discovery.

Private helpers for ``lora_discovery`` and ``from_lora`` (the methods themselves never import each other);
``export.lora_fit`` generates its greedy calibration continuations with ``sample`` too.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import InvalidArgumentError, SteerscopeError
from ..generate import forward_kwargs


# -- adapters ---------------------------------------------------------------------------------------------------
def default_target_modules(model) -> list[str]:
    """Full module paths of every decoder block's MLP output projection (e.g. ``model.layers.7.mlp.down_proj``)."""
    proj = model.arch.mlp_out_proj
    if proj is None:
        raise InvalidArgumentError(f"steerscope does not know the MLP output projection of {model.model_type}; "
                                   "pass target_modules (module names, e.g. ['down_proj'])")
    return [f"{model.arch.layers}.{i}.{proj}" for i in range(model.n_layers)]


def needs_fan_in_fan_out(model, targets: list[str]) -> bool:
    """GPT-2 style ``Conv1D`` stores weights transposed; PEFT must be told (``fan_in_fan_out=True``)."""
    names = set(targets)
    return any(type(module).__name__ == "Conv1D" and (name in names or name.rsplit(".", 1)[-1] in names)
               for name, module in model.hf.named_modules())


def detach_peft(peft_model) -> None:
    """Remove every LoRA layer PEFT injected into ``model.hf`` so other code sees the untouched base model."""
    try:
        peft_model.unload()  # restores the original modules (no merge)
    finally:
        # plain instance attributes PEFT set on the base model
        attrs = vars(peft_model.base_model.model) if hasattr(peft_model, "base_model") else {}
        for attr in ("peft_config", "_hf_peft_config_loaded"):
            attrs.pop(attr, None)


@contextlib.contextmanager
def loaded_adapter(model, adapter_dir: str | Path) -> Iterator[object]:
    """Load a PEFT LoRA adapter directory onto ``model.hf`` for the duration of the block, then remove it."""
    from peft import PeftConfig, PeftModel

    adapter_dir = Path(adapter_dir)
    if not (adapter_dir / "adapter_config.json").is_file():
        raise InvalidArgumentError(f"{adapter_dir} is not a PEFT adapter directory (no adapter_config.json); pass "
                                   "the folder save_pretrained wrote, e.g. RUN/run_000/adapter")
    config = PeftConfig.from_pretrained(str(adapter_dir))
    if config.peft_type != "LORA":  # PeftType is a str enum
        raise InvalidArgumentError(f"{adapter_dir} holds a {config.peft_type} adapter; only LoRA adapters are supported")
    try:
        peft_model = PeftModel.from_pretrained(model.hf, adapter_dir, is_trainable=False)
    except (ValueError, RuntimeError, KeyError) as exc:
        # a half-injected adapter must not stay behind
        _strip_lora_layers(model)
        raise SteerscopeError(f"adapter {adapter_dir} does not fit model {model.name} "
                              f"({' '.join(str(exc).split())[:300]}); use an adapter trained for this model") from exc
    try:
        yield peft_model
    finally:
        detach_peft(peft_model)


def _strip_lora_layers(model) -> None:
    """Swap any PEFT LoRA layer left in ``model.hf`` back to its base layer."""
    for name, module in list(model.hf.named_modules()):
        base = getattr(module, "base_layer", None)
        if base is not None and name:
            parent_name, _, child = name.rpartition(".")
            setattr(model.hf.get_submodule(parent_name), child, base)  # "" is model.hf itself


# -- sampling ---------------------------------------------------------------------------------------------------
def eos_ids(model) -> list[int]:
    ids = model.hf.generation_config.eos_token_id
    if ids is None:
        ids = model.tokenizer.eos_token_id
    return [int(i) for i in (ids if isinstance(ids, (list, tuple)) else [ids]) if i is not None]


def continuation_mask(model, continuation: Tensor) -> Tensor:
    """(B, N) 1 for sampled tokens up to and including the first end-of-sequence token, 0 for the padding after it."""
    stops = torch.isin(continuation, continuation.new_tensor(eos_ids(model))).long()
    # tokens strictly after the first stop are padding: count stops before each position
    return (stops.cumsum(-1) - stops == 0).long()


@torch.no_grad()
def sample(model, ids: Tensor, mask: Tensor, *, max_new_tokens: int, temperature: float = 1.0,
           do_sample: bool = True) -> tuple[Tensor, Tensor, Tensor]:
    """Sample continuations with the KV cache in one batched ``generate``.

    Returns (sequence (B, T+N), attention mask (B, T+N), continuation mask (B, N)); the prompt keeps its left
    padding and the continuation is masked after its first end-of-sequence token.
    """
    # plain ancestral sampling (the loss assumes y ~ Q, so no top-k / top-p truncation), or greedy with no settings
    temperature, top_k, top_p = (temperature, 0, 1.0) if do_sample else (None, None, None)
    out = model.hf.generate(ids, max_new_tokens=max_new_tokens, attention_mask=mask, do_sample=do_sample,
                            temperature=temperature, top_k=top_k, top_p=top_p,
                            pad_token_id=model.tokenizer.pad_token_id)
    cont_mask = continuation_mask(model, out[:, ids.shape[1]:])
    return out, torch.cat([mask, cont_mask], dim=1), cont_mask


# -- loss -------------------------------------------------------------------------------------------------------
@dataclass
class LossTerms:
    """Token-averaged terms over the continuation tokens. ``loss`` carries gradients; the rest are detached."""

    loss: Tensor
    kl: Tensor  # mean over tokens of KL(P || Q)
    nll: Tensor  # mean NLL of the continuation under Q
    base_nll: Tensor  # mean NLL of the continuation under P (its log gives perplexity under the base model)
    tokens: int


def tail_logits(model, seq: Tensor, attn: Tensor, n_keep: int) -> Tensor:
    """Logits of the last ``n_keep`` positions: (B, n_keep, V). Skips the LM head on the prompt when supported."""
    kwargs = forward_kwargs(seq, attn)
    try:
        logits = model.hf(**kwargs, logits_to_keep=n_keep).logits
    except TypeError:  # older models without logits_to_keep
        logits = model.hf(**kwargs).logits
    return logits[:, -n_keep:]


def terms_from_logits(p_logits: Tensor, q_logits: Tensor, targets: Tensor, weights: Tensor, *, alpha: float,
                      beta: float) -> LossTerms:
    """Per-token KL(P || Q) and NLL under Q of ``targets``, averaged over tokens where ``weights`` is 1.

    Shapes: logits (B, N, V), targets and weights (B, N).
    """
    logp, logq = (F.log_softmax(logits.float(), dim=-1) for logits in (p_logits, q_logits))  # (B, N, V)
    kl_tok = (logp.exp() * (logp - logq)).sum(-1)  # (B, N)
    # (B, N) NLL of the targets under Q and under P
    nll_tok, base_tok = (-logits.gather(-1, targets[..., None]).squeeze(-1) for logits in (logq, logp))
    w = weights.to(kl_tok.dtype)
    n = w.sum().clamp_min(1.0)
    kl, nll, base_nll = ((tok * w).sum() / n for tok in (kl_tok, nll_tok, base_tok))
    return LossTerms(alpha * (-kl) + beta * nll, kl.detach(), nll.detach(), base_nll.detach(), int(w.sum()))


def loss_terms(model, seq: Tensor, attn: Tensor, cont_mask: Tensor, base: Callable[[], contextlib.AbstractContextManager],
               *, alpha: float, beta: float) -> LossTerms:
    """One teacher-forced pass of P (``base()`` context, no grad) and one of Q over prompt + continuation.

    The logits at position t predict token t+1, so the N continuation tokens are predicted by the N positions
    ending one before the last: keep N+1 tail logits and drop the final one.
    """
    n = cont_mask.shape[1]
    with torch.no_grad(), base():
        p_logits = tail_logits(model, seq, attn, n + 1)[:, :-1]  # (B, N, V)
    q_logits = tail_logits(model, seq, attn, n + 1)[:, :-1]
    return terms_from_logits(p_logits, q_logits, seq[:, -n:], cont_mask, alpha=alpha, beta=beta)
