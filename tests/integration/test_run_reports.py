"""Every run writes report.html at the end unless report=False: the run layer does it for all (the CLI's
--no-report is the config field, checked with every other flag in tests/unit/test_cli_generated.py)."""

import pytest
import torch
from tiny import tiny_model

import steerscope as ss


@pytest.mark.parametrize("report", [True, False])
def test_every_run_respects_report(tmp_path, report):
    m = tiny_model("llama")
    v = ss.SteeringVector({1: torch.randn(m.d_model, generator=torch.Generator().manual_seed(0)) * 2})
    ss.evaluate_transfer(m, v, ["the cat", "hi"], targets=["sat"], scales=[0.0, 1.0], max_new_tokens=2, chat=False,
                         progress=False, out_dir=tmp_path / "transfer", report=report)
    ss.melbo(m, ["the cat sat"], source_layer=0, target_layer=2, num_vectors=1, radius=2.0, steps=2, chat=False,
             heldout_prompts=["hi"], sample_tokens=2, progress=False, out_dir=tmp_path / "melbo", report=report)
    for kind in ("transfer", "melbo"):
        assert (tmp_path / kind / "report.html").is_file() == report, kind

