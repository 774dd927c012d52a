"""MELBO (Mack & Turner, "Mechanistically Eliciting Latent Behaviors in Language Models").

Find fixed-norm, mutually orthogonal vectors θ added at every position of ``resid_post[source]`` that maximise
the change they cause at ``resid_post[target]``:

    maximise  Σ_prompts ( Σ_{t∈T} ‖Z_t(θ) − Z_t(0)‖₂^p )^{1/q}   subject to ‖θ‖ = R

The norm is per token, as in the paper (the public reference code takes the norm over the token axis, which
differs for p ≠ 2). Only blocks source+1..target are replayed each step (``LayerReplay``): no earlier blocks, no
later blocks, no LM head. The default step rule is a trust region on the sphere (``_trust_region_block``): each
vector turns by an adaptive angle along its projected gradient and a step that would lower its objective is
refused, so no learning rate is needed and the objective never falls. With ``lr=`` it is the reference's AdamW
(amsgrad): project the gradient onto the tangent space and the complement of earlier vectors, step, retract to R.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path

import torch
from torch import Tensor

from ..errors import InvalidArgumentError
from ..generate import tokenize
from ..layers import LayerReplay, default_source_target
from ..models.load import SteerableModel
from ..orthogonal import (
    append_rows,
    extend_basis,
    orthonormal_rows,
    remove_span,
    sphere_tangent,
    stiefel_tangent,
)
from ..results import NO_CHECKPOINT, Checkpoint, from_json, load_vector_checkpoint, open_result, read_table
from ..vector import VectorSet

log = logging.getLogger(__name__)


class MelboObjective:
    """The MELBO objective for a batch of prompts, for k vectors at once: (k, D) -> (k,), summed over prompts."""

    def __init__(self, model, prompts: list[str], source_layer: int, target_layer: int, *, power: float = 2.0,
                 q: float | None = None, target_positions: str | int = "all", chat: bool = True) -> None:
        if not 0 <= source_layer < target_layer < model.n_layers:
            raise InvalidArgumentError(f"need 0 <= source_layer < target_layer < {model.n_layers}; "
                                       f"got {source_layer} and {target_layer}")
        self.power, self.q = float(power), float(q if q is not None else power)
        ids, mask = tokenize(model, prompts, chat=chat)
        self.replay = LayerReplay(model, ids, mask, start=source_layer + 1, end=target_layer)
        self.token_mask = mask > 0  # (B, T)
        if target_positions != "all":
            k = int(str(target_positions).removeprefix("last:"))
            if k < 1:
                raise InvalidArgumentError("target_positions must be 'all' or a positive number of last tokens")
            self.token_mask[:, :-k] = False
        with torch.no_grad():
            self.z0 = self.replay.run(self.replay.hidden)  # (B, T, D), model dtype

    @property
    def device(self) -> torch.device:
        return self.replay.hidden.device

    @property
    def d_model(self) -> int:
        return int(self.z0.shape[-1])

    def __call__(self, thetas: Tensor) -> Tensor:
        """Objective of each row of ``thetas`` (k, D), fp32 (k,). θ may be an fp32 master copy on any device: it is
        moved to the replay's device and cast to the model dtype where it enters the residual stream."""
        k = thetas.shape[0]
        # row i·B + b is vector i on prompt b; padding is masked out of attention and (token_mask) the objective
        z = self.replay.run_shifted(thetas)  # (k·B, T, D)
        diff = z.float() - self.z0.float().repeat(k, 1, 1)  # the objective accumulates in fp32
        sq = diff.pow(2).sum(-1).clamp_min(1e-30)  # (k·B, T); clamp keeps grads finite
        per_token = torch.where(self.token_mask.repeat(k, 1), sq.pow(self.power / 2), 0.0)
        return per_token.sum(-1).pow(1.0 / self.q).view(k, -1).sum(-1)  # per prompt (k·B,), summed per vector


@dataclass
class MelboResult:
    """Vectors found by MELBO and how the optimisation went."""

    vectors: VectorSet
    losses: list[list[float]]  # objective per step, one list per vector
    objectives: list[float]  # final objective per vector
    random_objective: float  # mean objective of random vectors of the same norm (the 0-step baseline)
    radius: float
    out_dir: Path | None = None
    radius_sweep: list[dict] = field(default_factory=list)
    random_band: tuple[float, float] = (math.nan, math.nan)  # min and max objective of the random vectors
    heldout_kl: list[float] = field(default_factory=list)  # per vector: next-token KL(steered ‖ unsteered), nats
    stop_reason: str = "num_vectors"  # or "min_ratio": the last vectors were within min_ratio × random

    @property
    def ratios(self) -> list[float]:
        """Each vector's final objective as a multiple of the random level (≈ 1: indistinguishable from random)."""
        return [o / max(self.random_objective, 1e-30) for o in self.objectives]

    def save(self, out_dir: str | os.PathLike) -> Path:
        """Write the result's files into ``out_dir``: config.json (method, version, the vectors' settings),
        vectors.safetensors, losses.csv, vectors.csv, summary.json and radius_sweep.csv (a run directory holds the
        same files, plus samples and plots). ``MelboResult.load(out_dir)`` reads them back."""
        from ..results import save_files, vector_files

        rows = [{"index": i, "norm": norm, "objective": obj, "objective_vs_random": ratio} for i, (norm, obj, ratio)
                in enumerate(zip(self.vectors.norms().tolist(), self.objectives, self.ratios))]
        for row, kl in zip(rows, self.heldout_kl):
            row["heldout_kl"] = kl
        self.out_dir = save_files(out_dir, {**vector_files(self.vectors, self.losses), "vectors.csv": rows,
                                            "radius_sweep.csv": self.radius_sweep or None,
                                            "summary.json": self.summary()}, "melbo", self.vectors.meta.method_config)
        return self.out_dir

    def summary(self) -> dict:
        """summary.json: the run's settings, random level and band, per-vector objectives and how it stopped."""
        return {"radius": self.radius, "lr": self.vectors.meta.method_config.get("lr"),
                "random_objective": self.random_objective, "random_band": list(self.random_band),
                "objectives": self.objectives, "objective_vs_random": self.ratios, "heldout_kl": self.heldout_kl,
                "vectors_above_3x_random": sum(r >= 3.0 for r in self.ratios), "stop_reason": self.stop_reason,
                "num_vectors": len(self.vectors)}

    def figures(self) -> dict:
        """Loss curves, objective vs index over the random band, and the radius sweep (when R was chosen)."""
        from ..plots import plot_losses, plot_objective_vs_index, plot_radius_sweep

        figs = {"plots/loss_curves.png": plot_losses(self.losses, random_level=self.random_objective),
                "plots/objective_vs_index.png": plot_objective_vs_index(
                    self.objectives, self.random_objective, self.random_band, heldout_kl=self.heldout_kl)}
        if self.radius_sweep:
            figs["plots/radius_sweep.png"] = plot_radius_sweep(self.radius_sweep)
        return figs

    @classmethod
    def load(cls, out_dir: str | os.PathLike) -> MelboResult:
        """Read a result written by ``save`` or by ``melbo(out_dir=)``; a malformed file is a RunFileError."""
        out, summary = open_result(out_dir, "melbo")
        _, losses = load_vector_checkpoint(out)
        return from_json(cls, summary, out / "summary.json", vectors=VectorSet.load(out / "vectors.safetensors"),
                         losses=losses, out_dir=out, radius_sweep=read_table(out / "radius_sweep.csv"))


def _init(gen_seed: int, k: int, d: int, basis: Tensor | None, radius: float,
          device: torch.device | str | None = None) -> Tensor:
    """k seeded random fp32 rows of norm R, orthonormal to each other and to ``basis``, on ``device``. Drawn on the
    CPU (the same numbers on every device, so runs and resumes are reproducible), then moved."""
    g = torch.Generator().manual_seed(gen_seed)
    device = basis.device if basis is not None and device is None else device
    theta = remove_span(torch.randn(k, d, generator=g).to(device), basis)
    return radius * (orthonormal_rows(theta) if k > 1 else theta / theta.norm())


def train_block(objective: MelboObjective, init: Tensor, basis: Tensor | None, *, radius: float, steps: int,
                lr: float | None = None, tol: float = 0.0, patience: int = 25, progress=None
                ) -> tuple[Tensor, list[list[float]]]:
    """Optimise k vectors (rows of ``init``) jointly; k = 1 is the sequential mode's single vector. ``lr=None`` uses
    the default step rule (``_trust_region_block``); a number uses AdamW with that learning rate (the reference's
    optimiser). Returns the final vectors (k, D) and the per-step objective of each vector."""
    if lr is None:
        return _trust_region_block(objective, init, basis, radius=radius, steps=steps, tol=tol,
                                   patience=min(patience, 10), progress=progress)
    theta = init.detach().float().clone().requires_grad_(True)  # fp32 master copy, (k, D)
    k = theta.shape[0]
    optimizer = torch.optim.AdamW([theta], lr=lr, betas=(0.9, 0.98), amsgrad=True, weight_decay=0.0)
    values: list[list[float]] = []  # the k objectives at each evaluation
    best, since_best = -math.inf, 0
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        obj = objective(theta)
        (-obj.sum()).backward()
        values.append(obj.tolist())
        with torch.no_grad():
            grad = remove_span(theta.grad, basis)
            theta.grad.copy_(sphere_tangent(grad, theta) if k == 1 else stiefel_tangent(grad, theta / radius))
        optimizer.step()
        with torch.no_grad():
            kept = remove_span(theta, basis)
            theta.copy_(radius * (orthonormal_rows(kept) if k > 1 else kept / kept.norm()))
        if progress is not None:
            progress.update(k)
        total = float(obj.detach().sum())
        if tol > 0:
            if total > best * (1 + tol) if best > 0 else total > best:
                best, since_best = total, 0
            else:
                since_best += 1
                if since_best >= patience:
                    break
    return _finish(objective, theta, values)


def _finish(objective, theta: Tensor, values: list[list[float]]) -> tuple[Tensor, list[list[float]]]:
    """End of a gradient-step block (MELBO's AdamW, MELBO-ortho): evaluate the final θ and return it with one curve
    per vector (``values``: the k objectives at each evaluation)."""
    with torch.no_grad():
        values.append(objective(theta.detach()).tolist())
    return theta.detach(), [list(curve) for curve in zip(*values)]


# the default step rule's constants (measured by bench/bench_melbo.py and bench/melbo_basis.py): first angle; growth
# on an accepted step when the angle model does not apply; shrink on a rejected one; largest and smallest angle
# (radians); the most an accepted step's model angle may grow the angle (×), the least a rejected one's may shrink it to
ANGLE_START, ANGLE_GROW, ANGLE_SHRINK, ANGLE_MAX, ANGLE_MIN = 0.25, 1.5, 0.5, 0.8, 1e-3
ANGLE_GROW_LIMIT, ANGLE_SHRINK_FLOOR = 4.0, 0.1
FREEZE_WINDOW = 5  # per-vector early stop window (``_trust_region_block``); measured: bench/results/melbo_basis.json


def _model_angle(f0: Tensor, b: Tensor, f_alpha: Tensor, alpha: Tensor) -> Tensor:
    """The best angle along one great circle under a quadratic model of the objective, per row.

    On θ(φ) = cos φ·θ + sin φ·R·d a quadratic objective is f(φ) = f0 cos²φ + 2B sin φ cos φ + C sin²φ, with
    f0 = f(θ) and 2B = f'(0) = R ∇f(θ)·d known before the step; the trial value f(α) gives C, and the maximum is at
    φ* = ½ atan2(2B, f0 − C). Rows with B ≤ 0 (not an ascent direction) get NaN.
    """
    s, c = torch.sin(alpha), torch.cos(alpha)
    curvature = (f_alpha - c * c * f0 - 2 * s * c * b) / (s * s).clamp_min(1e-30)
    best = 0.5 * torch.atan2(2 * b, f0 - curvature)
    return torch.where(b > 0, best, math.nan)


def _trust_region_block(objective: MelboObjective, init: Tensor, basis: Tensor | None, *, radius: float,
                        steps: int, tol: float, patience: int, progress=None) -> tuple[Tensor, list[list[float]]]:
    """The default MELBO step rule: monotone ascent on the sphere with an adaptive angle per vector.

    Each step row i turns by its own angle α_i along a unit direction d_i: a conjugate direction (its gradient plus
    β_i times its previous direction, Polak–Ribière+, carried over by projection; the plain gradient when that is
    not an ascent direction), projected orthogonal to the basis, to every row of the block and to d_0..d_{i−1}
    (``_ascent_directions``). As the d_i are orthonormal and orthogonal to the block, the turned rows are exactly
    orthonormal whatever the angles. A row keeps its step only if its objective did not fall (a trust region), so
    its recorded curve (an exact evaluation of its kept θ after every evaluation) never falls. The next angle comes
    from a quadratic model along the great circle just tried (``_model_angle``), kept within [α/2, min(4α,
    ``ANGLE_MAX``)] after an accepted step and [α/10, α/2] after a refused one (×1.5 / ×0.5 where the model does
    not apply). Scale-free: no learning rate.

    Stopping: after ``steps`` evaluations, or (``tol`` > 0) when the summed objective rose by less than the fraction
    ``tol`` over the last ``patience`` evaluations. Before that, a row whose own objective rose at less than that
    rate (by less than tol · ``FREEZE_WINDOW`` / patience over its last ``FREEZE_WINDOW`` evaluations), or whose
    angle fell below ``ANGLE_MIN``, keeps its vector and leaves the batch: later evaluations no longer replay it.
    """
    theta = init.detach().float().clone()  # fp32 master copy, (k, D)
    k = theta.shape[0]
    history: list[list[float]] = [[] for _ in range(k)]
    totals: list[float] = []

    def evaluate(t: Tensor) -> tuple[Tensor, Tensor]:
        t = t.clone().requires_grad_(True)
        obj = objective(t)  # (rows,) fp32
        (g,) = torch.autograd.grad(obj.sum(), t)
        return obj.detach(), g

    def record(values: Tensor) -> None:
        for curve, value in zip(history, values.tolist()):
            curve.append(value)
        totals.append(float(values.sum()))

    current, grad = evaluate(theta)
    record(current)
    angles = theta.new_full((k,), ANGLE_START)
    active = theta.new_ones(k, dtype=torch.bool)
    # per row, at its current θ: the direction it arrived along (gradient units) and the projected gradient where
    # that direction was formed (Polak–Ribière needs both); None until the first step
    search, free_before = torch.zeros_like(theta), None
    evaluations = 0
    while evaluations < steps:
        active &= angles >= ANGLE_MIN
        if not bool(active.any()):
            break
        frame = theta / radius
        free = remove_span(remove_span(grad, basis), frame)  # tangent gradients, orthogonal to the basis
        proposal = free
        if free_before is not None:
            carried = remove_span(remove_span(search, basis), frame)
            beta = ((free * (free - free_before)).sum(-1) / free_before.pow(2).sum(-1).clamp_min(1e-30)).clamp_min(0)
            proposal = free + beta[:, None] * carried
            proposal = torch.where(((proposal * free).sum(-1) > 0)[:, None], proposal, free)
        direction, movable = _ascent_directions(proposal, frame, basis, active)
        # Gram–Schmidt against earlier rows can spoil a conjugate direction: those rows take their plain gradient
        spoilt = movable & ~((direction * free).sum(-1) > 0)
        if bool(spoilt.any()):
            proposal = torch.where(spoilt[:, None], free, proposal)
            direction, movable = _ascent_directions(proposal, frame, basis, active)
        if not bool(movable.any()):
            break  # a stationary point
        rows = movable.nonzero().squeeze(-1)
        step = torch.where(movable, angles, 0.0)[:, None]
        trial = _retract(torch.cos(step) * theta + (torch.sin(step) * radius) * direction, basis, radius)
        value, trial_grad = evaluate(trial[rows])  # only the rows still moving are replayed
        evaluations += 1
        f0, alpha = current[rows], angles[rows]
        kept = value >= f0 - 1e-6 * f0.abs()  # a row unchanged up to rounding does not count as falling
        best = _model_angle(f0, 0.5 * radius * (grad[rows] * direction[rows]).sum(-1), value, alpha)
        no_model = torch.isnan(best)
        # the bounds never cross (α ≤ ANGLE_MAX), so clamp(lo, hi) = max(min(·, hi), lo)
        grown = best.clamp(alpha * ANGLE_SHRINK, (alpha * ANGLE_GROW_LIMIT).clamp_max(ANGLE_MAX))
        shrunk = best.clamp(alpha * ANGLE_SHRINK_FLOOR, alpha * ANGLE_SHRINK)
        angles[rows] = torch.where(kept, torch.where(no_model, (alpha * ANGLE_GROW).clamp_max(ANGLE_MAX), grown),
                                   torch.where(no_model, alpha * ANGLE_SHRINK, shrunk))
        moved = rows[kept]
        if free_before is None:  # first step: rows that did not move keep the plain gradient next time
            free_before = free.clone()
        # kept rows take their trial row, the others stay: every recorded objective is that of the row's exact θ
        free_before[moved], search[moved], theta[moved] = free[moved], proposal[moved], trial[moved]
        current[moved], grad[moved] = value[kept], trial_grad[kept]
        record(current)
        if progress is not None:
            progress.update(k)
        if tol > 0 and len(totals) > patience and totals[-1] <= totals[-1 - patience] * (1 + tol):
            break
        if tol > 0 and len(totals) > FREEZE_WINDOW:
            for i in active.nonzero().squeeze(-1).tolist():  # per-vector early stop
                if history[i][-1] <= history[i][-1 - FREEZE_WINDOW] * (1 + tol * FREEZE_WINDOW / patience):
                    active[i] = False
    gram = (theta @ theta.T) / radius**2 - torch.eye(k, device=theta.device)
    if float(gram.abs().max()) > 1e-5:  # rounding built up (not seen in practice): retract and re-evaluate
        theta = _retract(theta, basis, radius)
        with torch.no_grad():
            record(objective(theta))
    log.debug("block of %d: %d evaluations, final angles %s", k, evaluations, angles.tolist())
    return theta, history


def _ascent_directions(grad: Tensor, frame: Tensor, basis: Tensor | None, active: Tensor) -> tuple[Tensor, Tensor]:
    """Unit ascent directions (k, D) for a block with orthonormal rows ``frame`` (k, D), and which rows can move (k,).

    Row i's direction is its gradient minus its components along ``basis``, the block and the directions of rows
    0..i−1 (Gram–Schmidt in row order: earlier rows, like earlier vectors in sequential mode, get priority). A row
    whose remaining gradient is negligible, or that is not ``active``, does not move this step.
    """
    free = remove_span(remove_span(grad, basis), frame)  # (k, D)
    scale = free.norm(dim=-1).max().clamp_min(1e-30)
    out, done = [], None
    for row, row_active in zip(free.split(1), active.tolist()):  # (1, D) rows
        row = remove_span(row, done)
        norm = row.norm()
        if row_active and norm > 1e-6 * scale:
            row = row / norm
            done = append_rows(done, row)
        else:
            row = torch.zeros_like(row)
        out.append(row)
    directions = torch.cat(out)
    return directions, directions.any(-1)  # a unit row is nonzero


def _retract(moved: Tensor, basis: Tensor | None, radius: float) -> Tensor:
    """Rows of ``moved`` (k, D) back onto the constraint set: orthogonal to ``basis``, orthonormal, norm R."""
    moved = remove_span(moved, basis)
    return radius * orthonormal_rows(moved) if moved.shape[0] > 1 else radius * moved / moved.norm(dim=-1, keepdim=True)


def random_objectives(objective: MelboObjective, radius: float, n: int = 16, seed: int = 12345) -> list[float]:
    """Objectives of n seeded random vectors of norm R (MELBO with 0 steps): the level and band a trained vector
    must clear to mean anything."""
    g = torch.Generator().manual_seed(seed)
    thetas = torch.randn(n, objective.d_model, generator=g).to(objective.device)  # fp32 (n, D)
    thetas = radius * thetas / thetas.norm(dim=-1, keepdim=True)
    with torch.no_grad():
        return objective(thetas).tolist()


def auto_radius(objective: MelboObjective, *, radii: list[float] | None = None, probe_vectors: int = 2,
                probe_steps: int = 15, lr: float | None = None, seed: int = 0) -> tuple[float, list[dict]]:
    """Pick R at the knee where the target-layer change of *trained* vectors jumps.

    For each R on a geometric grid scaled to the typical residual norm at the source layer, train a small block of
    vectors briefly and record the mean objective per unit of R^(p/q) ("gain": the objective of a model that merely
    propagated θ linearly would grow exactly as R^(p/q), so a rising gain is amplification). The rule: R_auto is the
    grid radius right after the steepest rise of log(gain) between consecutive radii — below it the model responds
    linearly, at it the trained vectors start to trigger something. Returns (R_auto, rows of {radius, objective,
    random_objective, gain, chosen}).
    """
    from tqdm.auto import tqdm

    real = objective.replay.attention_mask.bool()
    typical = float(objective.replay.hidden[real].norm(dim=-1).median())
    radii = radii or [typical * f for f in (0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5)]
    rows = []
    for radius in tqdm(radii, desc="radius sweep"):
        init = _init(seed, probe_vectors, objective.d_model, None, radius, objective.device)
        # the probe uses the same step rule as the run (lr=None: trust region), so the knee reflects what the
        # default optimiser reaches; a number keeps the AdamW probe (lr · R/4)
        _, history = train_block(objective, init, None, radius=radius, steps=probe_steps,
                                 lr=None if lr is None else lr * radius / 4)
        trained = sum(h[-1] for h in history) / len(history)
        randoms = random_objectives(objective, radius, n=8)
        rows.append({"radius": radius, "objective": trained, "random_objective": sum(randoms) / len(randoms),
                     "gain": trained / radius ** (objective.power / objective.q)})
    points = [(math.log(r["radius"]), math.log(max(r["gain"], 1e-30))) for r in rows]  # (log R, log gain)
    slopes = [(g1 - g0) / (r1 - r0) for (r0, g0), (r1, g1) in pairwise(points)]
    knee = max(range(len(slopes)), key=slopes.__getitem__) + 1
    for i, row in enumerate(rows):
        row["chosen"] = i == knee
    return rows[knee]["radius"], rows


DEFAULT_PROMPTS = 8  # the first 8 of the shipped data/melbo_prompts.jsonl (16 varied chat prompts)


def training_prompts(prompts: list[str] | None) -> list[str]:
    """The prompts a MELBO run trains on: the given ones, or the shipped default set."""
    from ..data import load_prompts

    return list(prompts) if prompts is not None else load_prompts("melbo_prompts")[:DEFAULT_PROMPTS]


def melbo(model: SteerableModel, prompts: list[str] | None = None, *, source_layer: int | None = None,
          target_layer: int | None = None, num_vectors: int = 8, radius: float | str = "auto", power: float = 2.0,
          q: float | None = None, target_positions: str | int = "all", steps: int = 300, orthogonal: bool = True,
          mode: str = "sequential", block_size: int = 4, lr: float | None = None, tol: float = 1e-3,
          min_ratio: float | None = None, min_ratio_patience: int = 3, seed: int = 0, chat: bool = True,
          progress: bool = True, checkpoint: Checkpoint | None = None) -> MelboResult:
    """Discover steering vectors without labels (MELBO). Pure: computes and returns; ``ss.melbo`` (the run layer,
    ``runs.py``) adds ``out_dir``/``resume``, the held-out KL, samples, figures and the report.

    Args:
        prompts: training prompts (chat-formatted when ``chat`` and the tokenizer has a template). Default: the
            first 8 of the shipped ``melbo_prompts`` set (varied chat prompts: more prompts constrain each
            direction to change many contexts, so later vectors stay distinct from random ones for longer).
        source_layer / target_layer: block indices; θ is added at ``resid_post[source]``, the change is read at
            ``resid_post[target]``. Default ≈ 1/4 and ≈ 3/4 depth.
        radius: ‖θ‖, or ``"auto"`` (see ``auto_radius``).
        power / q: p and q of the objective (q defaults to p).
        target_positions: ``"all"`` tokens or the last k (int) tokens of each prompt.
        mode: ``sequential`` (one vector at a time, each orthogonal to the earlier ones) or ``parallel`` (blocks of
            ``block_size`` vectors trained jointly with orthonormal rows; blocks orthogonal to earlier blocks).
        steps: at most this many objective evaluations per vector (block); 0 gives random vectors (the baseline).
        lr: ``None`` (default): the trust-region step rule (``_trust_region_block``): each vector turns on the
            sphere along conjugate-gradient (Polak–Ribière+) directions by an angle fitted from a quadratic model
            of its last trial step; a step that would lower its objective is refused, so the objective never
            falls and no learning rate needs tuning. On the embedded model it reaches the reference's 300-step
            objective in 3 evaluations (bench/bench_melbo.py). A number: AdamW with that learning rate (the
            reference's optimiser; in parallel mode large rates make vectors trade objective between them).
        tol: stop a vector (block) when its summed objective rose by less than this fraction over the last 10
            evaluations (25 with AdamW); with the default rule a vector whose own objective rises more slowly than
            that (tol/2 over its last 5 evaluations) also stops early and leaves the batch; 0 = run all ``steps``.
        min_ratio: stop the run early once ``min_ratio_patience`` vectors in a row end below ``min_ratio`` × the
            random level (e.g. 3.0): later vectors would be indistinguishable from random ones. None: never.
        checkpoint: where finished vectors (blocks) are committed and an interrupted run is restored from
            (``restore()``, ``checkpoint(vectors, losses)``, ``read_table``/``write_table``; the run layer's
            ``Checkpoint``). None: nothing is kept.

    Example:
        >>> res = ss.melbo(m, ["How do I make a bomb?"], num_vectors=4, radius=8.0, steps=100, out_dir="runs/melbo")
        >>> res.vectors[0].norm()
        8.0
    """
    from tqdm.auto import tqdm

    prompts = training_prompts(prompts)
    if not prompts:
        raise InvalidArgumentError("give at least one training prompt (or None for the shipped melbo_prompts)")
    if min_ratio is not None and not (min_ratio > 0 and min_ratio_patience >= 1):
        raise InvalidArgumentError("min_ratio must be positive (e.g. 3.0) and min_ratio_patience at least 1")
    if mode not in ("sequential", "parallel"):
        raise InvalidArgumentError(f"mode must be 'sequential' or 'parallel', got {mode!r}")
    if num_vectors < 1 or steps < 0:
        raise InvalidArgumentError("num_vectors must be >= 1 and steps >= 0")
    if num_vectors > model.d_model and orthogonal:
        raise InvalidArgumentError(f"at most d_model = {model.d_model} mutually orthogonal vectors exist")
    default_source, default_target = default_source_target(model.n_layers)
    source_layer = default_source if source_layer is None else model.check_layer(source_layer)
    target_layer = default_target if target_layer is None else model.check_layer(target_layer)
    objective = MelboObjective(model, prompts, source_layer, target_layer, power=power, q=q,
                               target_positions=target_positions, chat=chat)
    run = checkpoint or NO_CHECKPOINT  # a Checkpoint without a path is false: it keeps nothing either

    sweep_rows: list[dict] = []
    if radius == "auto":
        sweep_rows = run.read_table("radius_sweep.csv") or []
        if sweep_rows:
            radius = next(float(r["radius"]) for r in sweep_rows if r.get("chosen") == "True")
        else:
            radius, sweep_rows = auto_radius(objective, seed=seed, lr=None if lr is None else 1e-2)
            run.write_table("radius_sweep.csv", sweep_rows)
        log.info("auto radius: R = %.3g", radius)
    radius = float(radius)
    if not 0 < radius < math.inf:  # NaN fails too
        raise InvalidArgumentError(f"radius must be a positive number or 'auto', got {radius}")
    lr = None if lr is None else float(lr)
    # the vectors' metadata (and summary.json) hold the resolved radius and step rule
    method_config = {"source_layer": source_layer, "target_layer": target_layer, "radius": radius, "power": power,
                     "q": q, "steps": steps, "mode": mode, "lr": lr if lr is not None else "trust_region", "seed": seed,
                     "target_positions": target_positions}

    randoms = random_objectives(objective, radius)
    random_level = sum(randoms) / len(randoms)
    vectors, losses = run.restore()
    k = block_size if mode == "parallel" else 1
    bar = tqdm(total=num_vectors * steps, initial=len(vectors) * steps, desc="melbo", disable=not progress)

    stop_reason = "num_vectors"
    while len(vectors) < num_vectors:
        if min_ratio is not None and len(losses) >= min_ratio_patience and all(
                h[-1] < min_ratio * random_level for h in losses[-min_ratio_patience:]):
            log.info("stopped after %d vectors: the last %d are within %.3gx the random level", len(vectors),
                     min_ratio_patience, min_ratio)
            stop_reason = "min_ratio"
            break
        index = len(vectors)
        size = min(k, num_vectors - index)
        # rebuilt from the saved vectors every time, so a resumed run computes exactly what an uninterrupted one does
        basis = (extend_basis(None, torch.stack(vectors).to(objective.device).float())
                 if vectors and orthogonal else None)
        init = _init(seed * 1_000_003 + index, size, model.d_model, basis, radius, objective.device)
        found, history = train_block(objective, init, basis, radius=radius, steps=steps, lr=lr, tol=tol, progress=bar)
        bar.update(max(0, size * steps - sum(len(h) - 1 for h in history)))  # an early stop skips the rest
        vectors.extend(found.cpu())
        losses.extend(history)
        run.checkpoint(_as_set(model, vectors, method_config), losses)
    bar.close()
    objectives = [h[-1] for h in losses]
    result = MelboResult(vectors=_as_set(model, vectors, method_config), losses=losses, objectives=objectives,
                         random_objective=random_level, radius=radius, radius_sweep=sweep_rows,
                         random_band=(min(randoms), max(randoms)), stop_reason=stop_reason)
    near = sum(r < 3.0 for r in result.ratios)
    if near:
        log.warning("%d of %d vectors end within 3x the random level (ratios %s); they are hard to tell from "
                    "random directions", near, len(objectives), ", ".join(f"{r:.2f}" for r in result.ratios))
    return result


def _as_set(model, vectors: list[Tensor], method_config: dict, method: str = "melbo") -> VectorSet:
    """The vectors found so far as one ``resid_post`` VectorSet at the source layer (MELBO and MELBO-ortho)."""
    return VectorSet({method_config["source_layer"]: torch.stack(vectors)}, "resid_post", model_type=model.model_type,
                     model_name=model.name, method=method, method_config=method_config)

