"""Plots and the self-contained HTML report."""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)


def write_report_if_available(run_dir: Path) -> Path | None:
    """Write RUN_DIR/report.html at the end of a run; a report failure never loses the run's results."""
    try:
        from .html import write_report
    except ImportError:
        return None
    try:
        path = write_report(run_dir)
        log.info("report: %s", path)
        return path
    except Exception as exc:  # noqa: BLE001 - the run's files are already on disk; say why the report is missing
        log.warning("could not write the report for %s: %s (run `steerscope report %s` to retry)", run_dir, exc, run_dir)
        return None
