"""Issue 11: MELBO, MELBO-ortho, LoRA export/discovery, LoRA → vector and the linearity score on bf16 and fp16
models. Every method must keep its optimised parameters in fp32, accumulate in fp32 and return finite fp32 vectors
(on a GPU the same code paths had device and dtype mismatches)."""

import math

import pytest
import torch
from tiny import tiny_config, tiny_tokenizer

import steerscope as ss
from steerscope.models.load import wrap_model

PROMPTS = ["the cat sat on the mat", "hello there, friend"]
DTYPES = [torch.bfloat16, torch.float16]


def low_precision_model(dtype: torch.dtype, arch: str = "llama"):
    """A fresh tiny model converted to ``dtype`` (never the cached fp32 one: tests must not mutate it)."""
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    config = tiny_config(arch, 3)
    config._attn_implementation = "eager"
    hf = AutoModelForCausalLM.from_config(config, dtype=torch.float32).to(dtype)
    return wrap_model(hf, tiny_tokenizer(), name=f"tiny-{arch}-{dtype}".replace("torch.", ""))


def finite_fp32(t: torch.Tensor) -> bool:
    return t.dtype == torch.float32 and bool(torch.isfinite(t).all())


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", ["sequential", "parallel"])
def test_melbo_low_precision(dtype, mode):
    m = low_precision_model(dtype)
    res = ss.melbo(m, PROMPTS, source_layer=0, target_layer=2, num_vectors=2, radius=3.0, steps=4, mode=mode,
                   block_size=2, target_positions=2, chat=False, progress=False)
    vs = res.vectors.tensors[0]
    assert finite_fp32(vs) and vs.shape == (2, m.d_model)
    torch.testing.assert_close(vs.norm(dim=-1), torch.full((2,), 3.0), atol=1e-4, rtol=1e-4)
    assert all(isinstance(o, float) and math.isfinite(o) for o in res.objectives)


@pytest.mark.parametrize("dtype", DTYPES)
def test_melbo_ortho_low_precision(dtype):
    m = low_precision_model(dtype)
    base = ss.SteeringVector({0: torch.randn(m.d_model) * 2.0}, "resid_post")
    res = ss.melbo_ortho(m, base, PROMPTS, target_layer=2, num_vectors=2, steps=3, block_size=2, chat=False,
                         progress=False)
    assert finite_fp32(res.vectors.tensors[0])
    assert all(math.isfinite(r["kl"]) for r in res.analysis)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("method", ["bias", "rank1"])
def test_export_lora_low_precision(tmp_path, dtype, method):
    from safetensors.torch import load_file

    m = low_precision_model(dtype)
    v = ss.SteeringVector({1: torch.randn(m.d_model)}, "resid_post")
    res = ss.export_lora(m, v, tmp_path / "adapter", method=method, scale=2.0, calibration_prompts=PROMPTS * 3,
                         heldout_prompts=PROMPTS, max_new_tokens=3, chat=False)
    tensors = load_file(str(tmp_path / "adapter" / "adapter_model.safetensors"))
    assert all(finite_fp32(t) for t in tensors.values())
    held = res.fidelity["heldout"]
    assert all(math.isfinite(held[k]) for k in ("kl_mean", "rel_error_mean"))


@pytest.mark.parametrize("dtype", DTYPES)
def test_discover_lora_vector_and_linearity_low_precision(tmp_path, dtype):
    m = low_precision_model(dtype)
    res = ss.discover_lora(m, PROMPTS * 2, heldout_prompts=PROMPTS, max_steps=2, batch_size=2, max_new_tokens=4,
                           eval_size=2, num_samples=1, out_dir=tmp_path / "lora", chat=False, progress=False)
    from safetensors.torch import load_file

    tensors = load_file(str(res.runs[0].adapter_dir / "adapter_model.safetensors"))
    assert all(finite_fp32(t) for t in tensors.values())
    v = ss.vector_from_lora(m, res.runs[0].adapter_dir, PROMPTS, max_new_tokens=3, chat=False)
    assert all(finite_fp32(d) for d in v.directions.values())
    lin = ss.linearity_score(m, res.runs[0].adapter_dir, v, PROMPTS * 2, batches=2, max_new_tokens=4, chat=False,
                             embedder=_hash_embedder, progress=False)
    assert math.isfinite(lin.score)


def _hash_embedder(texts):
    """A deterministic stand-in embedder (no sentence-transformers model needed): bag of characters."""
    out = torch.zeros(len(texts), 64)
    for i, text in enumerate(texts):
        for ch in text or "":
            out[i, ord(ch) % 64] += 1.0
    return out
