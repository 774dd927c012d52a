"""linearity_score with a hand-made PEFT LoRA on a tiny model; the model is left unwrapped afterwards."""

import copy
import math

import numpy as np
import pytest
import torch
from tiny import tiny_model

import steerscope as ss
from steerscope.evaluate import linearity as linearity_module
from steerscope.generate import forward_kwargs, tokenize
from steerscope.io import read_json

PROMPTS = ["hello there", "what is up", "abc", "the cat", "dogs run", "a b c d", "zebra", "more text"]


def char_embedder(texts):
    """Cheap deterministic embedder: letter counts (enough to compare summaries in tests)."""
    out = np.zeros((len(texts), 27))
    for i, t in enumerate(texts):
        for ch in t.lower():
            out[i, ord(ch) - 97 if "a" <= ch <= "z" else 26] += 1
        out[i, 26] += 1e-3  # never all-zero
    return out


def make_adapter(m, path, zero=False):
    from peft import LoraConfig, get_peft_model

    pm = get_peft_model(copy.deepcopy(m.hf), LoraConfig(r=4, target_modules=["down_proj", "o_proj"],
                                                        init_lora_weights=zero))
    if not zero:  # make the LoRA strong enough to change greedy text of a random tiny model
        for name, p in pm.named_parameters():
            if "lora_B" in name:
                torch.nn.init.normal_(p, std=2.0)
    pm.save_pretrained(path)
    return path


def logits(m):
    ids, mask = tokenize(m, PROMPTS[:2], chat=False)
    with torch.no_grad():
        return m.hf(**forward_kwargs(ids, mask)).logits


def no_lora_left(m):
    return not any("lora" in name.lower() for name, _ in m.hf.named_modules()) and not hasattr(m.hf, "peft_config")


def test_linearity_from_adapter_directory(tmp_path):
    m = tiny_model("llama", seed=11)
    before = logits(m)
    adapter = make_adapter(m, tmp_path / "adapter")
    v = ss.SteeringVector({1: torch.randn(m.d_model, generator=torch.Generator().manual_seed(0)) * 4})
    res = ss.linearity_score(m, adapter, v, PROMPTS, batches=4, embedder=char_embedder, max_new_tokens=10,
                             chat=False, out_dir=tmp_path / "out", progress=False)
    assert no_lora_left(m) and torch.equal(logits(m), before)  # model exactly as before
    assert res.similarity.shape == (4, 4) and len(res.matching) == 4
    assert sorted(i for i, _ in res.matching) == [0, 1, 2, 3] and sorted(j for _, j in res.matching) == [0, 1, 2, 3]
    assert 0.0 <= res.score <= 1.0 and res.score == pytest.approx(min(1, max(0, res.raw_score)))
    assert res.raw_score == pytest.approx(np.mean([res.similarity[i, j] for i, j in res.matching]))
    assert res.responses["lora"] != res.responses["baseline"]  # the LoRA really was active
    assert res.responses["baseline"] == ss.generate(m, PROMPTS, max_new_tokens=10, chat=False)
    assert res.control_score is None and "control" not in res.responses
    with_control = ss.linearity_score(m, adapter, v, PROMPTS, batches=4, embedder=char_embedder, max_new_tokens=10,
                                      chat=False, progress=False, control=True)
    assert with_control.score == pytest.approx(res.score)  # the control rows do not disturb the others
    assert 0.0 <= with_control.control_score <= 1.0 and len(with_control.control_summaries) == 4
    assert len(with_control.responses["control"]) == len(PROMPTS)
    assert no_lora_left(m)
    saved = read_json(tmp_path / "out" / "linearity.json")
    assert set(saved) >= {"score", "similarity", "matching", "embedding_shift_cosine", "lora_summaries",
                          "vector_summaries"}
    assert (tmp_path / "out" / "linearity_heatmap.png").stat().st_size > 1000


def test_identity_zero_lora_and_zero_vector_score_one(tmp_path):
    m = tiny_model("llama", seed=11)
    adapter = make_adapter(m, tmp_path / "zero", zero=True)  # PEFT's default init: B = 0, the LoRA is a no-op
    v = ss.SteeringVector({1: torch.ones(m.d_model)})
    res = ss.linearity_score(m, adapter, v, PROMPTS, batches=1, scale=0.0, embedder=char_embedder,
                             max_new_tokens=6, chat=False, progress=False)
    assert res.responses["lora"] == res.responses["vector"] == res.responses["baseline"]
    assert res.lora_summaries == res.vector_summaries == ["no distinctive words"]
    assert res.score == pytest.approx(1.0) and res.matching == [(0, 0)]
    assert math.isnan(res.embedding_shift_cosine)  # no shift has no direction
    assert no_lora_left(m)


def test_already_wrapped_peft_model_is_toggled_not_removed(tmp_path):
    from peft import PeftModel

    m = tiny_model("llama", seed=12)
    adapter_dir = make_adapter(m, tmp_path / "adapter")
    base_hf = copy.deepcopy(m.hf)
    own = ss.wrap_model(base_hf, m.tokenizer, name="own")
    wrapped = PeftModel.from_pretrained(base_hf, str(adapter_dir))
    v = ss.SteeringVector({1: torch.ones(m.d_model)})
    calls = []
    res = ss.linearity_score(own, wrapped, v, PROMPTS, batches=2, embedder=char_embedder, max_new_tokens=6,
                             chat=False, progress=False,
                             summarizer=lambda batches, base: calls.append(len(batches)) or ["x", "y"])
    assert calls == [2, 2] and res.lora_summaries == ["x", "y"]
    with wrapped.disable_adapter():
        assert res.responses["baseline"] == ss.generate(own, PROMPTS, max_new_tokens=6, chat=False)
    assert res.responses["lora"] == ss.generate(own, PROMPTS, max_new_tokens=6, chat=False)  # still wrapped


def test_adapter_removed_even_when_generation_fails(tmp_path, monkeypatch):
    m = tiny_model("llama", seed=11)
    adapter = make_adapter(m, tmp_path / "adapter")
    real = linearity_module.generate
    calls = []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("boom")
        return real(*args, **kwargs)

    monkeypatch.setattr(linearity_module, "generate", failing)
    with pytest.raises(RuntimeError, match="boom"):
        ss.linearity_score(m, adapter, ss.SteeringVector({1: torch.ones(m.d_model)}), PROMPTS, batches=2,
                           embedder=char_embedder, max_new_tokens=4, chat=False, progress=False)
    assert no_lora_left(m)


def test_bad_inputs(tmp_path):
    m = tiny_model("llama", seed=11)
    v = ss.SteeringVector({1: torch.ones(m.d_model)})
    with pytest.raises(ss.SteerscopeError, match="adapter_config"):
        ss.linearity_score(m, tmp_path, v, PROMPTS, chat=False)
    with pytest.raises(ss.SteerscopeError, match="batches"):
        ss.linearity_score(m, tmp_path, v, PROMPTS[:3], batches=6, chat=False)
