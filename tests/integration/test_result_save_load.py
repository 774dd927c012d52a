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
