"""The report's sections. Each takes a RunData and returns (anchor, title, html) or None when it has nothing."""

from __future__ import annotations

import json
from collections import defaultdict

from . import figures
from .data import RunData
from .markup import esc, figure, find_keys, fmt, is_number, kv_table, table, text_block

MODEL_KEYS = ["method", "model_name", "model_type", "n_layers", "d_model", "steerscope_version", "created_at"]
# a method's own plot of a curve is preferred over the report's generic rendering of the same CSV
LOSS_PLOTS = ("plots/loss_curves.png", "losses.png")
ORTHO_PLOTS = ("plots/ortho_kl_norm.png",)
# images a dedicated section shows; every other image goes to "Figures"
OWNED_IMAGES = {"sweep.png", "linearity_heatmap.png", *LOSS_PLOTS, *ORTHO_PLOTS}
STAT_COLUMNS = ["norm", "objective", "kl_to_base", "heldout_kl"]  # shown next to each vector's title when present


def config_section(run: RunData):
    cfg = dict(run.config)
    top = {k: cfg.pop(k) for k in MODEL_KEYS if k in cfg}
    parts = [kv_table(top)] if top else []
    vs = run.vector_set
    if vs is not None:
        parts.append("<h3>Vectors file</h3>" + kv_table({
            "vectors": len(vs), "site": vs.site, "layers": vs.layers, "d_model": vs.d_model,
            "method": vs.meta.method, "model_name": vs.meta.model_name}))
    if cfg:
        parts.append("<h3>Method settings</h3>" + kv_table(cfg))
    if isinstance(run.summary, dict) and run.summary:
        parts.append("<h3>Summary (summary.json)</h3>" + kv_table(run.summary))
    if not parts:
        parts.append('<p class="hint">no config.json in this run directory</p>')
    return "config", "Configuration and model", "".join(parts)


def vectors_section(run: RunData):
    rows = run.table()
    if not rows:
        return None
    if run.vector_set is not None:
        for row in rows:
            if row["index"] < len(run.vector_set):
                row.setdefault("layers", ", ".join(str(x) for x in run.vector_set.layers))
    columns = list(dict.fromkeys(k for row in rows for k in row))
    body = ('<p class="hint">Click a column header to sort; click an index to jump to its completions.</p>'
            + table(rows, columns, sortable=True, css="vectors", link_column="index", link_prefix="vector-"))
    return "vectors", f"{run.item.capitalize()}s ({len(rows)})", body


def _own_plot(run: RunData, names: tuple[str, ...]) -> str:
    """The method's own figure for a section, inlined, or "" when it wrote none."""
    for name in names:
        if name in run.images and (uri := figures.file_uri(run.images[name])):
            return figure(uri, name)
    return ""


def losses_section(run: RunData):
    own = _own_plot(run, LOSS_PLOTS)
    if not run.losses and not own:
        return None
    body = own or figure(figures.loss_curves(run.losses, item=run.item), "loss curves (losses.csv)")
    if run.losses:
        final = [{run.item: v, "steps": len(p), "first_loss": p[0][1], "final_loss": p[-1][1]}
                 for v, p in run.losses.items()]
        body += f"<details><summary>final losses</summary>{table(final, sortable=True)}</details>"
    return "losses", "Loss curves", body


def ortho_section(run: RunData):
    own = _own_plot(run, ORTHO_PLOTS)
    if not run.ortho and not own:
        return None
    body = own or figure(figures.ortho_curves(run.ortho), "MELBO-ortho: KL to base and magnitude per vector (ortho.csv)")
    if run.ortho:
        body += f"<details><summary>ortho.csv</summary>{table(run.ortho, sortable=True)}</details>"
    return "ortho", "MELBO-ortho: KL and magnitude", body


def _group_samples(samples: list[dict]):
    """(baselines {(split, prompt): [text]}, steered {vector: {(split, prompt): [(scale, text)]}}, prompt order)."""
    baselines: dict[tuple, list[str]] = defaultdict(list)
    steered: dict[int, dict[tuple, list]] = defaultdict(lambda: defaultdict(list))
    order: dict[tuple, None] = {}
    for s in samples:
        key = (str(s.get("split") or ""), str(s.get("prompt", "")))
        order.setdefault(key)
        scale = s.get("scale")
        if s.get("vector") is None or (is_number(scale) and scale == 0):
            baselines[key].append(s["completion"])
        else:
            steered[int(s["vector"])][key].append((scale if is_number(scale) else None, s["completion"]))
    return baselines, steered, list(order)


def _completion(kind: str, label: str, text: str) -> str:
    return (f'<div class="completion {kind}" data-kind="{kind}"><div class="label">{esc(label)}</div>'
            f"{text_block(text)}</div>")


def _pairs(rows: dict[tuple, list], baselines: dict[tuple, list], order: list[tuple], item: str = "vector") -> str:
    """Baseline and steered completions side by side, one grid row per prompt (one column per scale)."""
    if not rows:
        return f'<p class="hint">no samples for this {item}</p>'
    scales = sorted({s for items in rows.values() for s, _ in items}, key=lambda s: (s is None, s or 0))
    columns = min(1 + len(scales), 4)  # many scales (a sweep) wrap onto more rows
    html = [f'<div class="pairs" style="grid-template-columns: repeat({columns}, minmax(0, 1fr))">']
    for key in [k for k in order if k in rows]:
        split, prompt = key
        split_tag = f'<span class="split">{esc(split)}</span>' if split else ""
        html.append(f'<div class="prompt">{text_block(prompt, limit=300)}{split_tag}</div>')
        base = baselines.get(key)
        html.append(_completion("baseline", "baseline", base[0]) if base else
                    '<div class="completion baseline hint">no baseline sample</div>')
        by_scale = dict(rows[key])
        for s in scales:
            label = f"steered ×{fmt(s)}" if s is not None else ("adapted" if item == "adapter" else "steered")
            html.append(_completion("steered", label, by_scale[s]) if s in by_scale else "<div></div>")
    html.append("</div>")
    return "".join(html)


def samples_section(run: RunData):
    indices = run.vector_indices()
    if not run.samples and not indices:
        return None
    baselines, steered, order = _group_samples(run.samples)
    stats = {row["index"]: row for row in run.table()}
    open_all = len(indices) <= 8  # long runs start folded so the page stays navigable
    parts = []
    for n, i in enumerate(indices):
        row = stats.get(i, {})
        summary = " · ".join(f"{k} {fmt(row[k])}" for k in STAT_COLUMNS if is_number(row.get(k)))
        parts.append(f'<details class="vector" id="vector-{i}" data-vector="{i}"{" open" if open_all or n < 3 else ""}>'
                     f'<summary>{run.item.capitalize()} {i}<span class="stats">{esc(summary)}</span></summary>'
                     f"{_pairs(steered.get(i, {}), baselines, order, run.item)}</details>")
    if not indices and baselines:  # a run with baseline samples only
        parts.append("".join(f'<div class="prompt">{text_block(p, limit=300)}</div>'
                             + _completion("baseline", "baseline", baselines[(s, p)][0]) for s, p in order
                             if baselines.get((s, p))))
    return "samples", "Completions: baseline vs steered", "".join(parts)


def _json_summary(obj, words: tuple[str, ...]) -> str:
    found = find_keys(obj, words)
    parts = []
    if found:
        parts.append(kv_table(found, highlight=set(found)))
    if isinstance(obj, dict):
        scalars = {k: v for k, v in obj.items() if k not in found and not isinstance(v, (dict, list))}
        if scalars:
            parts.append(kv_table(scalars))
    parts.append(f"<details><summary>full JSON</summary>{text_block(json.dumps(obj, indent=2, default=str), 10**9)}"
                 "</details>")
    return "".join(parts)


def sweep_section(run: RunData):
    if run.sweep is None and not run.sweep_rows and "sweep.png" not in run.images:
        return None
    parts = []
    if "sweep.png" in run.images and (uri := figures.file_uri(run.images["sweep.png"])):
        parts.append(figure(uri, "sweep.png: behaviour and coherence against scale (shaded: coherence window)"))
    if run.sweep is not None:
        parts.append("<h3>Coherence window and summary</h3>" + _json_summary(run.sweep, ("coheren", "window", "best")))
    if run.sweep_rows:
        parts.append(f"<details><summary>sweep.csv ({len(run.sweep_rows)} rows)</summary>"
                     f"{table(run.sweep_rows, sortable=True)}</details>")
    return "sweep", "Scale sweep", "".join(parts)


def linearity_section(run: RunData):
    if run.linearity is None and "linearity_heatmap.png" not in run.images:
        return None
    parts = []
    if "linearity_heatmap.png" in run.images and (uri := figures.file_uri(run.images["linearity_heatmap.png"])):
        parts.append(figure(uri, "linearity_heatmap.png"))
    if run.linearity is not None:
        parts.append(_json_summary(run.linearity, ("score", "linearity")))
    return "linearity", "Linearity", "".join(parts)


def figures_section(run: RunData):
    items = []
    for name, path in run.images.items():
        if name in OWNED_IMAGES:
            continue
        uri = figures.file_uri(path)
        items.append(figure(uri, name) if uri else f'<p class="warning">{esc(name)} is not a readable image</p>')
    return ("figures", "Figures", "".join(items)) if items else None


def files_section(run: RunData):
    rows = [{"file": p.relative_to(run.path).as_posix(), "bytes": p.stat().st_size}
            for p in sorted(run.path.rglob("*")) if p.is_file() and p.name != "report.html"]
    if not rows:
        return None
    return "files", "Files", f"<details><summary>{len(rows)} files</summary>{table(rows, sortable=True)}</details>"


SECTIONS = {
    "config": config_section, "vectors": vectors_section, "losses": losses_section, "ortho": ortho_section,
    "samples": samples_section, "sweep": sweep_section, "linearity": linearity_section,
    "figures": figures_section, "files": files_section,
}
DEFAULT_ORDER = ["config", "vectors", "losses", "ortho", "samples", "sweep", "linearity", "figures", "files"]
# the run's own result first, then the rest
ORDER = {
    "melbo_ortho": ["config", "ortho", "vectors", "losses", "samples", "sweep", "linearity", "figures", "files"],
    "sweep": ["config", "sweep", "samples", "vectors", "losses", "linearity", "ortho", "figures", "files"],
    "linearity": ["config", "linearity", "vectors", "samples", "losses", "sweep", "ortho", "figures", "files"],
}


def render_sections(run: RunData) -> list[tuple[str, str, str]]:
    """Sections in the order that suits the run's method, skipping those with nothing to show."""
    out = []
    for name in ORDER.get(run.method, DEFAULT_ORDER):
        result = SECTIONS[name](run)
        if result is not None:
            out.append(result)
    return out
