"""``write_report(run_dir)``: one self-contained ``report.html`` per run directory, rendered by Jinja2.

Self-contained means: images are inlined as base64 data URIs, the CSS and the small sorting script are inlined,
and a Content-Security-Policy forbids every network fetch, so the file opens anywhere (mail it, archive it).
The templates (``templates/``) autoescape every value: completions are model output and may contain markup.
"""

from __future__ import annotations

import functools
import logging
import os
from datetime import datetime, timezone
from pathlib import Path

from ..io import atomic_write
from .data import load_run
from .format import fmt, is_number
from .sections import render_sections

log = logging.getLogger(__name__)

REPORT_NAME = "report.html"


@functools.cache
def environment():
    """The report's Jinja2 environment: package templates, autoescape on, undefined names are errors."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader("steerscope.report", "templates"), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["fmt"] = fmt
    env.tests["finite_number"] = is_number
    return env


def render_report(run_dir: str | os.PathLike) -> str:
    """The report's HTML text for a run directory (``write_report`` writes it to ``RUN_DIR/report.html``)."""
    from .. import __version__

    run = load_run(run_dir)
    model = run.config.get("model_name") or (run.vector_set.meta.model_name if run.vector_set else None)
    created = run.config.get("created_at")
    meta = [f"method {run.method}", f"model {model}" if model else None, f"run created {created}" if created else None,
            f"report written {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}", f"steerscope {__version__}"]
    return environment().get_template("report.html.j2").render(
        title=f"steerscope · {run.method} · {run.path.resolve().name}", meta=[m for m in meta if m],
        version=__version__, sections=render_sections(run), notes=run.notes, warnings=run.warnings)


def write_report(run_dir: str | os.PathLike, out: str | os.PathLike | None = None) -> Path:
    """Write ``RUN_DIR/report.html`` (or ``out``): configuration, the run kind's own results (MELBO objectives,
    MELBO-ortho curves, sweep window, transfer, linearity), vector table, loss curves and baseline vs steered
    completions, as far as the run directory has them.

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
