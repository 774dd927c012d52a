"""steerscope report RUN_DIR [--out FILE]

Also the helpers every run command uses to write its report at the end: ``add_no_report_arg(parser)`` adds
``--no-report``; ``finish_report(args, run_dir)`` writes ``RUN_DIR/report.html`` unless it was given.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def register(commands, groups) -> None:
    p = commands.add_parser("report", help="write RUN_DIR/report.html: one self-contained page for a run")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a directory written by a steerscope run command")
    p.add_argument("--out", default=None, help="where to write the HTML (default: RUN_DIR/report.html)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..report.html import write_report

    path = write_report(args.run_dir, args.out)
    print(f"report: {path}  (open it in any browser: file://{path.resolve()})")
    return 0


def add_no_report_arg(parser) -> None:
    """``--no-report`` for run commands (they write RUN_DIR/report.html at the end by default)."""
    parser.add_argument("--no-report", action="store_true", help="do not write RUN_DIR/report.html at the end")


def finish_report(args, run_dir) -> None:
    """Write the run's report unless ``--no-report``; a failing report never fails the finished run."""
    if getattr(args, "no_report", False):
        return
    from ..errors import SteerscopeError
    from ..report.html import write_report

    try:
        path = write_report(run_dir)
    except (SteerscopeError, OSError, ValueError) as exc:
        log.warning("the run finished but its report could not be written: %s", exc)
        print(f"warning: no report ({exc}); retry with `steerscope report {run_dir}`")
        return
    print(f"report: {path}")
