"""LoRA export on tiny models: the exact bias adapter loaded through PEFT equals steering; rank1 fidelity is
measured, reported, matches PEFT, and is exact when the projection input has a constant direction."""

import json
import os
import warnings
from pathlib import Path

import pytest
import torch
from tiny import tiny_config, tiny_tokenizer

import steerscope as ss
from steerscope.errors import InvalidArgumentError
from steerscope.generate import forward_kwargs, tokenize

PROMPTS = ["the cat sat on the mat", "hi", "a much longer prompt with some padding"]
HELDOUT = ["where is the dog", "numbers 1 2 3", "Hello there, friend!"]
CALIBRATION = [f"prompt number {i}: the quick brown fox {'jumps ' * (i % 4)}over the lazy dog" for i in range(12)]
EXACT_ARCHS = ["llama", "qwen2", "qwen3", "gpt2", "gpt_neox", "phi3"]


def fresh(arch: str, seed: int = 0):
    """A tiny model of its own: PEFT rewires the modules it adapts, so tests never touch the shared cached ones."""
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    config = tiny_config(arch)
    config._attn_implementation = "eager"
    return ss.wrap_model(AutoModelForCausalLM.from_config(config, dtype=torch.float32), tiny_tokenizer(), f"tiny-{arch}")


def vec(m, layers, site="resid_post", norm=4.0, seed=1):
    g = torch.Generator().manual_seed(seed)
    dirs = {layer: torch.randn(m.d_model, generator=g) for layer in layers}
    return ss.SteeringVector({k: d / d.norm() * norm for k, d in dirs.items()}, site, model_type=m.model_type)


@torch.no_grad()
def steered_and_peft_logits(m, v, scale, adapter_dir, prompts=PROMPTS):
    from peft import PeftModel

    ids, mask = tokenize(m, prompts, chat=False)
    kw = forward_kwargs(ids, mask)
    with ss.steer(m, v, scale):
        ref = m.hf(**kw).logits
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "lora_bias=True but the base layer has no bias": merging only
        peft_model = PeftModel.from_pretrained(m.hf, str(adapter_dir))
    try:
        out = peft_model(**kw).logits
    finally:
        peft_model.unload()
    real = mask.bool()  # steering skips left padding; the adapter does not: compare real tokens only
    return ref[real], out[real]


@pytest.mark.parametrize("arch", EXACT_ARCHS)
def test_bias_adapter_through_peft_equals_steering(arch, tmp_path):
    m = fresh(arch)
    v = vec(m, [0, 2])  # multi-layer: one module per layer
    res = ss.export_lora(m, v, tmp_path / "ad", method="bias", scale=1.5, evaluate=False, chat=False)
    assert len(res.modules) == 2
    config = json.loads((tmp_path / "ad" / "adapter_config.json").read_text())
    assert config["lora_bias"] is True and config["peft_type"] == "LORA"
    assert config["fan_in_fan_out"] is (arch == "gpt2")  # GPT-2's Conv1D stores (in, out)
    ref, out = steered_and_peft_logits(m, v, 1.5, tmp_path / "ad")
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("site,arch", [("resid_pre", "llama"), ("mlp_out", "qwen2"), ("attn_out", "llama"),
                                       ("mlp_out", "gemma2"), ("attn_out", "gemma3_text")])
def test_bias_adapter_other_sites(site, arch, tmp_path):
    m = fresh(arch)
    v = vec(m, [1, 2], site=site)
    ss.export_lora(m, v, tmp_path / "ad", method="bias", evaluate=False, chat=False)
    ref, out = steered_and_peft_logits(m, v, 1.0, tmp_path / "ad")
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


def test_bias_fidelity_is_exact_and_reported(tmp_path):
    m = fresh("llama")
    res = ss.export_lora(m, vec(m, [1]), tmp_path / "ad", method="bias", heldout_prompts=HELDOUT, chat=False,
                         max_new_tokens=4)
    held = res.fidelity["heldout"]
    assert held["rel_error_worst"] < 1e-6 and held["kl_max"] < 1e-9
    assert held["kl_vector_vs_unsteered_mean"] > 1e-4  # the vector does something, so the check means something
    readme = (tmp_path / "ad" / "README.md").read_text()
    assert "**bias**" in readme and "LoRA bias" in readme and "model.layers.1.mlp.down_proj" in readme


def constant_unit_gpt2():
    """GPT-2 whose MLP hidden unit 5 ignores its input (zero weights, bias 3): c_proj's input has a constant
    coordinate gelu(3) at every token, so a rank-1 read-out b = e5 / gelu(3) reproduces the vector exactly."""
    m = fresh("gpt2")
    with torch.no_grad():
        for block in m.hf.transformer.h:
            block.mlp.c_fc.weight[:, 5] = 0.0
            block.mlp.c_fc.bias[5] = 3.0
    return m


def test_rank1_is_exact_when_the_projection_input_has_a_constant_direction(tmp_path):
    m = constant_unit_gpt2()
    v = vec(m, [1])
    res = ss.export_lora(m, v, tmp_path / "ad", method="rank1", scale=2.0, calibration_prompts=CALIBRATION,
                         heldout_prompts=HELDOUT, chat=False, max_new_tokens=4)
    assert res.modules == {1: "transformer.h.1.mlp.c_proj"}
    held = res.fidelity["heldout"]
    assert held["rel_error_mean"] < 1e-5 and held["rel_error_worst"] < 1e-4
    assert held["kl_max"] < 1e-8 < held["kl_vector_vs_unsteered_mean"]
    ref, out = steered_and_peft_logits(m, v, 2.0, tmp_path / "ad")
    torch.testing.assert_close(out, ref, atol=1e-4, rtol=1e-4)


def test_rank1_fidelity_is_measured_reported_and_matches_peft(tmp_path):
    m = fresh("llama")
    v = vec(m, [1], norm=6.0)
    res = ss.export_lora(m, v, tmp_path / "ad", method="rank1", calibration_prompts=CALIBRATION,
                         heldout_prompts=HELDOUT, chat=False, max_new_tokens=0)
    out_dir = tmp_path / "ad"
    fidelity = json.loads((out_dir / "fidelity.json").read_text())
    entry = fidelity["layers"]["1"]
    assert set(entry["candidates"]) == {"mlp", "attn"} and entry["chosen"] in entry["candidates"]
    held = fidelity["heldout"]
    for key in ("rel_error_mean", "rel_error_worst", "kl_mean", "kl_max", "kl_last_token_mean"):
        assert held[key] is not None and held[key] >= 0
    assert held["rel_error_mean"] <= held["rel_error_worst"]
    readme = (out_dir / "README.md").read_text()
    assert "**rank1**" in readme and f"{held['kl_mean']:.3g}" in readme
    config = json.loads((out_dir / "adapter_config.json").read_text())
    assert config["r"] == 1 and config["lora_bias"] is False and config["target_modules"] == [res.modules[1]]
    # the KL reported equals KL(vector-steered || PEFT-loaded adapter) on the held-out prompts
    ref, out = steered_and_peft_logits(m, v, 1.0, out_dir, prompts=HELDOUT)
    logp, logq = torch.log_softmax(ref.double(), -1), torch.log_softmax(out.double(), -1)
    kl = (logp.exp() * (logp - logq)).sum(-1).clamp_min(0)
    assert abs(float(kl.mean()) - held["kl_mean"]) <= 1e-6 + 1e-3 * held["kl_mean"]
    assert ss.SteeringVector.load(out_dir / "steerscope_vector.safetensors").layers == [1]


def test_refusals(tmp_path):
    m = fresh("gemma2")
    with pytest.raises(InvalidArgumentError, match="post-sublayer norms"):
        ss.export_lora(m, vec(m, [1]), tmp_path / "g", method="bias", evaluate=False)
    m = fresh("llama")
    with pytest.raises(InvalidArgumentError, match="resid_pre\\[0\\]"):
        ss.export_lora(m, vec(m, [0], site="resid_pre"), tmp_path / "a", method="bias", evaluate=False)
    with pytest.raises(InvalidArgumentError, match="unknown method"):
        ss.export_lora(m, vec(m, [1]), tmp_path / "a", method="rank2")
    with pytest.raises(ss.SteerscopeError, match="d_model"):
        ss.export_lora(m, ss.SteeringVector({1: torch.ones(7)}), tmp_path / "a", method="bias")
    (tmp_path / "user").mkdir()
    (tmp_path / "user" / "notes.txt").write_text("keep me")
    with pytest.raises(InvalidArgumentError, match="not an adapter directory"):
        ss.export_lora(m, vec(m, [1]), tmp_path / "user", method="bias", evaluate=False, chat=False)
    assert (tmp_path / "user" / "notes.txt").read_text() == "keep me"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp dirs left behind


def test_export_replaces_an_earlier_adapter(tmp_path):
    m = fresh("llama")
    ss.export_lora(m, vec(m, [1, 2]), tmp_path / "ad", method="bias", evaluate=False, chat=False)
    res = ss.export_lora(m, vec(m, [2]), tmp_path / "ad", method="bias", evaluate=False, chat=False)
    config = json.loads((tmp_path / "ad" / "adapter_config.json").read_text())
    assert config["target_modules"] == [res.modules[2]]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ad"]


def test_a_failed_replacement_keeps_the_earlier_adapter(tmp_path, monkeypatch):
    m = fresh("llama")
    ss.export_lora(m, vec(m, [1, 2]), tmp_path / "ad", method="bias", evaluate=False, chat=False)
    before = (tmp_path / "ad" / "adapter_config.json").read_bytes()
    real_replace = os.replace

    def replace(src, dst):  # the new export fails to land after the earlier one was moved aside
        if Path(dst) == tmp_path / "ad" and ".tmp-" in Path(src).name:
            raise OSError("disk full")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OSError, match="disk full"):
        ss.export_lora(m, vec(m, [2]), tmp_path / "ad", method="bias", evaluate=False, chat=False)
    assert (tmp_path / "ad" / "adapter_config.json").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ad"]


def test_base_model_name_or_path_loads_and_bias_is_peft_only(tmp_path):
    """adapter_config.json names what the model was loaded from, so AutoPeftModelForCausalLM loads base + adapter
    from the adapter directory alone; a bias adapter on a bias-free projection cannot be merged by PEFT (the README
    says bias adapters are PEFT-only)."""
    from peft import AutoPeftModelForCausalLM

    base_dir = tmp_path / "base"
    fresh("llama").hf.save_pretrained(base_dir)
    tiny_tokenizer().save_pretrained(base_dir)
    m = ss.load_model(str(base_dir), device="cpu")
    v = vec(m, [1], norm=3.0)
    ss.export_lora(m, v, tmp_path / "ad", method="bias", scale=2.0, heldout_prompts=HELDOUT, chat=False,
                   max_new_tokens=0, evaluate=False)
    config = json.loads((tmp_path / "ad" / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str(base_dir.resolve())
    assert f"from_pretrained({str(base_dir.resolve())!r})" in (tmp_path / "ad" / "README.md").read_text()
    served = AutoPeftModelForCausalLM.from_pretrained(str(tmp_path / "ad"))
    ids, mask = tokenize(m, HELDOUT, chat=False)
    with torch.no_grad():
        out = served(**forward_kwargs(ids, mask)).logits
        with ss.steer(m, v, 2.0):
            ref = m.hf(**forward_kwargs(ids, mask)).logits
    real = mask.bool()
    torch.testing.assert_close(out[real], ref[real], atol=1e-4, rtol=1e-4)
    with pytest.raises(Exception, match="(?i)bias"):
        served.merge_and_unload()
