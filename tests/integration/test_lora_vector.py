"""vector_from_lora on tiny models: zero adapters give zero vectors, a known adapter effect is recovered, and the
model is left exactly as it was."""

import pytest
import torch
from tiny import tiny_model

import steerscope as ss
from steerscope.errors import SteerscopeError
from steerscope.generate import forward_kwargs, tokenize

PROMPTS = ["the cat sat on the mat", "hi", "a much longer prompt with padding"]


def make_adapter(m, path, *, last_only=False, zero_b=True, seed=0):
    from peft import LoraConfig, get_peft_model

    from steerscope.methods._lora_common import default_target_modules, detach_peft, needs_fan_in_fan_out

    targets = default_target_modules(m)[-1:] if last_only else default_target_modules(m)
    torch.manual_seed(seed)
    pm = get_peft_model(m.hf, LoraConfig(r=2, lora_alpha=4, target_modules=targets, lora_dropout=0.0,
                                         fan_in_fan_out=needs_fan_in_fan_out(m, targets)))
    try:
        weights = {}
        if not zero_b:
            g = torch.Generator().manual_seed(seed + 1)
            with torch.no_grad():
                for name, p in pm.named_parameters():
                    if "lora_" in name:
                        p.copy_(torch.randn(p.shape, generator=g) * 2.0)
                        weights[name] = p.detach().clone()
        pm.save_pretrained(str(path))
    finally:
        detach_peft(pm)
    return weights


def logits(m):
    ids, mask = tokenize(m, PROMPTS, chat=False)
    with torch.no_grad():
        return m.hf(**forward_kwargs(ids, mask)).logits


def module_types(m):
    return [type(x).__name__ for x in m.hf.modules()]


@pytest.mark.parametrize("arch", ["llama", "gpt2", "qwen3"])
def test_zero_b_adapter_gives_zero_vectors_and_restores_model(arch, tmp_path):
    m = tiny_model(arch)
    before, types = logits(m), module_types(m)
    make_adapter(m, tmp_path / "ad")
    v = ss.vector_from_lora(m, tmp_path / "ad", PROMPTS, max_new_tokens=4, chat=False)
    assert v.layers == list(range(m.n_layers)) and v.site == "resid_post" and v.method == "lora"
    for layer in v.layers:
        assert torch.count_nonzero(v.directions[layer]) == 0
    assert module_types(m) == types
    assert torch.equal(logits(m), before)
    assert not any(p.requires_grad for p in m.hf.parameters())


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_known_adapter_effect_is_recovered(arch, tmp_path):
    """A LoRA on the last block's MLP output projection adds scaling·B·A·x to resid_post of that block only:
    the vector must be zero before it and equal the mean of that term over all real tokens at it."""
    m = tiny_model(arch)
    weights = make_adapter(m, tmp_path / "ad", last_only=True, zero_b=False)
    a = next(w for k, w in weights.items() if "lora_A" in k)  # (r, in)
    b = next(w for k, w in weights.items() if "lora_B" in k)  # (out, r)
    scaling = 4 / 2
    # input of the last MLP output projection in the base model
    proj = m.block(m.n_layers - 1).get_submodule(m.arch.mlp_out_proj)
    seen = {}
    handle = proj.register_forward_pre_hook(lambda mod, args: seen.__setitem__("x", args[0].detach()))
    ids, mask = tokenize(m, PROMPTS, chat=False)
    try:
        with torch.no_grad():
            m.hf(**forward_kwargs(ids, mask))
    finally:
        handle.remove()
    x = seen["x"][mask.bool()]  # (n_tokens, in)
    expected = (x @ a.T @ b.T * scaling).mean(0)

    v = ss.vector_from_lora(m, tmp_path / "ad", PROMPTS, max_new_tokens=0, chat=False)
    for layer in range(m.n_layers - 1):
        assert torch.count_nonzero(v.directions[layer]) == 0
    torch.testing.assert_close(v.directions[m.n_layers - 1], expected, atol=1e-5, rtol=1e-4)
    assert expected.norm() > 0.1

    inc = ss.vector_from_lora(m, tmp_path / "ad", PROMPTS, max_new_tokens=0, chat=False, per_layer="increment")
    torch.testing.assert_close(torch.stack([inc.directions[i] for i in inc.layers]).cumsum(0),
                               torch.stack([v.directions[i] for i in v.layers]), atol=1e-6, rtol=1e-5)


def test_foreign_adapter_fails_cleanly(tmp_path):
    gpt2, llama = tiny_model("gpt2"), tiny_model("llama")
    make_adapter(gpt2, tmp_path / "ad", zero_b=False)
    before, types = logits(llama), module_types(llama)
    with pytest.raises(SteerscopeError):
        ss.vector_from_lora(llama, tmp_path / "ad", PROMPTS, max_new_tokens=0, chat=False)
    assert module_types(llama) == types
    assert torch.equal(logits(llama), before)
    with pytest.raises(SteerscopeError, match="adapter_config.json"):
        ss.vector_from_lora(llama, tmp_path / "missing", PROMPTS, chat=False)


def test_vector_saves_and_steers(tmp_path):
    m = tiny_model("llama")
    make_adapter(m, tmp_path / "ad", zero_b=False)
    v = ss.vector_from_lora(m, tmp_path / "ad", PROMPTS, max_new_tokens=3, chat=False)
    v.save(tmp_path / "v.safetensors")
    w = ss.SteeringVector.load(tmp_path / "v.safetensors")
    assert w.method == "lora" and w.meta.method_config["per_layer"] == "total"
    out = ss.generate(m, PROMPTS[:1], vectors=w, scales=1.0, max_new_tokens=3, chat=False)
    assert len(out) == 1
