"""Batched next-token KL divergence between steered and reference distributions, many vectors at once.

One implementation for the whole project (MELBO-ortho curves, CLI ``eval kl``, reports). For every vector ``i``
and prompt ``j`` the model runs once with vector ``i`` steering row ``(i, j)``; rows of different vectors share
one batched forward through ``steer()``'s per-row vectors. The reference distribution (unsteered, or steered by a
reference vector) is computed once per prompt and reused.

Direction (natural log, nats):
    forward:  KL(P_i || P_ref) = sum_x P_i(x) (log P_i(x) - log P_ref(x))   (default)
    reverse:  KL(P_ref || P_i) = sum_x P_ref(x) (log P_ref(x) - log P_i(x))
where ``P_i`` is the steered model's next-token distribution and ``P_ref`` the reference one.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence

import torch
from torch import Tensor

from ..configs import configurable, renamed
from ..errors import InvalidArgumentError
from ..generate import forward_kwargs, tokenize
from ..models.load import SteerableModel
from ..steer import steer
from ..vector import SteeringVector, VectorSet

DIRECTIONS = ("forward", "reverse")


def parse_score_positions(spec: str | int) -> int | None:
    """How many trailing prompt positions to score: 1 for first_generated/last, K for last:K, None for all."""
    text = str(spec).strip()
    if text in ("first_generated", "last"):
        return 1
    if text == "all":
        return None
    if text.startswith("last:") and text[5:].isdigit() and int(text[5:]) >= 1:
        return int(text[5:])
    raise InvalidArgumentError(f"positions {spec!r} not understood; use first_generated (= last: the distribution of "
                               "the first generated token), last:K (K >= 1: the next-token distributions at the last K "
                               "prompt tokens) or all (every prompt token)")


def _as_vector_list(vectors) -> list[SteeringVector | None]:
    if isinstance(vectors, VectorSet):
        return list(vectors)
    if isinstance(vectors, SteeringVector) or vectors is None:
        return [vectors]
    out = list(vectors)
    if not out:
        raise InvalidArgumentError("no vectors given; pass a list of SteeringVector (None = unsteered) or a VectorSet")
    for v in out:
        if v is not None and not isinstance(v, SteeringVector):
            raise InvalidArgumentError(f"vectors must be SteeringVector or None, got {type(v).__name__}")
    return out


def _scale_list(scales, n: int) -> list[float]:
    if isinstance(scales, (list, tuple, Tensor)):
        values = [float(s) for s in scales]
        if len(values) != n:
            raise InvalidArgumentError(f"got {len(values)} scales for {n} vectors; give one scale or one per vector")
        return values
    return [float(scales)] * n


@configurable("kl", name="KLConfig")
@renamed(scales="scale", steer_positions="positions")
def kl_divergence(model: SteerableModel, vectors: Sequence[SteeringVector | None] | VectorSet | SteeringVector,
                  prompts: Sequence[str], *, reference: SteeringVector | None = None, reference_scale: float = 1.0,
                  direction: str = "forward", score_positions: str = "first_generated",
                  scale: float | Sequence[float] = 1.0, batch_size: int = 32, chat: bool = True,
                  positions: str | int = "all", site: str | None = None, operator: str = "add", reduction: str = "mean",
                  seed: int | None = None, progress: bool = False) -> Tensor:
    """Next-token KL divergence of each steered model from a reference, averaged over prompts.

    Args:
        model: a ``SteerableModel``.
        vectors: a list of vectors (``None`` = unsteered row, whose KL to an unsteered reference is exactly 0),
            a ``VectorSet`` or one vector.
        prompts: prompts (chat template applied when ``chat`` and the tokenizer has one).
        reference: the reference distribution's vector (``None``: the unsteered model), at ``reference_scale``.
        direction: ``forward`` = KL(P_steered || P_ref); ``reverse`` = KL(P_ref || P_steered). Natural log (nats).
        score_positions: where the distributions are compared: ``first_generated`` (alias ``last``) = the distribution
            of the first generated token, i.e. the logits at the last prompt token; ``last:K`` = the mean over
            the last K prompt tokens' next-token distributions; ``all`` = mean over every prompt token.
        scale: one scale for all vectors, or one per vector (``scales=`` is the old spelling, still accepted).
        batch_size: rows (vector × prompt pairs) per forward.
        positions: which tokens the vectors are added to (see ``steer``); default every prompt token. (Until
            steerscope 0.2 this keyword named the scored positions, now ``score_positions``.)
        seed: accepted for the shared vocabulary; the KL is deterministic and uses no randomness.
        site, operator: passed to ``steer``.
        reduction: ``mean`` → (n_vectors,) mean over prompts; ``none`` → (n_vectors, n_prompts).
        progress: show a progress bar.

    Returns:
        float32 CPU tensor of shape (n_vectors,) (or (n_vectors, n_prompts) with ``reduction="none"``).

    Example:
        >>> vs = ss.VectorSet.load("run/vectors.safetensors")
        >>> kl = ss.kl_divergence(m, vs, ["Tell me a story."], scale=4.0)   # (len(vs),) nats
    """
    from tqdm.auto import tqdm

    if direction not in DIRECTIONS:
        raise InvalidArgumentError(f"direction must be 'forward' (KL(steered||ref)) or 'reverse', got {direction!r}")
    if reduction not in ("mean", "none"):
        raise InvalidArgumentError(f"reduction must be 'mean' or 'none', got {reduction!r}")
    if batch_size < 1:
        raise InvalidArgumentError(f"batch_size must be at least 1, got {batch_size}")
    keep = parse_score_positions(score_positions)
    vecs = _as_vector_list(vectors)
    vec_scales = _scale_list(scale, len(vecs))
    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    ids, mask = tokenize(model, prompts, chat=chat)  # (P, T), tokenised once and gathered per chunk
    span = ids.shape[1] if keep is None else min(keep, ids.shape[1])
    # (P, span): which scored positions are real tokens (left padding shows up as 0 in the window)
    valid = mask[:, ids.shape[1] - span:].bool()
    supports_keep = "logits_to_keep" in inspect.signature(model.hf.forward).parameters

    @torch.no_grad()
    def run(prompt_rows: Tensor, row_vectors: list[SteeringVector | None], row_scales: list[float]) -> Tensor:
        """Log-probs (B, span, V) at the scored positions of the padded prompt rows, optionally steered per row."""
        kwargs = forward_kwargs(ids[prompt_rows], mask[prompt_rows])
        if keep is not None and supports_keep:
            kwargs["logits_to_keep"] = keep  # only the last K positions reach the LM head: less memory
        with steer(model, row_vectors, row_scales, site=site, positions=positions, operator=operator):
            logits = model.hf(**kwargs).logits
        return torch.log_softmax(logits[:, -span:].float(), dim=-1)

    n_prompts = len(prompts)

    # reference log-probs, one row per prompt: (P, span, V)
    ref = torch.cat([run(rows, [reference] * len(rows), [reference_scale] * len(rows))
                     for rows in torch.arange(n_prompts, device=ids.device).split(batch_size)])

    # every (vector, prompt) pair is one row; rows are chunked across vectors so small prompt sets batch well
    total = len(vecs) * n_prompts
    out = torch.zeros(total, dtype=torch.float32)  # cpu-ok: the documented result is a float32 CPU tensor
    # cpu-ok: host-side row bookkeeping (indexes Python lists); moved where it indexes device tensors
    chunks = torch.arange(total).split(batch_size)
    for pairs in tqdm(chunks, desc="KL", disable=not progress or len(chunks) < 2):
        vec_idx, prompt_idx = pairs // n_prompts, pairs % n_prompts
        rows = prompt_idx.to(ids.device)
        logp = run(rows, [vecs[i] for i in vec_idx.tolist()], [vec_scales[i] for i in vec_idx.tolist()])
        logq = ref[prompt_idx.to(ref.device)]
        p, q = (logp, logq) if direction == "forward" else (logq, logp)
        kl = (p.exp() * (p - q)).sum(-1)  # (B, span): KL(P || Q)
        real = valid[rows].to(kl.dtype)  # (B, span)
        per_row = (kl * real).sum(-1) / real.sum(-1).clamp_min(1.0)
        out[pairs] = per_row.clamp_min(0.0).cpu()  # tiny negative values are float noise
    table = out.view(len(vecs), n_prompts)
    return table if reduction == "none" else table.mean(-1)


KLConfig = kl_divergence.Config


def kl_to_base(model, vectors: VectorSet, base: SteeringVector, prompts: list[str], *, direction: str = "forward",
               window: int = 25, chat: bool = True, progress: bool = False) -> list[dict]:
    """MELBO-ortho's curves: per vector, its norm, KL to θ₀ (``base``) at the first generated token, the moving
    average of that KL over ``window`` vectors, and the KL with the vector rescaled to ‖θ₀‖."""
    norms, base_norm = vectors.norms(), base.norm()
    settings = {"reference": base, "direction": direction, "chat": chat, "progress": progress}
    kl = kl_divergence(model, vectors, prompts, **settings)
    kl_rescaled = kl_divergence(model, vectors, prompts, scale=[base_norm / max(float(n), 1e-12) for n in norms],
                                **settings)
    return [{"index": i, "norm": float(norms[i]), "kl": float(kl[i]),
             "kl_moving_avg": float(kl[max(0, i - window + 1):i + 1].mean()), "kl_rescaled": float(kl_rescaled[i])}
            for i in range(len(vectors))]
