"""The sections that belong to one run kind (MELBO, MELBO-ortho, sweep, transfer, linearity) and the section
order of every kind: its own result first, then vectors, samples, other figures and files.

Example:
    >>> [s.anchor for s in render_sections(load_run("runs/sweep-1"))]
    ['config', 'sweep', 'samples', 'files']
"""

from __future__ import annotations

from . import figures
from .data import RunData
from .eval_readers import LinearityRun, SweepRun, TransferRun
from .readers import MelboRun, OneShotRun, OrthoRun
from .sections import (
    Page,
    Section,
    config_section,
    figures_section,
    files_section,
    kv,
    losses_section,
    samples_section,
    table,
    vectors_section,
)


def melbo_section(page: Page) -> Section | None:
    run = page.run
    if not isinstance(run, MelboRun):
        return None
    facts = {"radius": run.radius, "lr": run.lr, "random_objective": run.random_objective,
             "random_band": list(run.random_band) if run.random_band else None, "stop_reason": run.stop_reason,
             "vectors_above_3x_random": sum(r >= 3.0 for r in run.ratios if r is not None) if run.ratios else None}
    plots = [p for p in (page.image("plots/objective_vs_index.png",
                                    "objective per vector against the band of random vectors' objectives"),
                         page.image("plots/radius_sweep.png", "radius sweep: trained vs random objective")) if p]
    return Section("melbo", "MELBO: objectives against random vectors", "facts", {
        "facts": kv({k: v for k, v in facts.items() if v is not None}, highlight=("random_objective",)),
        "figures": plots, "table_title": "radius sweep (radius_sweep.csv)",
        "table": table(run.radius_sweep) if run.radius_sweep else None})


def one_shot_section(page: Page) -> Section | None:
    run = page.run
    if not isinstance(run, OneShotRun):
        return None
    examples = [{"prompt": e.get("prompt"), "promote": " | ".join(e.get("promote") or []),
                 "suppress": " | ".join(e.get("suppress") or []), "negate": e.get("negate"),
                 "positions": e.get("positions")} for e in run.examples]
    plot = page.image("loss.png", "loss (and vector norm) per step")
    return Section("one_shot", "One-shot optimisation", "facts", {
        "facts": kv(run.summary, highlight=("final_loss",)), "figures": [plot] if plot else [],
        "table_title": "training examples", "table": table(examples) if examples else None})


def ortho_section(page: Page) -> Section | None:
    run = page.run
    if not isinstance(run, OrthoRun):
        return None
    plot = page.image("plots/ortho_kl_norm.png")
    if plot is None and run.analysis:
        plot = {"uri": figures.ortho_curves(run.analysis),
                "caption": "KL to θ₀ and magnitude per vector (ortho.csv)"}
    base = run.base_vector
    facts = {"kl_direction": run.kl_direction, "base_norm": run.base_norm, "kl_first10_mean": run.kl_first10_mean,
             "base_vector_layers": base.layers if base is not None else None}
    return Section("ortho", "MELBO-ortho: KL and magnitude", "ortho", {
        "figure": plot, "facts": kv({k: v for k, v in facts.items() if v is not None}),
        "analysis": table(run.analysis) if run.analysis else None})


def ortho_samples_section(page: Page) -> Section | None:
    """Ortho samples with θ₀'s own completion (base_samples.jsonl) beside the baseline."""
    run = page.run
    extra = None
    if isinstance(run, OrthoRun) and run.base_samples:
        extra = {(s["split"], s["prompt"]): (f"θ₀ ×{s['scale']:g}" if s["scale"] is not None else "θ₀",
                                             s["completion"]) for s in run.base_samples if s["vector"] is not None}
    return samples_section(page, extra)


def sweep_section(page: Page) -> Section | None:
    run = page.run
    if not isinstance(run, SweepRun):
        return None
    facts = {"window": list(run.window) if run.window else None, "best_scale": run.best_scale,
             "objective": run.objective, "maximize": run.maximize}
    comparison = run.prompting_comparison or {}
    return Section("sweep", "Scale sweep", "sweep", {
        "figure": page.image("sweep.png", "behaviour and coherence against scale (shaded: coherence window)"),
        "facts": kv(facts, highlight=("window", "best_scale")), "tolerance": kv(run.tolerance),
        "rows": table(run.scale_rows) if run.scale_rows else None,
        "prompt_rows": table(run.prompt_rows) if run.prompt_rows else None,
        "comparison": kv(comparison, highlight=("vector_beats_prompting",)),
        "prompted_samples": run.prompted_samples})


def transfer_section(page: Page) -> Section | None:
    run = page.run
    if not isinstance(run, TransferRun):
        return None
    return Section("transfer", "Transfer to held-out prompts", "transfer", {
        "figure": page.image("transfer.png", "Δ log-prob of the targets and hit rate against scale"),
        "baseline": kv(run.baseline), "summary": table(run.summary, list(TransferRun.SUMMARY_COLUMNS)),
        "prompted": table(run.prompted, list(TransferRun.PROMPTED_COLUMNS)) if run.prompted else None,
        "scored": table(run.scored, list(TransferRun.ROW_COLUMNS)) if run.scored else None})


def linearity_section(page: Page) -> Section | None:
    run = page.run
    if not isinstance(run, LinearityRun):
        return None
    facts = {k: getattr(run, k) for k in ("score", "raw_score", "embedding_shift_cosine", "control_score",
                                          "control_embedding_shift_cosine")}
    batches = max(len(run.lora_summaries), len(run.vector_summaries))
    summaries = [{"batch": b, "lora": _at(run.lora_summaries, b), "vector": _at(run.vector_summaries, b),
                  "control": _at(run.control_summaries or [], b)} for b in range(batches)]
    labels = [k for k in ("baseline", "vector", "lora", "control") if k in run.responses]
    prompts = run.responses.get("prompts", [])
    responses = [{"prompt": p, "texts": [(k, _at(run.responses[k], n)) for k in labels]} for n, p in enumerate(prompts)]
    return Section("linearity", "Linearity: vector against LoRA", "linearity", {
        "figure": page.image("linearity_heatmap.png", "summary similarity, LoRA batch × vector batch (boxed: matched)"),
        "facts": kv({k: v for k, v in facts.items() if v is not None}, highlight=("score",)),
        "summaries": summaries, "control": run.control_summaries is not None, "responses": responses})


def _at(items: list, n: int):
    return items[n] if n < len(items) else None


SECTIONS = {
    "config": config_section, "vectors": vectors_section, "losses": losses_section, "samples": samples_section,
    "melbo": melbo_section, "one_shot": one_shot_section, "ortho": ortho_section, "ortho_samples": ortho_samples_section,
    "sweep": sweep_section, "transfer": transfer_section, "linearity": linearity_section,
    "figures": figures_section, "files": files_section,
}
ORDER = {
    "melbo": ["config", "vectors", "melbo", "losses", "samples", "figures", "files"],
    "melbo_ortho": ["config", "ortho", "vectors", "losses", "ortho_samples", "figures", "files"],
    "lora_discovery": ["config", "vectors", "losses", "samples", "figures", "files"],
    "sweep": ["config", "sweep", "samples", "figures", "files"],
    "transfer": ["config", "transfer", "samples", "figures", "files"],
    "linearity": ["config", "linearity", "figures", "files"],
    "one_shot": ["config", "one_shot", "vectors", "losses", "figures", "files"],
    "generic": ["config", "vectors", "figures", "files"],
}


def render_sections(run: RunData) -> list[Section]:
    """The sections of the run's kind in its order (its own result first), skipping empty ones. "figures" comes
    after every section that places its own images, so it shows only the rest."""
    page = Page(run)
    out = []
    for name in ORDER.get(run.method, ORDER["generic"]):
        section = SECTIONS[name](page)
        if section is not None:
            out.append(section)
    return out
