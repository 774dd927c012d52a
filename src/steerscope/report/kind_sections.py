"""The sections that belong to one run kind (MELBO, MELBO-ortho, sweep, transfer, linearity) and the section
order of every kind: its own result first, then vectors, samples, other figures and files.

Example:
    >>> [s.anchor for s in render_sections(load_run("runs/sweep-1"))]
    ['config', 'sweep', 'samples', 'files']
"""

from __future__ import annotations

import math

from .data import READ_ERRORS, RunData
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

TRANSFER_SUMMARY = ["scale", "mean_delta_logprob", "sem_delta_logprob", "mean_logprob", "hit_rate", "n_prompts"]
TRANSFER_PROMPTED = ["condition", *TRANSFER_SUMMARY[1:]]
TRANSFER_ROWS = ["scale", "prompt", "logprob", "base_logprob", "delta_logprob", "hit"]  # generations.jsonl, no text


def _known(facts: dict) -> dict:
    """The facts a run has: None and NaN (an unmeasured value saved as null) left out."""
    return {k: v for k, v in facts.items() if v is not None and not (isinstance(v, float) and math.isnan(v))}


def melbo_section(page: Page) -> Section | None:
    res = page.run.result
    band = [b for b in res.random_band if not math.isnan(b)]
    facts = {"radius": res.radius, "lr": res.vectors.meta.method_config.get("lr"),
             "random_objective": res.random_objective, "random_band": band if len(band) == 2 else None,
             "stop_reason": res.stop_reason, "vectors_above_3x_random": sum(r >= 3.0 for r in res.ratios)}
    plots = [p for p in (page.image("plots/objective_vs_index.png",
                                    "objective per vector against the band of random vectors' objectives"),
                         page.image("plots/radius_sweep.png", "radius sweep: trained vs random objective")) if p]
    return Section("melbo", "MELBO: objectives against random vectors", "facts", {
        "facts": kv(_known(facts), highlight=("random_objective",)), "figures": plots,
        "table_title": "radius sweep (radius_sweep.csv)", "table": table(res.radius_sweep) if res.radius_sweep else None})


def one_shot_section(page: Page) -> Section | None:
    res = page.run.result
    summary = {"final_loss": res.final_loss, "stop_reason": res.stop_reason, "steps": len(res.history),
               "norm": res.vector.norm()}
    examples = page.run.config.get("examples")
    examples = [{"prompt": e.get("prompt"), "promote": " | ".join(e.get("promote") or []),
                 "suppress": " | ".join(e.get("suppress") or []), "negate": e.get("negate"),
                 "positions": e.get("positions")} for e in (examples if isinstance(examples, list) else [])
                if isinstance(e, dict)]
    plot = page.image("loss.png", "loss (and vector norm) per step")
    return Section("one_shot", "One-shot optimisation", "facts", {
        "facts": kv(_known(summary), highlight=("final_loss",)), "figures": [plot] if plot else [],
        "table_title": "training examples", "table": table(examples) if examples else None})


def ortho_section(page: Page) -> Section | None:
    res = page.run.result
    facts = {"kl_direction": res.kl_direction, "base_norm": res.base.norm(), "kl_first10_mean": res.kl_first10_mean,
             "base_vector_layers": res.base.layers}
    return Section("ortho", "MELBO-ortho: KL and magnitude", "ortho", {
        "figure": page.image("plots/ortho_kl_norm.png", "KL to θ₀ and magnitude per vector"),
        "facts": kv(_known(facts)), "analysis": table(res.analysis) if res.analysis else None})


def ortho_samples_section(page: Page) -> Section | None:
    """Ortho samples with θ₀'s own completion (base_samples.jsonl) beside the baseline."""
    extra = {(s["split"], s["prompt"]): (f"θ₀ ×{s['scale']:g}" if s["scale"] is not None else "θ₀", s["completion"])
             for s in page.run.reference_samples if s["vector"] is not None}
    return samples_section(page, extra or None)


def sweep_section(page: Page) -> Section | None:
    res = page.run.result
    facts = {"window": list(res.window), "best_scale": res.best_scale, "objective": res.objective,
             "maximize": res.maximize}
    prompted = [{"condition": r.get("condition"), "scale": r.get("scale"), "prompt": r.get("prompt"),
                 "response": r.get("response")} for r in res.samples if isinstance(r, dict) and r.get("condition")]
    return Section("sweep", "Scale sweep", "sweep", {
        "figure": page.image("sweep.png", "behaviour and coherence against scale (shaded: coherence window)"),
        "facts": kv(facts, highlight=("window", "best_scale")), "tolerance": kv(res.tolerance or {}),
        "rows": table(res.rows) if res.rows else None,
        "prompt_rows": table(res.prompt_rows) if res.prompt_rows else None,
        "comparison": kv(res.prompting_comparison() or {}, highlight=("vector_beats_prompting",)),
        "prompted_samples": prompted})


def transfer_section(page: Page) -> Section | None:
    res = page.run.result
    scored = [{c: r.get(c) for c in TRANSFER_ROWS} for r in res.rows]
    return Section("transfer", "Transfer to held-out prompts", "transfer", {
        "figure": page.image("transfer.png", "Δ log-prob of the targets and hit rate against scale"),
        "baseline": kv(res.baseline), "summary": table(res.summary, TRANSFER_SUMMARY),
        "prompted": table(res.prompted, TRANSFER_PROMPTED) if res.prompted else None,
        "scored": table(scored, TRANSFER_ROWS) if scored else None})


def linearity_section(page: Page) -> Section | None:
    res = page.run.result
    facts = {k: getattr(res, k) for k in ("score", "raw_score", "embedding_shift_cosine", "control_score",
                                          "control_embedding_shift_cosine")}
    batches = max(len(res.lora_summaries), len(res.vector_summaries))
    summaries = [{"batch": b, "lora": _at(res.lora_summaries, b), "vector": _at(res.vector_summaries, b),
                  "control": _at(res.control_summaries or [], b)} for b in range(batches)]
    labels = [k for k in ("baseline", "vector", "lora", "control") if k in res.responses]
    prompts = res.responses.get("prompts", [])
    responses = [{"prompt": p, "texts": [(k, _at(res.responses[k], n)) for k in labels]} for n, p in enumerate(prompts)]
    return Section("linearity", "Linearity: vector against LoRA", "linearity", {
        "figure": page.image("linearity_heatmap.png", "summary similarity, LoRA batch × vector batch (boxed: matched)"),
        "facts": kv(_known(facts), highlight=("score",)),
        "summaries": summaries, "control": res.control_summaries is not None, "responses": responses})


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
    "generic": ["config", "vectors", "losses", "samples", "figures", "files"],
}


def render_sections(run: RunData) -> list[Section]:
    """The sections of the run's kind in its order (its own result first), skipping empty ones. "figures" comes
    after every section that places its own images, so it shows only the rest. A section that meets a value it
    cannot show (a damaged file the result's loader let through) becomes a warning, never a broken page."""
    page = Page(run)
    out = []
    for name in ORDER.get(run.kind, ORDER["generic"]):
        try:
            section = SECTIONS[name](page)
        except (*READ_ERRORS, AttributeError) as exc:
            run.warnings.append(f"the {name} section could not be shown ({type(exc).__name__}: {exc})")
            continue
        if section is not None:
            out.append(section)
    return out
