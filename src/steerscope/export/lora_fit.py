"""Fitting and measuring LoRA stand-ins for steering vectors: token batches, input statistics, the rank-1 read-out
direction b, and fidelity (added-vector error, next-token KL).

A LoRA on a projection P adds ``scaling · B(A x)`` (+ ``scaling · bias`` with ``lora_bias``) to P's output for every
token x entering P. A steering vector adds a constant v. With ``A = bᵀ`` and ``B = v`` the adapter adds ``v · (bᵀx)``,
so its relative error at a token is exactly ``|bᵀx − 1|``: we want b with ``bᵀx`` as constant (and equal to 1) as
possible over tokens. Minimising ``Var(bᵀx) = bᵀΣb`` subject to ``bᵀμ = 1`` gives ``b = Σ⁻¹μ / (μᵀΣ⁻¹μ)``; Σ gets
a ridge ``λ·tr(Σ)/d`` chosen on a validation split. The first token of every sequence is excluded from the
statistics: its activations are outliers (attention sink) and would dominate Σ.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..errors import StopForward
from ..generate import forward_kwargs, tokenize
from ..hooks import HookGroup, capture, run_until_stopped
from ..methods._lora_common import sample
from ..steer import steer
from ..vector import SteeringVector

RIDGE_GRID = (1e-8, 1e-6, 1e-4, 1e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0)


@dataclass
class Adapter:
    """One LoRA module: ``delta(x) = scaling · (x Aᵀ Bᵀ + bias)``. A (r, d_in), B (d_out, r), bias (d_out,) or None."""

    module_path: str
    lora_A: Tensor
    lora_B: Tensor
    bias: Tensor | None = None
    scaling: float = 1.0
    layer: int | None = None  # the vector layer it stands in for

    def delta(self, x: Tensor) -> Tensor:  # x (..., d_in) -> (..., d_out)
        out = x @ self.lora_A.to(x.device, x.dtype).T @ self.lora_B.to(x.device, x.dtype).T  # (x Aᵀ) Bᵀ
        if self.bias is not None:
            out += self.bias.to(x.device, x.dtype)
        return self.scaling * out


@contextmanager
def apply_adapters(model, adapters: Sequence[Adapter]) -> Iterator[None]:
    """Simulate PEFT's LoRA forward with hooks (no module replaced, nothing left behind).

    The hook needs the module's input and output together, which ``hooks.register`` (tensor -> tensor on one
    side) does not offer, so it registers a plain forward hook; the handles are removed on leaving the block.
    """

    def hook_for(adapter: Adapter):
        def hook(module, args, output):
            # the adapter's delta in fp32 (its stored precision), cast to the module's dtype where it enters
            return output + adapter.delta(args[0].float()).to(output.dtype)

        return hook

    with HookGroup() as hooks:
        for adapter in adapters:
            hooks.add(model.hf.get_submodule(adapter.module_path).register_forward_hook(hook_for(adapter)))
        yield


@dataclass
class TokenBatch:
    """input_ids / attention_mask (B, T) and ``keep`` (B, T): real tokens other than each row's first."""

    input_ids: Tensor
    attention_mask: Tensor

    @property
    def keep(self) -> Tensor:
        return self.attention_mask.bool() & ~self.first

    @property
    def first(self) -> Tensor:
        real = self.attention_mask.bool()
        return real & (real.long().cumsum(-1) == 1)


@torch.no_grad()
def token_batches(model, prompts: Sequence[str], vector: SteeringVector, scale: float, *, new_tokens: int, chat: bool,
                  batch_size: int) -> list[TokenBatch]:
    """Tokenised prompts, each extended by ``new_tokens`` greedy tokens generated under the vector (so statistics
    and fidelity also cover the generated text the adapter will see in deployment). Tokens after an EOS are masked."""
    batches = []
    for start in range(0, len(prompts), batch_size):
        ids, mask = tokenize(model, prompts[start:start + batch_size], chat=chat)
        if new_tokens > 0:
            with steer(model, vector, scale):
                ids, mask, _ = sample(model, ids, mask, max_new_tokens=new_tokens, do_sample=False)
        batches.append(TokenBatch(ids, mask))
    return batches


@contextmanager
def recording_inputs(model, module_paths: Sequence[str], *, stop_when_done: bool = False) -> Iterator[dict[str, Tensor]]:
    """Record the input (B, T, d_in) of each module during the forwards run inside the block. With
    ``stop_when_done`` the forward ends (StopForward) once every module has been seen: no later blocks, no head."""
    captured: dict[str, Tensor] = {}
    wanted = set(module_paths)

    def pre_hook_for(path: str):
        def pre_hook(module, args):
            captured[path] = args[0].detach()
            if stop_when_done and wanted <= captured.keys():
                raise StopForward

        return pre_hook

    with HookGroup() as hooks:
        for path in wanted:
            hooks.add(model.hf.get_submodule(path).register_forward_pre_hook(pre_hook_for(path)))
        yield captured


@torch.no_grad()
def capture_inputs(model, module_paths: Sequence[str], batch: TokenBatch, vector: SteeringVector | None,
                   scale: float) -> dict[str, Tensor]:
    """Inputs of each module (B, T, d_in) in one early-stopped forward, steered with ``vector`` when given."""
    with recording_inputs(model, module_paths, stop_when_done=True) as captured, steer(model, vector, scale):
        run_until_stopped(model.hf, **forward_kwargs(batch.input_ids, batch.attention_mask))
    return dict(captured)


class Moments:
    """Running count, sum and uncentered second moment of d-dim tokens, in float64."""

    def __init__(self, dim: int) -> None:
        self.n = 0
        # cpu-ok: float64 moments accumulate on the host; add() moves every batch here
        self.sum = torch.zeros(dim, dtype=torch.float64)
        self.outer = torch.zeros(dim, dim, dtype=torch.float64)  # cpu-ok: as above

    def add(self, x: Tensor) -> None:  # x (N, d)
        x = x.to("cpu", torch.float64)
        self.n += len(x)
        self.sum += x.sum(0)
        self.outer += x.T @ x

    def merged(self, other: Moments) -> Moments:
        out = Moments(len(self.sum))
        out.n, out.sum, out.outer = self.n + other.n, self.sum + other.sum, self.outer + other.outer
        return out

    @property
    def mean(self) -> Tensor:
        return self.sum / max(self.n, 1)

    @property
    def cov(self) -> Tensor:
        mu = self.mean
        return self.outer / max(self.n, 1) - torch.outer(mu, mu)

    def mse(self, b: Tensor) -> float:
        """Mean of (bᵀx − 1)² over the tokens, from the moments alone."""
        n = max(self.n, 1)
        return float(b @ (self.outer / n) @ b - 2 * (b @ self.sum) / n + 1.0)


def readout_direction(moments: Moments, ridge: float) -> Tensor:
    """``b = (Σ + λ·tr(Σ)/d·I)⁻¹ μ / (μᵀ(Σ + λ·tr(Σ)/d·I)⁻¹ μ)`` (float64, d_in)."""
    cov, mu = moments.cov, moments.mean
    d = cov.shape[0]
    reg = cov + ridge * (torch.trace(cov) / d).clamp_min(1e-30) * torch.eye(d, dtype=cov.dtype, device=cov.device)
    w = torch.linalg.solve(reg, mu)
    return w / (mu @ w)


def fit_readout(fit: Moments, val: Moments) -> tuple[Tensor, float, dict[str, float]]:
    """Pick the ridge on the validation moments, then refit on all tokens. Returns (b, ridge, {ridge: val mse})."""
    scores = {}
    for ridge in RIDGE_GRID:
        try:
            scores[ridge] = (val if val.n else fit).mse(readout_direction(fit, ridge))
        except torch.linalg.LinAlgError:
            continue
    best = min(scores, key=scores.get)
    return readout_direction(fit.merged(val), best), best, {f"{k:g}": v for k, v in scores.items()}


def kl_rows(p_logits: Tensor, q_logits: Tensor, chunk: int = 256) -> Tensor:
    """KL(p || q) over the vocabulary for each row of (N, V) logits, in float64 chunks (a 49k vocabulary in float64
    for every token at once would take gigabytes). Rounding can give -1e-17: clamped at 0."""
    out = []
    for start in range(0, len(p_logits), chunk):
        logp, logq = (torch.log_softmax(logits[start:start + chunk].double(), -1) for logits in (p_logits, q_logits))
        out.append((logp.exp() * (logp - logq)).sum(-1).clamp_min(0.0))
    return torch.cat(out) if out else p_logits.new_zeros(0, dtype=torch.float64)


def split_rows(batches: Sequence[TokenBatch], n: int) -> tuple[list[TokenBatch], list[TokenBatch]]:
    """(the first ``n`` sequences, the rest) of a list of batches, as batches; left padding shared by a batch is
    trimmed where all kept rows have it (so one generate call can serve both the fit and the validation split)."""
    head, tail, seen = [], [], 0
    for batch in batches:
        rows = len(batch.input_ids)
        cut = min(max(n - seen, 0), rows)
        for part, lo, hi in ((head, 0, cut), (tail, cut, rows)):
            if hi > lo:
                mask = batch.attention_mask[lo:hi]
                start = int(mask.any(0).long().argmax())  # first column any kept row uses
                part.append(TokenBatch(batch.input_ids[lo:hi, start:], mask[:, start:]))
        seen += rows
    return head, tail


@torch.no_grad()
def candidate_site_errors(model, vector: SteeringVector, scale: float, candidates: dict[str, Sequence[Adapter]],
                          batches: Sequence[TokenBatch]) -> dict[str, float]:
    """RMS relative error ‖h(adapter) − h(vector)‖ / ‖scale·v‖ at the vector's own site, over the tokens that fit
    the statistics (first tokens excluded), for several candidate adapter sets of a one-layer vector.

    This is what the vector is: a change at ``site[L]``. A candidate on block L's MLP output projection is measured
    there directly; one on its attention projection also passes through the block's MLP, which the early-stopped
    forward includes. Everything downstream of the site is the same model for both, so the candidate that
    reproduces the site best is the one to keep; this needs forwards only up to block L (no later blocks, no LM
    head), where a next-token KL needs the full model per candidate.
    """
    (layer,) = vector.layers
    target = (vector.directions[layer].double() * scale).norm().clamp_min(1e-30)
    sums = dict.fromkeys(candidates, 0.0)
    count = 0
    for batch in batches:
        with steer(model, vector, scale):
            ref = capture(model, batch.input_ids, batch.attention_mask, [layer], vector.site)[layer]  # (B, T, D)
        keep = batch.keep.to(ref.device)
        ref = ref[keep].double()  # (N, D)
        for name, adapters in candidates.items():
            with apply_adapters(model, adapters):
                got = capture(model, batch.input_ids, batch.attention_mask, [layer], vector.site)[layer]
            sums[name] += float(((got[keep].double() - ref).norm(dim=-1) / target.to(ref.device)).pow(2).sum())
        count += int(keep.sum())
    return {name: (total / max(count, 1)) ** 0.5 for name, total in sums.items()}


@torch.no_grad()
def measure_fidelity(model, vector: SteeringVector, scale: float, adapters: Sequence[Adapter],
                     batches: Sequence[TokenBatch], *, with_base: bool = True) -> dict:
    """Added-vector relative error per token and next-token KL(vector-steered || adapter-steered).

    The added vector is measured at each adapter's module on inputs from the vector-steered model (the state the
    adapter must reproduce); its target is the vector's direction at that layer. The first token of each sequence
    is reported separately (the adapter also acts there). KL is over every real position.
    """
    errs, first_errs, kls, last_kls, base_kls = [], [], [], [], []
    # each adapter's target: the vector's direction at the layer it stands in for
    targets = {a.module_path: vector.directions[vector.layers[0] if a.layer is None else a.layer].double() * scale
               for a in adapters}
    for batch in batches:
        kw = forward_kwargs(batch.input_ids, batch.attention_mask)
        real = batch.attention_mask.bool()
        with recording_inputs(model, list(targets)) as inputs, steer(model, vector, scale):
            p = model.hf(**kw).logits[real]  # (N, V): one steered forward gives logits and module inputs
        for adapter in adapters:
            x = inputs[adapter.module_path].double()  # (B, T, d_in)
            target = targets[adapter.module_path].to(x.device)
            rel = (adapter.delta(x) - target).norm(dim=-1) / target.norm().clamp_min(1e-30)  # (B, T)
            errs.append(rel[batch.keep].cpu())
            first_errs.append(rel[batch.first].cpu())
        del inputs
        with apply_adapters(model, adapters):
            q = model.hf(**kw).logits[real]
        kl = kl_rows(p, q).cpu()  # (N,) float64
        kls.append(kl)
        last = (real.long().cumsum(-1) == real.sum(-1, keepdim=True)) & real  # last real token of each row
        last_kls.append(kl[last[real].cpu()])
        if with_base:
            base_kls.append(kl_rows(p, model.hf(**kw).logits[real]).cpu())
    err, first_err, kl, last_kl = (torch.cat(t) for t in (errs, first_errs, kls, last_kls))
    out = {"n_sequences": sum(len(b.input_ids) for b in batches), "n_tokens": int(kl.numel()),
           "rel_error_mean": float(err.mean()) if err.numel() else None,
           "rel_error_worst": float(err.max()) if err.numel() else None,
           "rel_error_first_token_mean": float(first_err.mean()) if first_err.numel() else None,
           "kl_mean": float(kl.mean()), "kl_max": float(kl.max()), "kl_last_token_mean": float(last_kl.mean())}
    if with_base:
        out["kl_vector_vs_unsteered_mean"] = float(torch.cat(base_kls).mean())
    return out


def module_dims(module: nn.Module) -> tuple[int, int, bool]:
    """(in_features, out_features, fan_in_fan_out) of an nn.Linear or a transformers Conv1D (GPT-2)."""
    if isinstance(module, nn.Linear):
        return module.in_features, module.out_features, False
    if type(module).__name__ == "Conv1D" and hasattr(module, "weight"):
        d_in, d_out = module.weight.shape  # Conv1D stores (in, out)
        return int(d_in), int(d_out), True
    raise TypeError(type(module).__name__)
