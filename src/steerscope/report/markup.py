"""Small HTML building blocks for the report. Every piece of run data passes through ``esc`` (completions are
model output and may contain markup)."""

from __future__ import annotations

import html
import json
import math

LONG_TEXT = 500  # characters; longer texts fold into <details> with a preview
PREVIEW = 160


def esc(value) -> str:
    return html.escape(str(value), quote=True)


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(float(value))


def fmt(value) -> str:
    """Numbers to 4 significant digits (integers as integers); None/NaN as an empty cell."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer() and abs(value) < 1e15):
        return str(int(value))
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)) and all(is_number(v) for v in value) and len(value) <= 8:
        return ", ".join(fmt(v) for v in value)
    return str(value)


def text_block(text: str, limit: int = LONG_TEXT) -> str:
    """Preformatted text; long text folds into a <details> whose summary shows the start."""
    if len(text) <= limit:
        return f'<pre>{esc(text)}</pre>'
    preview = esc(text[:PREVIEW].rstrip()) + "…"
    return (f'<details class="long"><summary><pre>{preview}</pre><span class="hint">show all '
            f'{len(text)} characters</span></summary><pre>{esc(text)}</pre></details>')


def cell(value) -> str:
    if is_number(value):
        return f'<td class="num" data-value="{float(value)!r}">{esc(fmt(value))}</td>'
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return '<td data-value=""></td>'
    return f"<td>{esc(fmt(value))}</td>"


def table(rows: list[dict], columns: list[str] | None = None, *, sortable: bool = False, css: str = "",
          link_column: str | None = None, link_prefix: str = "") -> str:
    """An HTML table of dict rows. ``sortable`` tables sort by clicking a header (report.js)."""
    if not rows:
        return ""
    columns = columns or list(dict.fromkeys(k for row in rows for k in row))
    classes = " ".join(c for c in ("sortable" if sortable else "", css) if c)
    head = "".join(f"<th>{esc(c)}</th>" for c in columns)
    body = []
    for row in rows:
        cells = []
        for c in columns:
            value = row.get(c)
            if c == link_column and value is not None:
                anchor = f"{link_prefix}{fmt(value)}"
                cells.append(f'<td class="num" data-value="{float(value)!r}"><a href="#{esc(anchor)}">'
                             f"{esc(fmt(value))}</a></td>" if is_number(value) else cell(value))
            else:
                cells.append(cell(value))
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (f'<table class="{classes}"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table>')


def kv_table(items: dict, highlight: set[str] = frozenset()) -> str:
    """Key/value table; nested values are shown as (collapsible) JSON."""
    rows = []
    for key, value in items.items():
        css = ' class="highlight"' if key in highlight else ""
        if isinstance(value, (dict, list)) and not (isinstance(value, list) and len(fmt(value)) < 80
                                                      and all(is_number(v) for v in value)):
            shown = text_block(json.dumps(value, indent=2, sort_keys=True, default=str), limit=300)
        else:
            shown = esc(fmt(value))
        rows.append(f"<tr{css}><td>{esc(key)}</td><td>{shown}</td></tr>")
    return f'<table class="kv">{"".join(rows)}</table>' if rows else ""


def figure(uri: str, caption: str) -> str:
    return f'<figure><img src="{uri}" alt="{esc(caption)}"><figcaption>{esc(caption)}</figcaption></figure>'


def section(anchor: str, title: str, body: str) -> str:
    return f'<section id="{esc(anchor)}"><h2>{esc(title)}</h2>{body}</section>'


def find_keys(obj, words: tuple[str, ...], prefix: str = "") -> dict:
    """Flatten the entries of a nested JSON object whose key contains one of ``words`` (e.g. coherence window)."""
    found = {}
    if isinstance(obj, dict):
        for key, value in obj.items():
            path = f"{prefix}{key}"
            if any(w in str(key).lower() for w in words):
                found[path] = value
            elif isinstance(value, dict):
                found.update(find_keys(value, words, path + "."))
    return found
