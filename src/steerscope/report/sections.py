"""The report's sections as plain view data for the Jinja2 templates (``templates/sections/*.html.j2``).

A section function takes the typed run and a ``Page`` (which images are already shown) and returns a ``Section``
or None when it has nothing to show. No HTML is built here: the templates do that, with autoescape on.

Example:
    >>> page = Page(load_run("runs/melbo-1"))
    >>> vectors_section(page).title
    'Vectors (8)'
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field

from ..plots import plot_losses
from . import figures
from .data import RunData, Sample
from .format import is_number, short_list

MODEL_KEYS = ["method", "model_name", "model_type", "n_layers", "d_model", "steerscope_version", "created_at"]
STAT_COLUMNS = ["norm", "objective", "objective_vs_random", "kl_to_base", "heldout_kl"]  # beside a vector's title
OPEN_ALL = 8  # runs with up to this many vectors start with every vector open, longer ones with the first 3


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
    drawn: dict | None = None  # the result's own figures(), drawn once when a PNG is missing

    def image(self, name: str, caption: str | None = None) -> dict | None:
        """The run's figure ``name`` as {uri, caption}: its PNG file, else drawn from the result (``figures()``);
        None when neither has it."""
        path = self.run.images.get(name)
        uri = figures.file_uri(path) if path is not None else None
        if uri is None and self.run.result is not None:
            if self.drawn is None:
                self.drawn = self.run.result.figures()
            uri = figures.render(self.drawn[name]) if name in self.drawn else None
        if uri is None:
            return None
        self.used.add(name)
        return {"uri": uri, "caption": caption or name}


def kv(items: dict, highlight: tuple[str, ...] = ()) -> list[dict]:
    """Key/value rows; nested values are shown as (folding) JSON."""
    out = []
    for key, value in items.items():
        nested = isinstance(value, (dict, list)) and not short_list(value)
        out.append({"key": key, "value": json.dumps(value, indent=2, sort_keys=True, default=str) if nested else value,
                    "nested": nested, "highlight": key in highlight})
    return out


def table(rows: list[dict], columns: list[str] | None = None) -> dict:
    return {"columns": columns or list(dict.fromkeys(k for row in rows for k in row)), "rows": rows}


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
    drawn = None if own else {"uri": figures.render(plot_losses([[v for _, v in p] for p in run.losses.values()],
                                                                ylabel="loss", title=f"loss per {run.item}")),
                              "caption": "loss curves"}
    final = [{run.item: i, "steps": len(p), "first_loss": p[0][1], "final_loss": p[-1][1]}
             for i, p in run.losses.items()]
    return Section("losses", "Loss curves", "losses", {"figure": own or drawn, "final": table(final) if final else None})


def _cell(kind: str, label: str, text: str | None) -> dict:
    return {"kind": kind, "label": label, "text": text}


def pairs(steered: dict[tuple, list], baselines: dict[tuple, str], order: list[tuple], item: str,
          extra: dict[tuple, tuple[str, str]] | None = None) -> dict:
    """Baseline (and ``extra``, e.g. θ₀) beside the steered completions, one grid row per prompt, one column
    per scale."""
    scales = sorted({s for items in steered.values() for s, _ in items}, key=lambda s: (s is None, s or 0))
    prompts = []
    for key in [k for k in order if k in steered]:
        cells = [_cell("baseline", "baseline", baselines.get(key))]
        if extra is not None:
            label, text = extra.get(key, ("", None))
            cells.append(_cell("reference", label, text))
        by_scale = dict(steered[key])
        for s in scales:
            label = f"steered ×{s:g}" if s is not None else ("adapted" if item == "adapter" else "steered")
            cells.append(_cell("steered", label, by_scale.get(s)))
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
    indices = run.vector_indices()
    if not run.samples:
        return None
    baselines, steered, order = _group(run.samples)
    stats = {row["index"]: row for row in run.table()}
    vectors = []
    for n, i in enumerate(indices):
        row = stats.get(i, {})
        vectors.append({"index": i, "open": len(indices) <= OPEN_ALL or n < 3,
                        "stats": [(k, row[k]) for k in STAT_COLUMNS if is_number(row.get(k))],
                        "pairs": pairs(steered.get(i, {}), baselines, order, run.item, extra)})
    only_baseline = [{"split": k[0], "prompt": k[1], "text": baselines[k]} for k in order if k in baselines]
    return Section("samples", "Completions: baseline vs steered", "samples", {
        "item": run.item, "vectors": vectors, "baselines": only_baseline if not indices else []})


def figures_section(page: Page) -> Section | None:
    items = [{"uri": figures.file_uri(path), "caption": name} for name, path in page.run.images.items()
             if name not in page.used]
    return Section("figures", "Figures", "figures", {"figures": items}) if items else None


def files_section(page: Page) -> Section | None:
    root = page.run.path
    rows = [{"file": p.relative_to(root).as_posix(), "bytes": p.stat().st_size}
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != "report.html"]
    return Section("files", "Files", "files", {"table": table(rows)}) if rows else None
