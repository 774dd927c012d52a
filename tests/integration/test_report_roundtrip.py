"""Every run kind round-trips: produce on a tiny model -> load_run -> the report holds the result the producer's own
``load`` reads (the report keeps no schema of its own), and its views (table, losses, samples) match what the
producer returned -> write_report renders them."""

from __future__ import annotations

import pytest
import torch
from report_runs import report_runs

import steerscope as ss
from steerscope.report.data import load_run

KINDS = ["melbo", "melbo_ortho", "sweep", "transfer", "linearity", "lora_discovery", "one_shot"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return report_runs(tmp_path_factory)


@pytest.mark.parametrize("kind", KINDS)
def test_the_report_holds_the_typed_result(runs, kind):
    produced, run = runs[kind].result, load_run(runs[kind].path)
    assert type(run.result) is type(produced) is type(ss.load_result(runs[kind].path))
    assert run.kind == kind and not run.warnings and not run.notes


def test_melbo_views(runs):
    res, run = runs["melbo"].result, load_run(runs["melbo"].path)
    assert [[loss for _, loss in run.losses[i]] for i in sorted(run.losses)] == res.losses
    table = run.table()
    assert [r["objective"] for r in table] == res.objectives and [r["heldout_kl"] for r in table] == res.heldout_kl
    assert [r["norm"] for r in table] == pytest.approx(res.vectors.norms().tolist())
    assert torch.equal(run.vector_set.tensors[0], res.vectors.tensors[0])
    assert {s["vector"] for s in run.samples} == {None, *range(len(res.vectors))}


def test_melbo_ortho_views(runs):
    res, run = runs["melbo_ortho"].result, load_run(runs["melbo_ortho"].path)
    assert [r["kl_to_base"] for r in run.table()] == [r["kl"] for r in res.analysis]
    assert [[loss for _, loss in run.losses[i]] for i in sorted(run.losses)] == res.losses
    assert run.reference_samples and all(s["vector"] in (None, 0) for s in run.reference_samples)
    assert run.result.kl_first10_mean == pytest.approx(res.kl_first10_mean)


def test_sweep_and_transfer_samples(runs):
    sweep, run = runs["sweep"].result, load_run(runs["sweep"].path)
    assert [s["completion"] for s in run.samples] == [s["response"] for s in sweep.samples]
    assert [s["vector"] for s in run.samples] == [None if s["scale"] == 0 else 0 for s in sweep.samples]
    transfer, run = runs["transfer"].result, load_run(runs["transfer"].path)
    assert [s["completion"] for s in run.samples] == [r["generation"] for r in transfer.rows]


def test_lora_discovery_views(runs):
    res, run = runs["lora_discovery"].result, load_run(runs["lora_discovery"].path)
    assert run.item == "adapter" and sorted(run.rows) == [r.index for r in res.runs]
    for produced in res.runs:
        row = run.rows[produced.index]
        assert {k: row[f"heldout_{k}"] for k in produced.heldout} == produced.heldout
        assert row["steps"] == len(produced.losses)
    assert len(run.samples) == 2 * 2 * len(res.runs)  # base + adapted per held-out sample


def test_one_shot_views(runs):
    res, run = runs["one_shot"].result, load_run(runs["one_shot"].path)
    assert [loss for _, loss in run.losses[0]] == pytest.approx(res.losses)
    assert float(run.vector_set.norms()[0]) == pytest.approx(res.vector.norm())


@pytest.mark.parametrize("kind", KINDS)
def test_write_report_renders(runs, kind, tmp_path):
    path = ss.write_report(runs[kind].path, out=tmp_path / "r.html")
    text = path.read_text()
    assert f"· {kind} ·" in text and '<section id="config"' in text and "could not be shown" not in text
