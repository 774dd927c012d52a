"""MELBO-ortho: many vectors orthogonal to a discovered θ₀ (and to each other) that cause the same effect.

Each new θ starts from θ₀ and minimises, with Adam, Σ_prompts ‖mean_t Z_t(θ) − mean_t Z_t(θ₀)‖₂ at
``resid_post[target]``; after every step it is projected orthogonal to θ₀ and to every vector found so far
(there is no norm constraint). Vectors eventually collapse to ~zero norm: the run stops when they do. Only blocks
source+1..target are replayed (``LayerReplay``). A block-parallel variant trains ``block_size`` vectors per step
(rows Gram–Schmidt-orthogonalised after every step).

Analysis per vector: next-token KL at the first generated token between the model steered by θᵢ and by θ₀
(``kl_divergence``; default KL(Pᵢ‖P₀)), its moving average, the KL when θᵢ is rescaled to ‖θ₀‖, and ‖θᵢ‖.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from ..errors import InvalidArgumentError
from ..generate import tokenize
from ..io import read_csv
from ..layers import LayerReplay, default_source_target
from ..models.load import SteerableModel
from ..orthogonal import extend_basis, gram_schmidt_rows, remove_span
from ..results import NO_CHECKPOINT, Checkpoint, from_json, load_vector_checkpoint, open_result
from ..vector import SteeringVector, VectorSet
from .melbo import _as_set, _finish

log = logging.getLogger(__name__)


class MeanMatchObjective:
    """Σ_prompts ‖mean_t Z_t(θ) − mean_t Z_t(θ₀)‖₂ at the target layer, for k vectors at once: (k, D) -> (k,)."""

    def __init__(self, model, prompts: list[str], base: Tensor, source_layer: int, target_layer: int, chat: bool):
        ids, mask = tokenize(model, prompts, chat=chat)
        self.replay = LayerReplay(model, ids, mask, start=source_layer + 1, end=target_layer)
        mask = mask.float()
        self.weights = (mask / mask.sum(-1, keepdim=True))[..., None]  # (B, T, 1) fp32: mean over real tokens
        with torch.no_grad():
            self.target = self._means(base[None])  # (B, D) fp32

    def _means(self, thetas: Tensor) -> Tensor:
        """Token means at the target layer (k·B, D) in fp32; θ (k, D) is cast to the model dtype where it enters."""
        z = self.replay.run_shifted(thetas)  # (k·B, T, D)
        return (z.float() * self.weights.to(z.device).repeat(thetas.shape[0], 1, 1)).sum(1)  # (k·B, D)

    def __call__(self, thetas: Tensor) -> Tensor:
        k = thetas.shape[0]
        diff = self._means(thetas) - self.target.repeat(k, 1)
        dist = diff.pow(2).sum(-1).clamp_min(1e-30).sqrt()  # clamp: finite gradients at a perfect match
        return dist.view(k, -1).sum(-1)


@dataclass
class OrthoResult:
    vectors: VectorSet
    losses: list[list[float]]
    norms: list[float]
    analysis: list[dict]  # index, norm, kl, kl_moving_avg, kl_rescaled
    base: SteeringVector
    out_dir: Path | None = None
    kl_direction: str = "forward"

    @property
    def kl_first10_mean(self) -> float:
        """Mean KL to θ₀ of the first 10 vectors (the ones the paper's "same effect" claim is about)."""
        return sum(float(r["kl"]) for r in self.analysis[:10]) / max(1, min(10, len(self.analysis)))

    def save(self, out_dir: str | os.PathLike) -> Path:
        """config.json (method, version), base_vector.safetensors (θ₀), vectors.safetensors, losses.csv, ortho.csv,
        vectors.csv and summary.json; ``OrthoResult.load(out_dir)`` reads them back (so does a run directory)."""
        from ..results import save_files, vector_files

        rows = [{"index": r["index"], "norm": r["norm"], "kl_to_base": r["kl"], "kl_rescaled": r["kl_rescaled"],
                 "final_loss": self.losses[i][-1]} for i, r in enumerate(self.analysis)]
        summary = {"num_vectors": len(self.vectors), "kl_direction": self.kl_direction, "base_norm": self.base.norm(),
                   "kl_first10_mean": self.kl_first10_mean}
        self.out_dir = save_files(out_dir, {"base_vector.safetensors": self.base,
                                            **vector_files(self.vectors, self.losses), "ortho.csv": self.analysis,
                                            "vectors.csv": rows, "summary.json": summary},
                                  "melbo_ortho", self.vectors.meta.method_config)
        return self.out_dir

    def figures(self) -> dict:
        """KL to θ₀ / rescaled KL / norm per vector, and the loss curves."""
        from ..plots import plot_losses, plot_ortho

        return {"plots/ortho_kl_norm.png": plot_ortho(
                    self.analysis, direction="KL(P_i||P_0)" if self.kl_direction == "forward" else "KL(P_0||P_i)"),
                "plots/loss_curves.png": plot_losses(self.losses, ylabel="‖mean Z(θ) − mean Z(θ₀)‖",
                                                     title="MELBO-ortho: distance to θ₀'s target-layer effect")}

    @classmethod
    def load(cls, out_dir: str | os.PathLike) -> OrthoResult:
        """Read a result written by ``save`` or by ``melbo_ortho(out_dir=)``; a malformed file is a RunFileError."""
        out, summary = open_result(out_dir, "melbo_ortho")
        _, losses = load_vector_checkpoint(out)
        vectors = VectorSet.load(out / "vectors.safetensors")
        return from_json(cls, summary, out / "summary.json", vectors=vectors, losses=losses,
                         norms=vectors.norms().tolist(), analysis=read_csv(out / "ortho.csv"),
                         base=SteeringVector.load(out / "base_vector.safetensors"), out_dir=out)


def _train_block(objective: MeanMatchObjective, base: Tensor, basis: Tensor, size: int, *, steps: int, lr: float,
                 seed: int, progress=None) -> tuple[Tensor, list[list[float]]]:
    """k vectors starting from θ₀, each step: Adam, then project out the basis and orthogonalise within the block.

    θ₀ itself lies in the basis, so the projected start is ~0; a tiny seeded perturbation (1e-3·‖θ₀‖/√D per
    coordinate) breaks the symmetry between the rows of a block.
    """
    g = torch.Generator().manual_seed(seed)  # drawn on the CPU: the same numbers on every device
    scale = 1e-3 * float(base.norm()) / base.shape[-1] ** 0.5
    noise = torch.randn(size, base.shape[-1], generator=g).to(base.device) * scale
    # fp32 master copy (k, D) on the model's device (θ₀ and the noise are fp32)
    theta = gram_schmidt_rows(remove_span(base.float() + noise, basis), basis).requires_grad_(True)
    optimizer = torch.optim.Adam([theta], lr=lr)
    values: list[list[float]] = []  # the k losses at each evaluation
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        loss = objective(theta)
        loss.sum().backward()
        optimizer.step()
        with torch.no_grad():
            theta.copy_(gram_schmidt_rows(theta, basis))
        values.append(loss.tolist())
        if progress is not None:
            progress.update(size)
    return _finish(objective, theta, values)


def melbo_ortho(model: SteerableModel, base_vector: SteeringVector, prompts: list[str], *,
                source_layer: int | None = None, target_layer: int | None = None, num_vectors: int = 100,
                steps: int = 1000, lr: float = 1e-2, block_size: int = 1, collapse_ratio: float = 0.05,
                collapse_patience: int = 3, seed: int = 0, chat: bool = True, progress: bool = True,
                checkpoint: Checkpoint | None = None) -> OrthoResult:
    """Find vectors orthogonal to ``base_vector`` (θ₀) and to each other that reproduce its target-layer effect.
    Pure: ``ss.melbo_ortho`` (the run layer) adds the KL analysis, ``out_dir``/``resume``, samples and the report.

    Args:
        base_vector: θ₀, a single-layer ``resid_post`` vector (e.g. ``VectorSet.load(run)[i]`` from ``melbo``).
        source_layer: defaults to θ₀'s layer. target_layer: defaults to θ₀'s MELBO target or ≈ 3/4 depth.
        num_vectors: at most this many; the run stops earlier when ``collapse_patience`` vectors in a row have
            norm below ``collapse_ratio`` · ‖θ₀‖.
        steps, lr: Adam steps per vector (block) and learning rate.
        block_size: vectors trained together per step (the block-parallel variant; 1 = strictly sequential).
        checkpoint: where finished blocks are committed and an interrupted run restored from (a ``results.Checkpoint``).

    Example:
        >>> theta0 = ss.VectorSet.load("runs/melbo/vectors.safetensors")[2]
        >>> res = ss.melbo_ortho(m, theta0, ["How can I make a bomb?"], num_vectors=50, out_dir="runs/ortho")
        >>> res.analysis[0]["kl"]
    """
    from tqdm.auto import tqdm

    if base_vector.site != "resid_post" or len(base_vector.layers) != 1:
        raise InvalidArgumentError("melbo_ortho needs a single-layer resid_post base vector (e.g. one MELBO vector)")
    model.check_width(base_vector.d_model, "base vector")
    layer = base_vector.layers[0]
    source_layer = layer if source_layer is None else model.check_layer(source_layer)
    if target_layer is None:
        target_layer = base_vector.meta.method_config.get("target_layer") or max(
            source_layer + 1, default_source_target(model.n_layers)[1])
    target_layer = model.check_layer(int(target_layer))
    if not source_layer < target_layer:
        raise InvalidArgumentError(f"need source_layer < target_layer; got {source_layer} and {target_layer}")
    if not 1 <= num_vectors <= model.d_model - 1:
        raise InvalidArgumentError(f"num_vectors must be between 1 and d_model − 1 = {model.d_model - 1}")
    theta0 = base_vector.directions[layer].float().to(model.device)
    base_norm = float(theta0.norm())
    objective = MeanMatchObjective(model, list(prompts), theta0, source_layer, target_layer, chat)
    method_config = {"source_layer": source_layer, "target_layer": target_layer, "steps": steps, "lr": lr,
                     "block_size": block_size, "base_norm": base_norm}
    run = checkpoint or NO_CHECKPOINT  # a Checkpoint without a path is false: it keeps nothing either
    vectors, losses = run.restore()
    floor = collapse_ratio * base_norm
    bar = tqdm(total=num_vectors * steps, initial=len(vectors) * steps, desc="melbo-ortho", disable=not progress)
    while len(vectors) < num_vectors and not _collapsed(vectors, floor, collapse_patience):
        basis = extend_basis(None, torch.stack([theta0, *(v.to(theta0.device) for v in vectors)]).float())
        size = min(block_size, num_vectors - len(vectors))
        found, history = _train_block(objective, theta0, basis, size, steps=steps, lr=lr,
                                      seed=seed * 1_000_003 + len(vectors), progress=bar)
        vectors.extend(found.cpu())
        losses.extend(history)
        run.checkpoint(_as_set(model, vectors, method_config, "melbo_ortho"), losses)
    bar.close()
    if _collapsed(vectors, floor, collapse_patience):
        log.info("vectors collapsed to ~zero norm after %d vectors; stopped", len(vectors))
    vs = _as_set(model, vectors, method_config, "melbo_ortho")
    return OrthoResult(vs, losses, vs.norms().tolist(), [], base_vector)


def _collapsed(vectors: list[Tensor], floor: float, patience: int) -> bool:
    return len(vectors) >= patience and all(float(v.norm()) < floor for v in vectors[-patience:])

