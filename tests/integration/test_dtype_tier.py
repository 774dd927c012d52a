"""The dtype tier (issue 11): the public API on a tiny random model in fp32, bf16 and fp16 on the CPU (and CUDA).

Every dtype bug the H200 run found (θ in the wrong dtype, fp32 × bf16 matmuls, losses in half precision) shows up
here without a GPU. Each check asks for what the rules promise: finite results, vectors and files in fp32, the
model left as it was.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from report_runs import char_embedder
from tiny import tiny_config, tiny_tokenizer

import steerscope as ss

PROMPTS = ["the cat sat on the mat", "hi", "a much longer prompt with padding", "why not"]
_no_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU here")
# (device, dtype): the CPU pairs run everywhere (CI); the CUDA pair runs where a GPU is (make test on a GPU box)
TARGETS = [
    pytest.param(("cpu", torch.float32), id="cpu-fp32"),
    pytest.param(("cpu", torch.bfloat16), id="cpu-bf16"),
    pytest.param(("cpu", torch.float16), id="cpu-fp16"),
    pytest.param(("cuda", torch.bfloat16), id="cuda-bf16", marks=[pytest.mark.cuda, _no_cuda]),
    pytest.param(("cuda", torch.float16), id="cuda-fp16", marks=[pytest.mark.cuda, _no_cuda]),
]
pytestmark = pytest.mark.parametrize("dtype", TARGETS)


def fresh(target, arch="llama", seed=0):
    """A tiny model of its own on ``target = (device, dtype)`` (PEFT and LoRA code rewire modules; never share
    the cached ones)."""
    from transformers import AutoModelForCausalLM

    device, dtype = target
    torch.manual_seed(seed)
    config = tiny_config(arch)
    config._attn_implementation = "eager"
    hf = AutoModelForCausalLM.from_config(config, dtype=dtype).to(device)
    return ss.wrap_model(hf, tiny_tokenizer(), f"tiny-{arch}-{dtype}")


def vec(m, layer=1, norm=4.0, seed=1):
    g = torch.Generator().manual_seed(seed)
    d = torch.randn(m.d_model, generator=g)
    return ss.SteeringVector({layer: d / d.norm() * norm}, model_type=m.model_type)


def fp32_finite(v: ss.SteeringVector) -> bool:
    return all(t.dtype == torch.float32 and bool(torch.isfinite(t).all()) for t in v.directions.values())


def test_steer_identities_and_generate(dtype):
    from steerscope.generate import forward_kwargs, tokenize

    m = fresh(dtype)
    ids, mask = tokenize(m, PROMPTS, chat=False)
    v = vec(m)
    with torch.no_grad():
        base = m.hf(**forward_kwargs(ids, mask), output_hidden_states=True)
        with ss.steer(m, v, scale=0.0):
            assert torch.equal(m.hf(**forward_kwargs(ids, mask)).logits, base.logits)
        with ss.steer(m, v, scale=2.0):
            steered = m.hf(**forward_kwargs(ids, mask), output_hidden_states=True)
    delta = (steered.hidden_states[2] - base.hidden_states[2])[mask.bool()].float()
    want = (2.0 * v.directions[1]).to(delta.device).expand_as(delta)
    torch.testing.assert_close(delta, want, atol=0.1, rtol=0.05)
    out = ss.generate(m, PROMPTS[:2], vectors=[v, None], scales=[3.0, 0.0], positions="generated",
                      max_new_tokens=4, chat=False)
    assert len(out) == 2


def test_melbo_both_modes_and_target_positions(dtype, tmp_path):
    m = fresh(dtype)
    for mode in ("parallel", "sequential"):
        res = ss.melbo(m, PROMPTS[:2], source_layer=0, target_layer=2, num_vectors=2, radius=2.0, steps=4, lr=0.05,
                       mode=mode, target_positions=2, chat=False, progress=False, report=False,
                       out_dir=tmp_path / mode, sample_tokens=2)
        assert len(res.vectors) == 2
        for i in range(2):
            assert fp32_finite(res.vectors[i])
        assert all(math.isfinite(o) for o in res.objectives)
    saved = ss.VectorSet.load(tmp_path / "parallel" / "vectors.safetensors")
    assert saved.tensors[0].dtype == torch.float32
    assert ss.write_report(tmp_path / "parallel").is_file()


def test_melbo_ortho(dtype):
    m = fresh(dtype)
    base = vec(m, layer=0, norm=2.0)
    res = ss.melbo_ortho(m, base, PROMPTS[:2], source_layer=0, target_layer=2, num_vectors=2, steps=3, lr=0.05,
                         collapse_ratio=0.0, chat=False, progress=False, report=False, sample_vectors=0)
    assert len(res.vectors) == 2 and fp32_finite(res.vectors[0])


def test_optimize_vector_and_transfer(dtype):
    m = fresh(dtype)
    ex = ss.Example("the cat sat", promote=["on the mat"], suppress=["xyz"])
    res = ss.optimize_vector(m, [ex], layer=1, max_iters=4, lr=0.1, chat=False, progress=False)
    assert fp32_finite(res.vector)
    assert all(math.isfinite(h["loss"]) for h in res.history)
    tr = ss.evaluate_transfer(m, res.vector, PROMPTS[:2], targets=["on the mat"], scales=[0.0, 1.0],
                              max_new_tokens=3, chat=False, progress=False)
    assert tr is not None


def test_contrastive_sweep_kl(dtype):
    m = fresh(dtype)
    v = ss.contrastive_vector(m, [("I love it", "I hate it"), ("good day", "bad day")], layers=[1], chat=False)
    assert fp32_finite(v)
    sw = ss.sweep(m, vec(m), PROMPTS[:2], scales=[-1.0, 0.0, 1.0], max_new_tokens=3, chat=False, progress=False,
                  completions=["on the mat", "there"])
    assert sw is not None
    kl = ss.kl_divergence(m, [vec(m), None], PROMPTS, chat=False)
    assert kl.device.type == "cpu" and kl.dtype == torch.float32 and bool(torch.isfinite(kl).all()) and float(kl[1]) < 1e-3


def test_lora_discovery_vector_and_linearity(dtype, tmp_path):
    m = fresh(dtype)
    res = ss.discover_lora(m, PROMPTS * 2, heldout_prompts=PROMPTS[:2], max_steps=2, batch_size=2,
                           max_new_tokens=3, lr=0.05, out_dir=tmp_path / "run", chat=False, eval_size=1,
                           num_samples=0, progress=False, stop_kl=None)
    adapter = res.runs[0].adapter_dir
    v = ss.vector_from_lora(m, adapter, PROMPTS[:2], max_new_tokens=3, chat=False)
    assert fp32_finite(v)
    lin = ss.linearity_score(m, adapter, v, PROMPTS * 2, batches=2, embedder=char_embedder, max_new_tokens=3,
                             chat=False, progress=False)
    assert 0.0 <= lin.score <= 1.0 or math.isnan(lin.score)


@pytest.mark.parametrize("method", ["bias", "rank1"])
def test_export_lora_with_fidelity(dtype, method, tmp_path):
    m = fresh(dtype)
    res = ss.export_lora(m, vec(m), tmp_path / "ad", method=method, calibration_prompts=PROMPTS * 3,
                         heldout_prompts=PROMPTS[:2], chat=False, max_new_tokens=2)
    held = res.fidelity["heldout"]
    assert all(math.isfinite(float(x)) for x in (held["kl_max"], held["rel_error_worst"]))
    from safetensors.torch import load_file

    tensors = load_file(str(tmp_path / "ad" / "adapter_model.safetensors"))
    assert all(t.dtype == torch.float32 for t in tensors.values())


def test_gguf_round_trip(dtype, tmp_path):
    m = fresh(dtype)
    v = vec(m)
    ss.export_gguf(v, tmp_path / "v.gguf")
    back = ss.import_gguf(tmp_path / "v.gguf", model_type=m.model_type)
    torch.testing.assert_close(back.directions[1], v.directions[1])


def test_server_and_explorer(dtype, tmp_path):
    """The server's continuously batched engine (and its explorer page) in this dtype: a steered completion equals
    ss.generate for the same vector, an unsteered one the base model's."""
    import base64

    from fastapi.testclient import TestClient

    from steerscope.app import create_app, load_source

    m = fresh(dtype)
    vs = ss.VectorSet({1: torch.randn(2, m.d_model, generator=torch.Generator().manual_seed(2)) * 3})
    (tmp_path / "run").mkdir()
    vs.save(tmp_path / "run" / "vectors.safetensors")
    with TestClient(create_app(m, [tmp_path / "run"], explorer=load_source(tmp_path / "run"))) as client:
        body = {"model": "base", "prompt": "the cat", "max_tokens": 4, "temperature": 0}
        plain = client.post("/v1/completions", json=body).json()["choices"][0]["text"]
        data = base64.b64encode(np.asarray(vs.tensors[1][0].numpy(), dtype="<f4").tobytes()).decode()
        steered = client.post("/v1/completions", json={**body, "steering": {"vectors": [
            {"data": data, "layers": [1], "scale": 2.0}]}}).json()["choices"][0]["text"]
        page = client.get("/explore/")
    assert page.status_code == 200
    assert plain.strip() == ss.generate(m, ["the cat"], max_new_tokens=4, chat=False)[0]
    assert steered.strip() == ss.generate(m, ["the cat"], vectors=vs[0], scales=2.0, max_new_tokens=4,
                                          chat=False)[0]
