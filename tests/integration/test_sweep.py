"""sweep() and model-based metrics on tiny models: identities, output files, checkpoint/resume."""

import math

import pytest
import torch
from tiny import tiny_model

import steerscope as ss
from steerscope.evaluate import sweep as sweep_module
from steerscope.evaluate.metrics import mean_logprobs, perplexities, response_logprobs
from steerscope.generate import forward_kwargs, tokenize
from steerscope.io import read_csv, read_json, read_jsonl

PROMPTS = ["the cat sat", "hi", "a much longer prompt here", "dogs"]


def vec(m, layer=1, seed=1, scale=4.0):
    g = torch.Generator().manual_seed(seed)
    return ss.SteeringVector({layer: torch.randn(m.d_model, generator=g) * scale})


def test_response_logprobs_match_single_unpadded_forward():
    m = tiny_model("llama")
    responses = ["abc", "hello world", "x", ""]
    got = response_logprobs(m, PROMPTS, responses, chat=False)
    for prompt, response, (lp, k) in zip(PROMPTS, responses, got):
        p_ids = tokenize(m, [prompt], chat=False)[0]
        r_ids = torch.tensor([m.tokenizer(response, add_special_tokens=False)["input_ids"]], dtype=torch.long)
        assert k == r_ids.shape[1]
        if k == 0:
            continue
        ids = torch.cat([p_ids, r_ids], 1)
        with torch.no_grad():
            logp = torch.log_softmax(m.hf(**forward_kwargs(ids, None)).logits[0, :-1], -1)
        want = logp[-k:].gather(-1, ids[0, -k:, None]).sum()
        assert lp == pytest.approx(float(want), abs=1e-4)
    assert math.isnan(perplexities(m, ["hi"], [""], chat=False)[0])


def test_steered_completion_logprob_is_per_row():
    m = tiny_model("qwen2")
    v = vec(m)
    batched = mean_logprobs(m, PROMPTS[:2], ["yes", "yes"], vectors=[v, None], scales=[2.0, 0.0], chat=False)
    alone = mean_logprobs(m, PROMPTS[:1], ["yes"], vectors=[v], scales=[2.0], chat=False)
    plain = mean_logprobs(m, PROMPTS[1:2], ["yes"], chat=False)
    assert batched[0] == pytest.approx(alone[0], abs=1e-5) and batched[1] == pytest.approx(plain[0], abs=1e-5)


def test_tiny_sweep_writes_everything(tmp_path):
    m = tiny_model("llama")
    v = vec(m)
    res = ss.sweep(m, v, PROMPTS, scales=[-8, -2, 2, 8], metrics=["count:a", "contains:the"], completions="yes",
                   max_new_tokens=8, chat=False, out_dir=tmp_path, progress=False, batch_size=7)
    assert [r["scale"] for r in res.rows] == [-8, -2, 0, 2, 8]  # 0 added and sorted
    assert res.window[0] <= 0 <= res.window[1]
    assert res.best_scale is None or res.window[0] <= res.best_scale <= res.window[1]
    assert res.objective == "count:a"
    for name in ("sweep.csv", "sweep.json", "sweep.png", "samples.jsonl"):
        assert (tmp_path / name).is_file()
    assert not (tmp_path / "checkpoint.jsonl").exists()
    saved = read_json(tmp_path / "sweep.json")
    assert set(saved) >= {"rows", "window", "best_scale", "tolerance"}
    assert len(read_csv(tmp_path / "sweep.csv")) == 5 and len(read_jsonl(tmp_path / "samples.jsonl")) == 20
    # scale 0 is the unsteered baseline: its responses equal plain generation, its perplexity their perplexity
    base = ss.generate(m, PROMPTS, max_new_tokens=8, chat=False)
    assert [s["response"] for s in res.samples if s["scale"] == 0] == base
    ppl = perplexities(m, PROMPTS, base, chat=False)
    logs = [math.log(p) for p in ppl if math.isfinite(p)]
    assert res.row(0)["perplexity"] == pytest.approx(math.exp(sum(logs) / len(logs)), rel=1e-6)
    # batching across scales does not change responses (per-row scales)
    one = ss.sweep(m, v, PROMPTS, scales=[-8, -2, 2, 8], max_new_tokens=8, chat=False, progress=False, batch_size=1)
    assert [s["response"] for s in one.samples] == [s["response"] for s in res.samples]
    loaded = ss.SweepResult.load(tmp_path)
    assert loaded.window == res.window and len(loaded.samples) == 20


def test_sweep_resumes_from_checkpoint(tmp_path, monkeypatch):
    m = tiny_model("llama")
    v = vec(m)
    real_generate = sweep_module.generate
    calls = []

    def flaky(*args, **kwargs):
        calls.append(len(args[1]))
        if len(calls) == 3:
            raise KeyboardInterrupt  # interrupted after two batches
        return real_generate(*args, **kwargs)

    monkeypatch.setattr(sweep_module, "generate", flaky)
    kw = {"scales": [-2, 2], "max_new_tokens": 6, "chat": False, "out_dir": tmp_path, "progress": False,
          "batch_size": 4}
    with pytest.raises(KeyboardInterrupt):
        ss.sweep(m, v, PROMPTS, **kw)
    assert (tmp_path / "checkpoint.jsonl").is_file()
    calls.clear()
    res = ss.sweep(m, v, PROMPTS, resume=True, **kw)
    assert calls == [4]  # only the last of three batches was generated again
    monkeypatch.setattr(sweep_module, "generate", real_generate)
    fresh = ss.sweep(m, v, PROMPTS, scales=[-2, 2], max_new_tokens=6, chat=False, progress=False)
    assert [s["response"] for s in res.samples] == [s["response"] for s in fresh.samples]


def test_sweep_argument_errors():
    m = tiny_model("llama")
    v = vec(m)
    with pytest.raises(ss.SteerscopeError, match="objective"):
        ss.sweep(m, v, PROMPTS, metrics=["count:a"], objective="nope", chat=False)
    with pytest.raises(ss.SteerscopeError, match="completions"):
        ss.sweep(m, v, PROMPTS, completions=["a", "b"], chat=False)
    with pytest.raises(ss.SteerscopeError, match="regex"):
        ss.sweep(m, v, PROMPTS, metrics=["count:("], chat=False)
