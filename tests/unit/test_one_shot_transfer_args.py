"""Argument checks of evaluate_transfer and the optimize CLI's example file reader (no model)."""

import json

import pytest
import torch

from steerscope.cli.optimize import read_examples
from steerscope.errors import InvalidArgumentError
from steerscope.evaluate.transfer import TransferResult, _check
from steerscope.vector import SteeringVector

V = SteeringVector({0: torch.ones(4)})


@pytest.mark.parametrize(
    "args",
    [
        ("not a vector", ["p"], ["t"], None, [1.0]),
        (V, [], ["t"], None, [1.0]),
        (V, ["p"], [], None, [1.0]),
        (V, ["p"], [""], None, [1.0]),
        (V, ["p"], ["t"], [" "], [1.0]),
        (V, ["p"], ["t"], None, [float("nan")]),
    ],
)
def test_transfer_rejects_bad_arguments(args):
    with pytest.raises(InvalidArgumentError):
        _check(*args)


def test_transfer_defaults_match_to_targets_and_dedups_scales():
    prompts, targets, match, scales = _check(V, "p", "Sure", None, [1, 1.0, -1])
    assert prompts == ["p"] and targets == ["Sure"] and match == ["Sure"] and scales == [1.0, -1.0]


def test_transfer_result_writes_all_files(tmp_path):
    summary = [
        {
            "scale": s,
            "mean_delta_logprob": s,
            "sem_delta_logprob": 0.1,
            "mean_logprob": -3 + s,
            "hit_rate": 0.5,
            "n_prompts": 2,
        }
        for s in (-1.0, 1.0)
    ]
    rows = [
        {
            "scale": 1.0,
            "prompt": "p",
            "logprob": -2.0,
            "base_logprob": -3.0,
            "delta_logprob": 1.0,
            "generation": "Sure",
            "hit": True,
        }
    ]
    res = TransferResult(summary, rows, {"mean_logprob": -3.0, "hit_rate": 0.0})
    import steerscope as ss

    ss.write_run(res, tmp_path)
    assert {p.name for p in tmp_path.iterdir()} == {
        "config.json",
        "transfer.csv",
        "transfer_rows.csv",
        "generations.jsonl",
        "transfer.json",
        "transfer.png",
    }
    assert res.at(1.0)["hit_rate"] == 0.5
    with pytest.raises(InvalidArgumentError):
        res.at(3.0)


def test_read_examples(tmp_path):
    f = tmp_path / "ex.jsonl"
    f.write_text(
        json.dumps({"prompt": "hi", "promote": ["Sure"]})
        + "\n\n"
        + json.dumps({"prompt": "yo", "suppress": ["No"], "negate": True})
        + "\n"
    )
    exs = read_examples(str(f))
    assert [e.prompt for e in exs] == ["hi", "yo"] and exs[1].negate
    f.write_text('{"prompt": "hi"}\n')
    with pytest.raises(InvalidArgumentError, match="ex.jsonl:1"):
        read_examples(str(f))
    with pytest.raises(InvalidArgumentError, match="does not exist"):
        read_examples(str(tmp_path / "missing.jsonl"))
