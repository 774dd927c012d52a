"""Figures of results (MELBO, MELBO-ortho, LoRA discovery); each result's ``figures()`` draws with these and the run
layer (``runs.write_run``) saves them as PNG. ``matplotlib.figure.Figure`` objects, never pyplot: drawing them neither
switches the user's backend (a notebook keeps its own) nor leaves figures in pyplot's global registry.

Example:
    >>> fig = plot_losses([[1.0, 2.0, 2.5]], random_level=0.8)
    >>> save_figure(fig, "runs/x/plots/loss_curves.png")
"""

from __future__ import annotations

from .io import subplots


def plot_losses(losses: list[list[float]], *, random_level: float | None = None,
                ylabel: str = "objective", title: str = "MELBO objective per vector"):
    """One curve per vector against step; the random-vector baseline as a dashed line."""
    fig, ax = subplots(figsize=(7, 4))
    for i, curve in enumerate(losses):
        ax.plot(curve, lw=1.2, label=f"v{i}" if len(losses) <= 12 else None)
    if random_level is not None:
        ax.axhline(random_level, color="k", ls="--", lw=1, label="random vectors (0 steps)")
    ax.set(xlabel="step", ylabel=ylabel, title=title)
    if len(losses) <= 12 or random_level is not None:
        ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    return fig


def plot_objective_vs_index(objectives: list[float], random_level: float, random_band: tuple[float, float],
                            *, heldout_kl: list[float] | None = None, multiples: tuple[float, ...] = (3.0,)):
    """MELBO: each vector's final objective against its index (log scale), over the band of random vectors' objectives
    (shaded) and k × the random level (dotted): vectors near the band are indistinguishable from random ones. With
    ``heldout_kl`` a second panel shows each vector's KL to the unsteered model on held-out prompts."""
    rows = 2 if heldout_kl else 1
    fig, axes = subplots(rows, 1, figsize=(7, 3.2 * rows + 0.6), sharex=True, squeeze=False)
    ax = axes[0][0]
    idx = range(len(objectives))
    ax.plot(idx, objectives, "o-", ms=3, lw=1, label="trained vector")
    ax.axhspan(*random_band, color="0.6", alpha=0.35, label="random vectors (min–max)")
    ax.axhline(random_level, color="k", ls="--", lw=1, label="random level (mean)")
    for k in multiples:
        ax.axhline(k * random_level, color="C3", ls=":", lw=1, label=f"{k:g}× random")
    ax.set(yscale="log", ylabel="final objective", title="MELBO: objective per vector against the random band")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, which="both")
    if heldout_kl:
        ax2 = axes[1][0]
        ax2.plot(idx, heldout_kl, "s-", ms=3, lw=1, color="C2")
        ax2.set_ylabel("held-out KL to unsteered (nats)")
        ax2.grid(alpha=0.3)
    axes[-1][0].set_xlabel("vector index")
    return fig


def plot_radius_sweep(rows: list[dict]):
    """Objective of briefly trained and of random vectors against R (log-log), chosen R marked."""
    fig, ax = subplots(figsize=(6, 4))
    radii = [float(r["radius"]) for r in rows]
    ax.loglog(radii, [float(r["objective"]) for r in rows], "o-", label="trained (short)")
    ax.loglog(radii, [float(r["random_objective"]) for r in rows], "s--", label="random")
    for r in rows:
        if r.get("chosen") in (True, "True"):
            ax.axvline(float(r["radius"]), color="C3", ls=":", label=f"chosen R = {float(r['radius']):.3g}")
    ax.set(xlabel="radius R", ylabel="target-layer change (objective)",
           title="MELBO radius sweep: the knee where trained vectors jump")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
    return fig


def plot_ortho(rows: list[dict], *, direction: str):
    """MELBO-ortho: KL to θ₀ (with moving average), rescaled KL, and norm against vector index."""
    idx = [int(r["index"]) for r in rows]
    fig, (ax1, ax2) = subplots(2, 1, figsize=(8, 6), sharex=True)
    ax1.plot(idx, [r["kl"] for r in rows], ".", ms=3, alpha=0.5, label=f"KL {direction}")
    ax1.plot(idx, [r["kl_moving_avg"] for r in rows], "-", lw=1.5, label="moving average")
    if any(r.get("kl_rescaled") is not None for r in rows):
        ax1.plot(idx, [r.get("kl_rescaled") for r in rows], "-", lw=1, alpha=0.8, label="rescaled to ‖θ₀‖")
    ax1.set_ylabel("KL (nats)")
    ax1.set_yscale("symlog", linthresh=1e-2)
    ax1.legend(fontsize=8)
    ax1.grid(alpha=0.3)
    ax2.plot(idx, [r["norm"] for r in rows], "-", lw=1.2)
    ax2.set(ylabel="‖θᵢ‖", xlabel="vector index")
    ax2.grid(alpha=0.3)
    fig.suptitle("MELBO-ortho: vectors orthogonal to θ₀ with the same effect")
    return fig


def plot_lora_losses(rows: list[dict], index: int):
    """LoRA discovery: loss, KL(P‖Q) and NLL(Q, y) per step of one run."""
    fig, axes = subplots(1, 3, figsize=(11, 3))
    steps = [r["step"] for r in rows]
    for ax, key, title in zip(axes, ("loss", "kl", "nll"), ("loss", "KL(P‖Q) per token", "NLL(Q, y) per token")):
        ax.plot(steps, [r[key] for r in rows])
        ax.set(title=title, xlabel="step")
    fig.suptitle(f"LoRA discovery run {index}")
    return fig
