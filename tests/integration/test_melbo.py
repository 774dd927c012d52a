"""MELBO on tiny models: replayed objective, constraints, resume, and that training beats random vectors."""

import itertools

import pytest
import torch
from tiny import ARCHS, tiny_model

import steerscope as ss
from steerscope.generate import forward_kwargs, tokenize
from steerscope.methods.melbo import MelboObjective

PROMPTS = ["the cat sat on the mat", "hello there, friend"]


def full_forward_objective(m, prompts, theta, source, target, power, q):
    """The same objective through a full forward with output_hidden_states and steer()."""
    ids, mask = tokenize(m, prompts, chat=False)
    kw = forward_kwargs(ids, mask)
    with torch.no_grad():
        z0 = m.hf(**kw, output_hidden_states=True).hidden_states[target + 1]
        with ss.steer(m, ss.SteeringVector({source: theta}), positions="from:0"):
            z = m.hf(**kw, output_hidden_states=True).hidden_states[target + 1]
    per_token = (z - z0).norm(dim=-1).pow(power) * mask
    return per_token.sum(-1).pow(1 / q).sum()


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("power,q", [(2, None), (1.5, 1)])
def test_replayed_objective_equals_full_forward(arch, power, q):
    m = tiny_model(arch, n_layers=4)
    obj = MelboObjective(m, PROMPTS, source_layer=0, target_layer=2, power=power, q=q, chat=False)
    thetas = torch.randn(3, m.d_model)
    with torch.no_grad():
        got = obj(thetas)
    for i in range(3):
        want = full_forward_objective(m, PROMPTS, thetas[i], 0, 2, power, q if q is not None else power)
        torch.testing.assert_close(got[i], want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("mode", ["sequential", "parallel"])
def test_norms_orthogonality_and_beating_random(mode):
    m = tiny_model("llama")
    res = ss.melbo(m, PROMPTS, source_layer=0, target_layer=2, num_vectors=4, radius=3.0, steps=40, lr=0.05,
                   mode=mode, block_size=2, chat=False, progress=False)
    vs = res.vectors.tensors[0]
    torch.testing.assert_close(vs.norm(dim=-1), torch.full((4,), 3.0), atol=1e-5, rtol=1e-5)
    cos = (vs / vs.norm(dim=-1, keepdim=True)) @ (vs / vs.norm(dim=-1, keepdim=True)).T
    assert (cos - torch.eye(4)).abs().max() <= 1e-5
    obj = MelboObjective(m, PROMPTS, source_layer=0, target_layer=2, chat=False)
    randoms = torch.randn(32, m.d_model)
    with torch.no_grad():
        best_random = obj(3.0 * randoms / randoms.norm(dim=-1, keepdim=True)).max()
    assert res.objectives[0] > best_random  # the first vector (unconstrained by others) beats 32 random ones
    assert all(curve[-1] >= curve[0] for curve in res.losses)


def test_zero_steps_is_the_random_baseline():
    m = tiny_model("llama")
    res = ss.melbo(m, PROMPTS, source_layer=0, target_layer=2, num_vectors=2, radius=3.0, steps=0, chat=False,
                   progress=False)
    assert len(res.vectors) == 2 and all(len(curve) == 1 for curve in res.losses)


@pytest.mark.parametrize("mode", ["sequential", "parallel"])
def test_resume_gives_the_same_vectors(tmp_path, mode):
    m = tiny_model("llama")
    kw = dict(source_layer=0, target_layer=2, radius=2.0, steps=8, lr=0.05, mode=mode, block_size=2, chat=False,  # noqa: C408
              progress=False, heldout_prompts=["hi"], sample_tokens=3, report=False)
    full = ss.melbo(m, PROMPTS, num_vectors=4, out_dir=tmp_path / "full", **kw)
    # an "interrupted" run: same settings, stopped after 2 vectors (simulated by rewriting the checkpoint)
    part = ss.melbo(m, PROMPTS, num_vectors=4, out_dir=tmp_path / "part", **kw)
    ss.VectorSet({0: part.vectors.tensors[0][:2]}, method="melbo").save(tmp_path / "part" / "vectors.safetensors")
    resumed = ss.melbo(m, PROMPTS, num_vectors=4, out_dir=tmp_path / "part", resume=True, **kw)
    torch.testing.assert_close(resumed.vectors.tensors[0], full.vectors.tensors[0], atol=1e-6, rtol=1e-6)
    with pytest.raises(ss.SteerscopeError, match="resume"):
        ss.melbo(m, PROMPTS, num_vectors=4, out_dir=tmp_path / "full", **kw)
    with pytest.raises(ss.SteerscopeError, match="settings differ"):
        ss.melbo(m, PROMPTS, num_vectors=4, out_dir=tmp_path / "full", resume=True, **{**kw, "steps": 9})


def test_run_directory_contents(tmp_path):
    m = tiny_model("llama")
    ss.melbo(m, PROMPTS, source_layer=0, target_layer=2, num_vectors=2, radius=2.0, steps=3, chat=False,
             progress=False, out_dir=tmp_path / "run", heldout_prompts=["hi"], sample_tokens=3, report=False)
    run = tmp_path / "run"
    for name in ["config.json", "vectors.safetensors", "vectors.csv", "losses.csv", "samples.jsonl",
                 "plots/loss_curves.png", "plots/objective_vs_index.png"]:
        assert (run / name).is_file(), name
    from steerscope.io import read_csv, read_json, read_jsonl

    rows = read_csv(run / "vectors.csv")
    assert [float(r["heldout_kl"]) >= 0 for r in rows] == [True, True]
    summary = read_json(run / "summary.json")
    assert summary["stop_reason"] == "num_vectors" and len(summary["objective_vs_random"]) == 2
    lo, hi = summary["random_band"]
    assert lo <= summary["random_objective"] <= hi

    samples = read_jsonl(run / "samples.jsonl")
    assert {s["vector"] for s in samples} == {None, 0, 1} and {s["split"] for s in samples} == {"train", "heldout"}
    assert len(samples) == 3 * (len(PROMPTS) + 1)


def test_auto_radius_picks_a_grid_point(tmp_path):
    m = tiny_model("llama")
    res = ss.melbo(m, PROMPTS, source_layer=0, target_layer=2, num_vectors=1, radius="auto", steps=2, chat=False,
                   progress=False)
    chosen = [r for r in res.radius_sweep if r["chosen"]]
    assert len(chosen) == 1 and chosen[0]["radius"] == res.radius


def test_bad_layers_are_clear_errors():
    m = tiny_model("llama")
    with pytest.raises(ss.SteerscopeError, match="source_layer < target_layer"):
        ss.melbo(m, PROMPTS, source_layer=2, target_layer=1, radius=1.0, chat=False)
    with pytest.raises(ss.SteerscopeError, match="out of range"):
        ss.melbo(m, PROMPTS, source_layer=0, target_layer=7, radius=1.0, chat=False)


@pytest.mark.parametrize("mode", ["sequential", "parallel"])
def test_default_step_rule_never_loses_objective(mode):
    """lr=None (the trust-region rule): every vector's recorded objective is non-decreasing, rows stay orthonormal
    at norm R, and the first vector beats 32 random ones (a tiny random model is nearly linear, so not by much)."""
    m = tiny_model("llama")
    res = ss.melbo(m, PROMPTS, source_layer=0, target_layer=2, num_vectors=4, radius=3.0, steps=30, mode=mode,
                   block_size=4, chat=False, progress=False)
    vs = res.vectors.tensors[0]
    unit = vs / vs.norm(dim=-1, keepdim=True)
    torch.testing.assert_close(vs.norm(dim=-1), torch.full((4,), 3.0), atol=1e-5, rtol=1e-5)
    assert (unit @ unit.T - torch.eye(4)).abs().max() <= 1e-5
    for curve in res.losses:
        assert all(b >= a * (1 - 1e-5) for a, b in itertools.pairwise(curve))
    obj = MelboObjective(m, PROMPTS, source_layer=0, target_layer=2, chat=False)
    randoms = torch.randn(32, m.d_model)
    with torch.no_grad():
        best_random = obj(3.0 * randoms / randoms.norm(dim=-1, keepdim=True)).max()
    assert res.objectives[0] > best_random


def test_min_ratio_stops_when_vectors_look_random():
    """With a threshold no vector can reach, the run stops after min_ratio_patience vectors (blocks in parallel)."""
    m = tiny_model("llama")
    kw = {"source_layer": 0, "target_layer": 2, "radius": 2.0, "steps": 3, "chat": False, "progress": False,
          "heldout_prompts": ["hi"]}
    res = ss.melbo(m, PROMPTS, num_vectors=8, min_ratio=1e6, min_ratio_patience=2, **kw)
    assert len(res.vectors) == 2 and res.stop_reason == "min_ratio"
    assert len(res.heldout_kl) == 2 and all(k >= 0 for k in res.heldout_kl)
    assert res.ratios == pytest.approx([o / res.random_objective for o in res.objectives])
    res = ss.melbo(m, PROMPTS, num_vectors=8, min_ratio=1e6, min_ratio_patience=2, mode="parallel", block_size=3,
                   **kw)
    assert len(res.vectors) == 3 and res.stop_reason == "min_ratio"
    res = ss.melbo(m, PROMPTS, num_vectors=3, min_ratio=1e-6, heldout_kl=False, **kw)
    assert len(res.vectors) == 3 and res.stop_reason == "num_vectors" and res.heldout_kl == []


def test_default_prompts_are_the_shipped_set():
    from steerscope.data import load_prompts

    shipped = load_prompts("melbo_prompts")
    assert len(shipped) >= 8 and len(set(shipped)) == len(shipped)
    m = tiny_model("llama")
    res = ss.melbo(m, source_layer=0, target_layer=2, num_vectors=1, radius=2.0, steps=1, chat=False,
                   progress=False, heldout_kl=False)
    assert len(res.vectors) == 1
