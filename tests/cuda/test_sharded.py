"""A model split across ``cuda:0`` and the CPU with ``device_map`` (issue 11). Skipped without a GPU.

The CUDA × {bf16, fp16} run of the whole public API lives in ``tests/integration/test_dtype_tier.py`` (its
``cuda-*`` parameters); this file adds what needs more than one device: every hook puts its vector on its own
block's device, ``LayerReplay`` follows the blocks, and results equal an unsharded copy.
"""

from __future__ import annotations

import pytest
import torch
from tiny import tiny_config, tiny_tokenizer

import steerscope as ss
from steerscope.generate import forward_kwargs, tokenize

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU here")]
PROMPTS = ["the cat sat on the mat", "hi", "why not"]


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """(sharded: blocks 0-1 on cuda:0, blocks 2-3 + head on cpu; reference: the same weights on cpu), both fp32."""
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    config = tiny_config("llama", n_layers=4)
    config._attn_implementation = "eager"
    path = tmp_path_factory.mktemp("tiny4")
    AutoModelForCausalLM.from_config(config).save_pretrained(path)
    tiny_tokenizer().save_pretrained(path)
    device_map = {"model.embed_tokens": 0, "model.rotary_emb": 0, "model.layers.0": 0, "model.layers.1": 0,
                  "model.layers.2": "cpu", "model.layers.3": "cpu", "model.norm": "cpu", "lm_head": "cpu"}
    sharded = ss.load_model(str(path), device_map=device_map, dtype="float32")
    reference = ss.load_model(str(path), device="cpu", dtype="float32")
    assert {d.type for d in sharded.devices} == {"cuda", "cpu"}
    return sharded, reference


def _vec(m, layers, norm=4.0):
    g = torch.Generator().manual_seed(1)
    return ss.SteeringVector({layer: torch.randn(m.d_model, generator=g) * norm / m.d_model ** 0.5 for layer in layers})


def test_steering_on_both_devices_equals_unsharded(pair):
    sharded, reference = pair
    v = _vec(sharded, [1, 3])
    outs = []
    for m in (sharded, reference):
        ids, mask = tokenize(m, PROMPTS, chat=False)
        with torch.no_grad(), ss.steer(m, v, scale=2.0):
            outs.append(m.hf(**forward_kwargs(ids, mask)).logits.cpu())
    torch.testing.assert_close(outs[0], outs[1], atol=1e-4, rtol=1e-4)
    texts = [ss.generate(m, PROMPTS, vectors=[v, None, v], scales=[2.0, 0.0, -2.0], positions="generated",
                         max_new_tokens=5, chat=False) for m in pair]
    assert texts[0] == texts[1]


def test_melbo_and_one_shot_replay_across_devices(pair):
    results = []
    for m in pair:
        res = ss.melbo(m, PROMPTS[:2], source_layer=0, target_layer=3, num_vectors=2, radius=2.0, steps=5, lr=0.05,
                       mode="parallel", chat=False, progress=False, report=False)
        opt = ss.optimize_vector(m, [ss.Example("the cat sat", promote=["on the mat"])], layer=1, max_iters=4,
                                 lr=0.1, chat=False, progress=False)
        results.append((res, opt))
    (a, oa), (b, ob) = results
    torch.testing.assert_close(a.vectors.tensors[0], b.vectors.tensors[0], atol=1e-3, rtol=1e-3)
    torch.testing.assert_close(oa.vector.directions[1], ob.vector.directions[1], atol=1e-3, rtol=1e-3)
