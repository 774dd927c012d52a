"""The report's sections as plain view data for the Jinja2 templates (``templates/sections/*.html.j2``): the ones
every kind shares (configuration, vectors, loss curves, completions, figures, files), those that belong to one run
kind (MELBO, MELBO-ortho, one-shot, sweep, transfer, linearity) and each kind's section order.

A section function takes a ``Page`` (the typed run and which images are already shown) and returns a ``Section``
or None when it has nothing to show. No HTML is built here: the templates do that, with autoescape on.

Example:
    >>> page = Page(load_run("runs/melbo-1"))
    >>> vectors_section(page).title
    'Vectors (8)'
    >>> [s.anchor for s in render_sections(load_run("runs/sweep-1"))]
    ['config', 'sweep', 'samples', 'files']
"""

from __future__ import annotations

import functools
import json
import math
from collections import defaultdict
from dataclasses import dataclass, field
from itertools import zip_longest

from ..plots import plot_losses
from . import figures
from .data import READ_ERRORS, RunData, Sample
from .format import is_number, short_list

MODEL_KEYS = ["method", "model_name", "model_type", "n_layers", "d_model", "steerscope_version", "created_at"]
STAT_COLUMNS = ["norm", "objective", "objective_vs_random", "kl_to_base", "heldout_kl"]  # beside a vector's title
OPEN_ALL = 8  # runs with up to this many vectors start with every vector open, longer ones with the first 3
TRANSFER_SUMMARY = ["scale", "mean_delta_logprob", "sem_delta_logprob", "mean_logprob", "hit_rate", "n_prompts"]
TRANSFER_PROMPTED = ["condition", *TRANSFER_SUMMARY[1:]]
TRANSFER_ROWS = ["scale", "prompt", "logprob", "base_logprob", "delta_logprob", "hit"]  # generations.jsonl, no text


@dataclass
class Section:
    anchor: str
    title: str
    template: str  # templates/sections/<template>.html.j2
    data: dict


@dataclass
class Page:
    """What the sections share while one page is built: the run and the images already placed."""

    run: RunData
    used: set[str] = field(default_factory=set)

    @functools.cached_property
    def drawn(self) -> dict:
        """The result's own figures(), drawn once, when a PNG is missing."""
        return self.run.result.figures()

    def image(self, name: str, caption: str | None = None) -> dict | None:
        """Figure ``name`` as {uri, caption}: the run's PNG file, else drawn by ``result.figures()``, else None."""
        uri = figures.file_uri(self.run.images[name]) if name in self.run.images else None
        if uri is None and self.run.result is not None and name in self.drawn:
            uri = figures.render(self.drawn[name])
        if uri is None:
            return None
        self.used.add(name)
        return {"uri": uri, "caption": caption or name}


def kv(items: dict, highlight: tuple[str, ...] = ()) -> list[dict]:
    """Key/value rows; nested values are shown as (folding) JSON."""
    nested = {key: isinstance(value, (dict, list)) and not short_list(value) for key, value in items.items()}
    return [{"key": key, "value": json.dumps(value, indent=2, sort_keys=True, default=str) if nested[key] else value,
             "nested": nested[key], "highlight": key in highlight} for key, value in items.items()]


def table(rows: list[dict], columns: list[str] | None = None) -> dict | None:
    """Rows under ``columns`` (default: every key, in the order met); None when there are no rows."""
    return {"columns": columns or list(dict.fromkeys(k for row in rows for k in row)), "rows": rows} if rows else None


def config_section(page: Page) -> Section:
    run = page.run
    cfg = dict(run.config)
    top = {k: cfg.pop(k) for k in MODEL_KEYS if k in cfg}
    vs = run.vector_set
    header = {"vectors": len(vs), "site": vs.site, "layers": vs.layers, "d_model": vs.d_model,
              "method": vs.meta.method, "model_name": vs.meta.model_name} if vs is not None else {}
    return Section("config", "Configuration and model", "config", {
        "top": kv(top), "header": kv(header), "settings": kv(cfg), "empty": not (top or header or cfg)})


def vectors_section(page: Page) -> Section | None:
    run = page.run
    rows = run.table()
    if not rows:
        return None
    return Section("vectors", f"{run.item.capitalize()}s ({len(rows)})", "vectors", {"table": table(rows)})


def losses_section(page: Page) -> Section | None:
    run = page.run
    own = page.image("plots/loss_curves.png")
    if not run.losses and not own:
        return None
    final = [{run.item: i, "steps": len(p), "first_loss": p[0][1], "final_loss": p[-1][1]}
             for i, p in run.losses.items()]
    curves = [[v for _, v in p] for p in run.losses.values()]
    figure = own or {"uri": figures.render(plot_losses(curves, ylabel="loss", title=f"loss per {run.item}")),
                     "caption": "loss curves"}  # the run's own PNG, else the curves drawn here
    return Section("losses", "Loss curves", "losses", {"figure": figure, "final": table(final)})


def pairs(steered: dict[tuple, list], baselines: dict[tuple, str], order: list[tuple], item: str,
          extra: dict[tuple, tuple[str, str]] | None = None) -> dict:
    """Baseline (and ``extra``, e.g. θ₀) beside the steered completions, one grid row per prompt, one column
    per scale; each cell is (kind, label, text)."""
    scales = sorted({s for items in steered.values() for s, _ in items}, key=lambda s: (s is None, s or 0))
    prompts = []
    for key in [k for k in order if k in steered]:
        cells = [("baseline", "baseline", baselines.get(key))]
        if extra is not None:
            cells.append(("reference", *extra.get(key, ("", None))))
        by_scale = dict(steered[key])
        for s in scales:
            label = f"steered ×{s:g}" if s is not None else ("adapted" if item == "adapter" else "steered")
            cells.append(("steered", label, by_scale.get(s)))
        prompts.append({"split": key[0], "prompt": key[1], "cells": cells})
    return {"columns": min(len(prompts[0]["cells"]) if prompts else 1, 4), "prompts": prompts}


def _group(samples: list[Sample]):
    """(baseline per (split, prompt), steered {index: {(split, prompt): [(scale, text)]}}, prompt order)."""
    baselines: dict[tuple, str] = {}
    steered: dict[int, dict[tuple, list]] = defaultdict(lambda: defaultdict(list))
    order: dict[tuple, None] = {}
    for s in samples:
        key = (s["split"], s["prompt"])
        order.setdefault(key)
        if s["vector"] is None:
            baselines.setdefault(key, s["completion"])
        else:
            steered[s["vector"]][key].append((s["scale"], s["completion"]))
    return baselines, steered, list(order)


def samples_section(page: Page, extra: dict[tuple, tuple[str, str]] | None = None) -> Section | None:
    run = page.run
    if not run.samples:
        return None
    baselines, steered, order = _group(run.samples)
    stats = {row["index"]: row for row in run.table()}  # one row per vector index, in order
    vectors = [{"index": i, "open": len(stats) <= OPEN_ALL or n < 3,
                "stats": [(k, row[k]) for k in STAT_COLUMNS if is_number(row.get(k))],
                "pairs": pairs(steered.get(i, {}), baselines, order, run.item, extra)}
               for n, (i, row) in enumerate(stats.items())]
    only_baseline = [{"split": k[0], "prompt": k[1], "text": baselines[k]} for k in order if k in baselines]
    return Section("samples", "Completions: baseline vs steered", "samples", {
        "item": run.item, "vectors": vectors, "baselines": only_baseline if not stats else []})


def figures_section(page: Page) -> Section | None:
    items = [{"uri": figures.file_uri(path), "caption": name} for name, path in page.run.images.items()
             if name not in page.used]
    return Section("figures", "Figures", "figures", {"figures": items}) if items else None


def files_section(page: Page) -> Section | None:
    root = page.run.path
    rows = [{"file": p.relative_to(root).as_posix(), "bytes": p.stat().st_size}
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != "report.html"]
    return Section("files", "Files", "files", {"table": table(rows)}) if rows else None


# ---- the sections of one run kind ----

def _known(facts: dict) -> dict:
    """The facts a run has: None and NaN (an unmeasured value saved as null) left out."""
    return {k: v for k, v in facts.items() if v is not None and not (isinstance(v, float) and math.isnan(v))}


def melbo_section(page: Page) -> Section | None:
    res = page.run.result
    # summary.json's facts but the per-vector lists (the vector table has them); a band never measured is left out
    facts = {k: v for k, v in res.summary().items() if k not in ("objectives", "objective_vs_random", "heldout_kl")}
    if any(map(math.isnan, res.random_band)):
        facts["random_band"] = None
    plots = [p for p in (page.image("plots/objective_vs_index.png",
                                    "objective per vector against the band of random vectors' objectives"),
                         page.image("plots/radius_sweep.png", "radius sweep: trained vs random objective")) if p]
    return Section("melbo", "MELBO: objectives against random vectors", "facts", {
        "facts": kv(_known(facts), highlight=("random_objective",)), "figures": plots,
        "table_title": "radius sweep (radius_sweep.csv)", "table": table(res.radius_sweep)})


def one_shot_section(page: Page) -> Section | None:
    res = page.run.result
    examples = page.run.config.get("examples")
    # one row per example, its completion lists joined
    examples = [{k: " | ".join(e.get(k) or []) if k in ("promote", "suppress") else e.get(k)
                 for k in ("prompt", "promote", "suppress", "negate", "positions")}
                for e in (examples if isinstance(examples, list) else []) if isinstance(e, dict)]
    plot = page.image("loss.png", "loss (and vector norm) per step")
    return Section("one_shot", "One-shot optimisation", "facts", {
        "facts": kv(_known(res.summary()), highlight=("final_loss",)), "figures": [plot] if plot else [],
        "table_title": "training examples", "table": table(examples)})


def ortho_section(page: Page) -> Section | None:
    res = page.run.result
    facts = {"kl_direction": res.kl_direction, "base_norm": res.base.norm(), "kl_first10_mean": res.kl_first10_mean,
             "base_vector_layers": res.base.layers}
    return Section("ortho", "MELBO-ortho: KL and magnitude", "ortho", {
        "figure": page.image("plots/ortho_kl_norm.png", "KL to θ₀ and magnitude per vector"),
        "facts": kv(_known(facts)), "analysis": table(res.analysis)})


def ortho_samples_section(page: Page) -> Section | None:
    """Ortho samples with θ₀'s own completion (base_samples.jsonl) beside the baseline."""
    extra = {(s["split"], s["prompt"]): (f"θ₀ ×{s['scale']:g}" if s["scale"] is not None else "θ₀", s["completion"])
             for s in page.run.reference_samples if s["vector"] is not None}
    return samples_section(page, extra or None)


def sweep_section(page: Page) -> Section | None:
    res = page.run.result
    facts = {"window": list(res.window), "best_scale": res.best_scale, "objective": res.objective,
             "maximize": res.maximize}
    prompted = [r for r in res.samples if isinstance(r, dict) and r.get("condition")]
    return Section("sweep", "Scale sweep", "sweep", {
        "figure": page.image("sweep.png", "behaviour and coherence against scale (shaded: coherence window)"),
        "facts": kv(facts, highlight=("window", "best_scale")), "tolerance": kv(res.tolerance or {}),
        "rows": table(res.rows), "prompt_rows": table(res.prompt_rows), "prompted_samples": prompted,
        "comparison": kv(res.prompting_comparison() or {}, highlight=("vector_beats_prompting",))})


def transfer_section(page: Page) -> Section | None:
    res = page.run.result
    return Section("transfer", "Transfer to held-out prompts", "transfer", {
        "figure": page.image("transfer.png", "Δ log-prob of the targets and hit rate against scale"),
        "baseline": kv(res.baseline), "summary": table(res.summary, TRANSFER_SUMMARY),
        "prompted": table(res.prompted, TRANSFER_PROMPTED), "scored": table(res.rows, TRANSFER_ROWS)})


def linearity_section(page: Page) -> Section | None:
    res = page.run.result
    facts = {k: getattr(res, k) for k in ("score", "raw_score", "embedding_shift_cosine", "control_score",
                                          "control_embedding_shift_cosine")}
    summaries = [{"batch": b, "lora": lora, "vector": vector, "control": _at(res.control_summaries or [], b)}
                 for b, (lora, vector) in enumerate(zip_longest(res.lora_summaries, res.vector_summaries))]
    labels = [k for k in ("baseline", "vector", "lora", "control") if k in res.responses]
    prompts = res.responses.get("prompts", [])
    responses = [{"prompt": p, "texts": [(k, _at(res.responses[k], n)) for k in labels]} for n, p in enumerate(prompts)]
    return Section("linearity", "Linearity: vector against LoRA", "linearity", {
        "figure": page.image("linearity_heatmap.png", "summary similarity, LoRA batch × vector batch (boxed: matched)"),
        "facts": kv(_known(facts), highlight=("score",)),
        "summaries": summaries, "control": res.control_summaries is not None, "responses": responses})


def _at(items: list, n: int):
    return items[n] if n < len(items) else None


# each kind's own sections, its result first; the configuration comes before them, figures and files after
ORDER = {
    "melbo": [vectors_section, melbo_section, losses_section, samples_section],
    "melbo_ortho": [ortho_section, vectors_section, losses_section, ortho_samples_section],
    "sweep": [sweep_section, samples_section],
    "transfer": [transfer_section, samples_section],
    "linearity": [linearity_section],
    "one_shot": [one_shot_section, vectors_section, losses_section],
    "generic": [vectors_section, losses_section, samples_section],  # and LoRA discovery (its vectors are adapters)
}


def render_sections(run: RunData) -> list[Section]:
    """The sections of the run's kind in its order (its own result first), skipping empty ones. "figures" comes
    after every section that places its own images, so it shows only the rest. A section that meets a value it
    cannot show (a damaged file the result's loader let through) becomes a warning, never a broken page."""
    page = Page(run)
    out = []
    for make in [config_section, *ORDER.get(run.kind, ORDER["generic"]), figures_section, files_section]:
        try:
            section = make(page)
        except (*READ_ERRORS, AttributeError) as exc:
            name = make.__name__.removesuffix("_section")
            run.warnings.append(f"the {name} section could not be shown ({type(exc).__name__}: {exc})")
            continue
        if section is not None:
            out.append(section)
    return out
