"""Every run kind round-trips: produce on a tiny model -> load_run -> the typed fields equal what the producer
returned -> write_report renders them."""

from __future__ import annotations

import math

import pytest
import torch
from report_runs import report_runs

import steerscope as ss
from steerscope.report.data import load_run
from steerscope.report.eval_readers import LinearityRun, SweepRun, TransferRun
from steerscope.report.readers import LoraDiscoveryRun, MelboRun, OrthoRun


def _plain(value):
    """What a run file holds for a value: NaN as None (JSON null / empty CSV cell), tuples as lists."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return report_runs(tmp_path_factory)


def test_melbo(runs):
    res, run = runs["melbo"].result, load_run(runs["melbo"].path)
    assert isinstance(run, MelboRun) and not run.warnings and not run.notes
    assert run.objectives == res.objectives and run.ratios == res.ratios and run.heldout_kl == res.heldout_kl
    assert run.random_objective == res.random_objective and run.random_band == res.random_band
    assert (run.radius, run.stop_reason) == (res.radius, res.stop_reason)
    assert run.radius_sweep == res.radius_sweep and sum(r["chosen"] for r in run.radius_sweep) == 1
    assert [[loss for _, loss in run.losses[i]] for i in sorted(run.losses)] == res.losses
    assert [run.vector_rows[i]["objective"] for i in sorted(run.vector_rows)] == res.objectives
    assert torch.equal(run.vector_set.tensors[0], res.vectors.tensors[0])
    assert {s["vector"] for s in run.samples} == {None, *range(len(res.vectors))}


def test_melbo_ortho(runs):
    res, run = runs["melbo_ortho"].result, load_run(runs["melbo_ortho"].path)
    assert isinstance(run, OrthoRun) and not run.warnings
    assert run.analysis == res.analysis
    assert run.kl_direction == "forward" and run.base_norm == pytest.approx(res.base.norm())
    assert torch.equal(run.base_vector.directions[0], res.base.directions[0])
    assert [[loss for _, loss in run.losses[i]] for i in sorted(run.losses)] == res.losses
    assert [run.vector_rows[i]["kl_to_base"] for i in sorted(run.vector_rows)] == [r["kl"] for r in res.analysis]
    assert run.base_samples and all(s["vector"] in (None, 0) for s in run.base_samples)


def test_sweep(runs):
    res, run = runs["sweep"].result, load_run(runs["sweep"].path)
    assert isinstance(run, SweepRun) and not run.warnings
    assert run.scale_rows == _plain(res.rows)
    assert run.window == res.window and run.best_scale == res.best_scale and run.tolerance == res.tolerance
    assert (run.objective, run.maximize) == (res.objective, res.maximize) == ("completion_logprob", True)
    assert run.config["scales"] == res.config["scales"]
    assert len(run.samples) == len(res.samples)
    assert [s["completion"] for s in run.samples] == [s["response"] for s in res.samples]


def test_transfer(runs):
    res, run = runs["transfer"].result, load_run(runs["transfer"].path)
    assert isinstance(run, TransferRun) and not run.warnings
    assert run.summary == _plain(res.summary) and run.baseline == _plain(res.baseline)
    assert run.scored == [{k: r[k] for k in TransferRun.ROW_COLUMNS} for r in _plain(res.rows)]
    assert [s["completion"] for s in run.samples] == [r["generation"] for r in res.rows]


def test_linearity(runs):
    res, run = runs["linearity"].result, load_run(runs["linearity"].path)
    assert isinstance(run, LinearityRun) and not run.warnings
    assert (run.score, run.raw_score, run.embedding_shift_cosine) == (res.score, res.raw_score,
                                                                      res.embedding_shift_cosine)
    assert run.similarity == _plain(res.similarity.tolist()) and run.matching == res.matching
    assert (run.lora_summaries, run.vector_summaries) == (res.lora_summaries, res.vector_summaries)
    assert run.responses == res.responses


def test_lora_discovery(runs):
    res, run = runs["lora_discovery"].result, load_run(runs["lora_discovery"].path)
    assert isinstance(run, LoraDiscoveryRun) and not run.warnings
    assert [a.index for a in run.adapters] == [r.index for r in res.runs]
    for adapter, produced in zip(run.adapters, res.runs):
        assert adapter.heldout == {k: produced.heldout[k] for k in LoraDiscoveryRun.HELDOUT_KEYS}
    assert len(run.samples) == 2 * 2 * len(res.runs)  # base + adapted per held-out sample


@pytest.mark.parametrize("kind", ["melbo", "melbo_ortho", "sweep", "transfer", "linearity", "lora_discovery"])
def test_write_report_renders(runs, kind, tmp_path):
    path = ss.write_report(runs[kind].path, out=tmp_path / "r.html")
    text = path.read_text()
    assert f"· {kind} ·" in text and '<section id="config"' in text
