"""Quantized models on the CPU (issue 11): bitsandbytes 4-bit (NF4) and 8-bit through ``load_model(quantization=)``.

bitsandbytes ≥ 0.48 ships a CPU backend, so the same code path a GPU user takes with a 4-bit 8B model runs here on
a tiny random llama: steering, generation, MELBO, one-shot optimisation and LoRA discovery as QLoRA.
"""

from __future__ import annotations

import math

import pytest
import torch
from tiny import tiny_config, tiny_tokenizer

import steerscope as ss

pytest.importorskip("bitsandbytes")
PROMPTS = ["the cat sat on the mat", "hi", "why not"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    config = tiny_config("llama")
    # bitsandbytes' CPU 4-bit kernel quantises in blocks of 64 input features: hidden 32 is below one block
    config.hidden_size, config.intermediate_size, config.head_dim = 128, 256, 32
    config._attn_implementation = "eager"
    path = tmp_path_factory.mktemp("tiny-llama")
    AutoModelForCausalLM.from_config(config).save_pretrained(path)
    tiny_tokenizer().save_pretrained(path)
    return path


@pytest.fixture(scope="module", params=["4bit", "8bit"])
def qmodel(request, model_dir):
    m = ss.load_model(str(model_dir), device="cpu", quantization=request.param, dtype="float32")
    kinds = {type(mod).__name__ for mod in m.hf.modules()}
    assert {"Linear4bit", "Linear8bitLt"} & kinds, "the model was not quantized"
    assert m.dtype == torch.float32  # the compute dtype, not the uint8/int8 storage
    return m


def _vec(m, layer=1, norm=4.0):
    d = torch.randn(m.d_model, generator=torch.Generator().manual_seed(1))
    return ss.SteeringVector({layer: d / d.norm() * norm})


def test_steering_and_generation(qmodel):
    from steerscope.generate import forward_kwargs, tokenize

    m, v = qmodel, _vec(qmodel)
    ids, mask = tokenize(m, PROMPTS, chat=False)
    with torch.no_grad():
        base = m.hf(**forward_kwargs(ids, mask), output_hidden_states=True)
        with ss.steer(m, v, scale=0.0):
            assert torch.equal(m.hf(**forward_kwargs(ids, mask)).logits, base.logits)
        with ss.steer(m, v, scale=2.0):
            steered = m.hf(**forward_kwargs(ids, mask), output_hidden_states=True)
    delta = (steered.hidden_states[2] - base.hidden_states[2])[mask.bool()]
    torch.testing.assert_close(delta, (2.0 * v.directions[1]).expand_as(delta), atol=1e-4, rtol=1e-4)
    out = ss.generate(m, PROMPTS, vectors=[v, None, v], scales=[3.0, 0.0, -3.0], positions="generated",
                      max_new_tokens=4, chat=False)
    assert out[1] == ss.generate(m, PROMPTS[1:2], max_new_tokens=4, chat=False)[0]


def test_melbo_and_one_shot(qmodel):
    m = qmodel
    res = ss.melbo(m, PROMPTS[:2], source_layer=0, target_layer=2, num_vectors=2, radius=2.0, steps=6, lr=0.05,
                   mode="parallel", chat=False, progress=False, report=False)
    assert all(math.isfinite(o) and o > 0 for o in res.objectives)
    ex = ss.Example("the cat sat", promote=["on the mat"])
    opt = ss.optimize_vector(m, [ex], layer=1, max_iters=8, lr=0.2, chat=False, progress=False)
    assert opt.history[-1]["loss"] < opt.history[0]["loss"]
    assert opt.vector.directions[1].dtype == torch.float32


def test_lora_discovery_as_qlora(qmodel, tmp_path):
    m = qmodel
    res = ss.discover_lora(m, PROMPTS * 2, heldout_prompts=PROMPTS[:1], max_steps=2, batch_size=2,
                           max_new_tokens=3, lr=0.05, out_dir=tmp_path / "run", chat=False, eval_size=1,
                           num_samples=0, progress=False, stop_kl=None)
    assert (res.runs[0].adapter_dir / "adapter_config.json").is_file()
    assert not any("lora" in n.lower() for n, _ in m.hf.named_modules()), "the base model must be left unwrapped"
