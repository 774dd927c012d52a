"""Results save to a directory and load back equal (issue 14): config.json names the method and the format version;
a directory of another method's result is refused with a clear error."""

import pytest
import torch
from tiny import tiny_model

import steerscope as ss
from steerscope.errors import RunFileError
from steerscope.io import json_safe, read_json

PROMPTS = ["the cat sat", "hi there"]


def _vec(m):
    return ss.SteeringVector({1: torch.randn(m.d_model, generator=torch.Generator().manual_seed(0)) * 3})


def test_sweep_and_transfer_round_trip(tmp_path):
    m = tiny_model("llama")
    v = _vec(m)
    sw = ss.sweep(m, v, PROMPTS, scales=[-1.0, 0.0, 1.0], completions=["on the mat", "friend"], max_new_tokens=3,
                  chat=False, progress=False)
    sw.save(tmp_path / "sweep")
    back = ss.SweepResult.load(tmp_path / "sweep")
    assert (back.rows, back.window, back.best_scale) == (json_safe(sw.rows), sw.window, sw.best_scale)  # NaN→null
    config = read_json(tmp_path / "sweep" / "config.json")
    assert config["method"] == "sweep" and config["result_version"] == 1

    tr = ss.evaluate_transfer(m, v, PROMPTS, targets=["on the mat"], scales=[0.0, 1.0], max_new_tokens=3,
                              chat=False, progress=False)
    tr.save(tmp_path / "transfer")
    again = ss.TransferResult.load(tmp_path / "transfer")
    assert (again.summary, again.baseline) == (json_safe(tr.summary), json_safe(tr.baseline))
    assert ss.write_report(tmp_path / "transfer").is_file() and ss.write_report(tmp_path / "sweep").is_file()

    with pytest.raises(RunFileError, match="'sweep' result, not 'transfer'"):
        ss.TransferResult.load(tmp_path / "sweep")
    (tmp_path / "sweep" / "sweep.json").write_text('{"rows": 3, "window": [0, 1]}')
    with pytest.raises(RunFileError, match="rows"):
        ss.SweepResult.load(tmp_path / "sweep")
