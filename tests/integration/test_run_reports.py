"""Run commands write report.html at the end unless --no-report."""

import pytest

from steerscope.cli import common


class _Args:
    def __init__(self, no_report):
        self.report = not no_report


@pytest.mark.parametrize("no_report", [False, True])
def test_finish_report_respects_flag(tmp_path, no_report):
    from fake_run import make_run

    run = make_run(tmp_path / "run", n_vectors=2)
    (run / "report.html").unlink(missing_ok=True)
    common.finish_report(_Args(no_report), run)
    assert (tmp_path / "run" / "report.html").is_file() != no_report
