"""Run commands write report.html at the end unless --no-report."""

import shutil

import pytest
from report_runs import report_runs

from steerscope.cli import common


class _Args:
    def __init__(self, no_report):
        self.report = not no_report


@pytest.mark.parametrize("no_report", [False, True])
def test_finish_report_respects_flag(tmp_path_factory, tmp_path, no_report):
    run = shutil.copytree(report_runs(tmp_path_factory)["melbo"].path, tmp_path / "run")
    (run / "report.html").unlink(missing_ok=True)
    common.finish_report(_Args(no_report), run)
    assert (run / "report.html").is_file() != no_report
