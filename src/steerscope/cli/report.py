"""steerscope report RUN_DIR [--out FILE]  (run commands write the report themselves at the end, see
``steerscope.report.write_report_if_available``; this command rewrites it, e.g. after a partial run)"""

from __future__ import annotations

from .common import input_dir, output_file


def register(commands, groups) -> None:
    p = commands.add_parser("report", help="write RUN_DIR/report.html: one self-contained page for a run")
    p.add_argument("run_dir", metavar="RUN_DIR", type=input_dir, help="a directory written by a steerscope run command")
    p.add_argument("--out", type=output_file, help="where to write the HTML (default: RUN_DIR/report.html)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..report.html import write_report

    path = write_report(args.run_dir, args.out)
    print(f"report: {path}  (open it in any browser: file://{path.resolve()})")
    return 0
