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


def test_melbo_round_trip_from_a_run_and_from_save(tmp_path):
    m = tiny_model("llama")
    res = ss.melbo(m, PROMPTS, source_layer=0, target_layer=2, num_vectors=2, radius=2.0, steps=3, lr=0.05,
                   chat=False, progress=False, report=False, out_dir=tmp_path / "run", sample_tokens=2)
    res.out_dir = None
    res.save(tmp_path / "saved")
    for where in ("run", "saved"):
        back = ss.MelboResult.load(tmp_path / where)
        assert torch.equal(back.vectors.tensors[0], res.vectors.tensors[0])
        assert back.objectives == pytest.approx(res.objectives)
        assert [pytest.approx(c) for c in res.losses] == back.losses
        assert (back.radius, back.stop_reason) == (res.radius, res.stop_reason)
    assert read_json(tmp_path / "saved" / "config.json")["method"] == "melbo"
    with pytest.raises(RunFileError, match="'melbo' result, not 'sweep'"):
        ss.SweepResult.load(tmp_path / "saved")


def test_ortho_round_trip(tmp_path):
    m = tiny_model("llama")
    base = ss.SteeringVector({0: torch.randn(m.d_model, generator=torch.Generator().manual_seed(1)) * 2})
    res = ss.melbo_ortho(m, base, PROMPTS, source_layer=0, target_layer=2, num_vectors=2, steps=3, lr=0.05,
                         collapse_ratio=0.0, chat=False, progress=False, report=False, sample_vectors=1,
                         sample_tokens=2, out_dir=tmp_path / "run")
    res.save(tmp_path / "saved")
    for where in ("run", "saved"):
        back = ss.OrthoResult.load(tmp_path / where)
        assert torch.equal(back.vectors.tensors[0], res.vectors.tensors[0])
        assert torch.equal(back.base.directions[0], res.base.directions[0])
        assert [r["kl"] for r in back.analysis] == pytest.approx([r["kl"] for r in res.analysis])


def test_lora_discovery_load(tmp_path):
    m = tiny_model("llama")
    res = ss.discover_lora(m, PROMPTS * 3, heldout_prompts=PROMPTS, max_steps=1, batch_size=2, max_new_tokens=3,
                           out_dir=tmp_path / "run", chat=False, eval_size=1, num_samples=0, progress=False,
                           stop_kl=None)
    back = ss.LoraDiscoveryResult.load(tmp_path / "run")
    assert [r.index for r in back.runs] == [r.index for r in res.runs]
    assert back.runs[0].heldout == pytest.approx(res.runs[0].heldout)
    assert read_json(tmp_path / "run" / "config.json")["method"] == "lora_discovery"
    assert read_json(tmp_path / "run" / "summary.json")["runs"][0]["adapter_dir"] == "run_000/adapter"


def test_linearity_round_trip(tmp_path):
    import numpy as np

    m = tiny_model("llama")

    def embed(texts):
        return np.array([[len(t) + 1.0, t.count("a") + 1.0, 1.0] for t in texts])

    adapter = tmp_path / "adapter"
    import copy

    from peft import LoraConfig, get_peft_model

    get_peft_model(copy.deepcopy(m.hf), LoraConfig(r=2, target_modules=["o_proj"])).save_pretrained(adapter)
    res = ss.linearity_score(m, adapter, _vec(m), PROMPTS * 2, batches=2, embedder=embed, max_new_tokens=3,
                             chat=False, progress=False, out_dir=tmp_path / "lin")
    back = ss.LinearityResult.load(tmp_path / "lin")
    assert back.score == pytest.approx(res.score, nan_ok=True) and back.matching == [tuple(p) for p in res.matching]
    assert "0x" not in read_json(tmp_path / "lin" / "config.json")["embedder"]  # no memory addresses saved


@pytest.fixture(scope="module")
def produced(tmp_path_factory):
    from report_runs import report_runs

    return report_runs(tmp_path_factory)


RESULT_KINDS = ["melbo", "melbo_ortho", "sweep", "transfer", "lora_discovery", "linearity", "one_shot"]


@pytest.mark.parametrize("kind", RESULT_KINDS)
def test_every_result_type_round_trips_and_renders(produced, kind, tmp_path):
    """Each producer's directory loads back as its own typed result (ss.load_result dispatches on config.json's
    method); the loaded result writes a run directory again (data, figures) that loads equal and renders a report."""
    made = produced[kind]
    back = ss.load_result(made.path)
    assert type(back) is type(made.result)
    copy = ss.write_run(back, tmp_path / kind)
    again = ss.load_result(copy)
    assert type(again) is type(made.result)
    assert sorted(p.name for p in copy.glob("**/*.png")), f"{kind}: no figure written"
    html = ss.write_report(copy).read_text()
    assert "<html" in html.lower()
    for attr in ("vectors", "vector"):
        if hasattr(made.result, attr):
            a, b = getattr(made.result, attr), getattr(again, attr)
            for layer, t in a.tensors.items() if hasattr(a, "tensors") else a.directions.items():
                other = b.tensors[layer] if hasattr(b, "tensors") else b.directions[layer]
                assert torch.equal(t, other)


def test_load_result_refuses_what_it_cannot_read(tmp_path):
    with pytest.raises(RunFileError, match="no config.json"):
        ss.load_result(tmp_path)
    (tmp_path / "config.json").write_text('{"method": "nope"}')
    with pytest.raises(RunFileError, match="unknown method 'nope'"):
        ss.load_result(tmp_path)


def test_optimize_result_saves_to_a_directory(tmp_path):
    m = tiny_model("llama")
    res = ss.optimize_vector(m, ss.Example("the cat sat", promote=["on"]), layer=1, max_iters=3, chat=False,
                             progress=False)
    res.save(tmp_path / "os")
    back = ss.OptimizeResult.load(tmp_path / "os")
    assert torch.equal(back.vector.directions[1], res.vector.directions[1])
    assert back.losses == pytest.approx(res.losses) and back.stop_reason == res.stop_reason
    assert torch.equal(ss.load_vector(tmp_path / "os").directions[1], res.vector.directions[1])  # a dir is its vector
    with pytest.raises(ss.SteerscopeError, match="takes a directory"):
        res.save(tmp_path / "v.safetensors")


def test_pure_functions_and_runs_without_out_dir_write_nothing(tmp_path, monkeypatch):
    """Methods and evaluations are pure: without out_dir nothing is written (every steerscope writer goes through
    atomic_write, which is made to fail here), and the run layer writes only when given a directory."""
    import steerscope.io as sio
    import steerscope.vector as svec
    from steerscope.methods.melbo import melbo as pure_melbo

    def refuse(path, write):
        raise AssertionError(f"wrote {path}")

    monkeypatch.setattr(svec, "atomic_write", refuse)
    monkeypatch.setattr(sio, "atomic_write", refuse)
    monkeypatch.chdir(tmp_path)
    m = tiny_model("llama")
    v = _vec(m)
    kw = {"chat": False, "progress": False}
    pure_melbo(m, PROMPTS, source_layer=0, target_layer=2, num_vectors=2, radius=2.0, steps=2, **kw)
    res = ss.melbo(m, PROMPTS, source_layer=0, target_layer=2, num_vectors=2, radius=2.0, steps=2,
                   heldout_prompts=PROMPTS, **kw)
    ss.melbo_ortho(m, res.vectors[0], PROMPTS, target_layer=2, num_vectors=1, steps=2, **kw)
    ss.optimize_vector(m, ss.Example("the cat", promote=["sat"]), layer=1, max_iters=2, **kw)
    ss.sweep(m, v, PROMPTS, scales=[0.0, 1.0], max_new_tokens=2, **kw)
    ss.evaluate_transfer(m, v, PROMPTS, targets=["sat"], scales=[0.0, 1.0], max_new_tokens=2, **kw)
    with pytest.raises(ss.SteerscopeError, match="out_dir"):
        ss.discover_lora(m, PROMPTS, heldout_prompts=PROMPTS, max_steps=1, **kw)
    assert list(tmp_path.iterdir()) == []
