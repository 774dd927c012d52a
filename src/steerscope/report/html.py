"""``write_report(run_dir)``: one self-contained ``report.html`` per run directory.

Self-contained means: images are inlined as base64 data URIs, the CSS and the small sorting script are inlined,
and a Content-Security-Policy forbids every network fetch, so the file opens anywhere (mail it, archive it).
"""

from __future__ import annotations

import logging
import os
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path

from ..io import atomic_write
from .data import load_run
from .markup import esc, section
from .sections import render_sections

log = logging.getLogger(__name__)

REPORT_NAME = "report.html"


def _asset(name: str) -> str:
    return resources.files("steerscope.report").joinpath(name).read_text(encoding="utf-8")


def render_report(run_dir: str | os.PathLike) -> str:
    """The report's HTML text for a run directory (``write_report`` writes it to ``RUN_DIR/report.html``)."""
    from .. import __version__

    run = load_run(run_dir)
    sections = render_sections(run)
    model = run.config.get("model_name") or (run.vector_set.meta.model_name if run.vector_set else None)
    title = f"steerscope · {run.method} · {run.path.resolve().name}"
    created = run.config.get("created_at")
    meta = " · ".join(esc(x) for x in (
        f"method {run.method}", f"model {model}" if model else None, f"run created {created}" if created else None,
        f"report written {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
        f"steerscope {__version__}") if x)
    nav = "".join(f'<a href="#{esc(anchor)}">{esc(name)}</a>' for anchor, name, _ in sections)
    warnings = "".join(f'<p class="warning">{esc(w)}</p>' for w in run.warnings)
    body = (f"<header><h1>{esc(title)}</h1><div class=\"meta\">{meta}</div></header>"
            f'<nav>{nav}<span class="buttons"><button id="expand-all" type="button">expand all</button> '
            f'<button id="collapse-all" type="button">collapse all</button></span></nav>'
            f"<main>{warnings}{''.join(section(a, n, h) for a, n, h in sections)}</main>")
    page = _asset("report.html")
    # replace the body last: run data could contain the other markers
    for marker, value in (("__VERSION__", esc(__version__)), ("__TITLE__", esc(title)), ("__CSS__", _asset("report.css")),
                          ("__JS__", _asset("report.js"))):
        page = page.replace(marker, value, 1)
    return page.replace("__BODY__", body, 1)


def write_report(run_dir: str | os.PathLike, out: str | os.PathLike | None = None) -> Path:
    """Write ``RUN_DIR/report.html`` (or ``out``): configuration, vector table, loss curves, baseline vs steered
    completions per vector, MELBO-ortho curves, sweeps and linearity, as far as the run directory has them.

    Args:
        run_dir: a directory written by a steerscope run command; every file in it is optional.
        out: where to write the HTML; default ``RUN_DIR/report.html``.

    Returns:
        The path of the written report.

    Example:
        >>> path = ss.write_report("runs/melbo-1")
        >>> path.name
        'report.html'
    """
    text = render_report(run_dir)
    path = Path(out) if out is not None else Path(run_dir) / REPORT_NAME
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    log.info("report written to %s (%.0f kB)", path, len(text) / 1024)
    return path
