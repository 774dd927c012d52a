"""The prompting baseline (issue 13): sweep and evaluate_transfer add prompted and prompted + steered rows, measured
exactly like the steered rows, with the system prompt in the model's input."""

import copy
import math

import pytest
import torch
from tiny import tiny_model, tiny_tokenizer

import steerscope as ss
from steerscope.evaluate.prompting import prompted_scale, system_prompted
from steerscope.generate import generate
from steerscope.io import read_csv, read_json
from steerscope.models.load import wrap_model

PROMPTS = ["the cat sat", "hi", "dogs"]
SYSTEM = "answer in capitals"


def vec(m, layer=1, seed=1, scale=4.0):
    g = torch.Generator().manual_seed(seed)
    return ss.SteeringVector({layer: torch.randn(m.d_model, generator=g) * scale})


def test_system_prompted_texts():
    m = tiny_model("llama")  # no chat template: the system text is prepended
    texts, chat = system_prompted(m, PROMPTS, SYSTEM, chat=True)
    assert texts[0] == f"{SYSTEM}\n\nthe cat sat" and chat is True
    templated = copy.deepcopy(tiny_tokenizer())  # never touch the shared tokenizer
    templated.chat_template = ("{% for m in messages %}<s>{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
                               "{% if add_generation_prompt %}assistant:{% endif %}")
    tm = wrap_model(tiny_model("llama").hf, templated, name="tiny-templated")
    texts, chat = system_prompted(tm, ["hi"], SYSTEM)
    assert chat is False and texts == [f"<s>system: {SYSTEM}\n<s>user: hi\nassistant:"]
    assert prompted_scale([-4, 0, 2, 4], None) == 4 and prompted_scale([-4, 0, 2, 4], 2) == 2


def test_sweep_prompt_baseline_rows(tmp_path):
    m = tiny_model("llama")
    v = vec(m)
    res = ss.sweep(m, v, PROMPTS, scales=[-2, 0, 2], metrics=["count:a"], completions="abc", max_new_tokens=6,
                   chat=False, prompt_baseline=SYSTEM, out_dir=tmp_path, progress=False)
    conds = {r["condition"]: r for r in res.prompt_rows}
    assert set(conds) == {"prompted", "prompted+steered"}
    steer_scale = conds["prompted+steered"]["scale"]
    assert steer_scale == prompted_scale([-2, 0, 2], res.best_scale)
    # the prompted rows are what generate() gives with the system text in the prompt
    texts = [f"{SYSTEM}\n\n{p}" for p in PROMPTS]
    plain = generate(m, texts, max_new_tokens=6, chat=False)
    steered = generate(m, texts, vectors=v, scales=steer_scale, max_new_tokens=6, chat=False)
    got = {(s["condition"], s["prompt_index"]): s["response"] for s in res.samples if "condition" in s}
    assert [got[("prompted", i)] for i in range(3)] == plain
    assert [got[("prompted+steered", i)] for i in range(3)] == steered
    assert conds["prompted"]["count:a"] == pytest.approx(sum(t.count("a") for t in plain) / 3)
    assert math.isfinite(conds["prompted"]["completion_logprob"])
    comparison = res.prompting_comparison()
    assert comparison["prompted"] == conds["prompted"]["count:a"] and "vector_beats_prompting" in comparison
    assert len(read_csv(tmp_path / "sweep_prompted.csv")) == 2
    assert read_json(tmp_path / "sweep.json")["prompting_comparison"]["objective"] == "count:a"
    loaded = ss.SweepResult.load(tmp_path).prompt_rows
    assert [(r["condition"], r["scale"], r["count:a"]) for r in loaded] == [
        (r["condition"], r["scale"], r["count:a"]) for r in res.prompt_rows]
    assert (tmp_path / "sweep.png").is_file()


def test_transfer_prompt_baseline_rows(tmp_path):
    m = tiny_model("llama")
    v = vec(m, scale=2.0)
    res = ss.evaluate_transfer(m, v, PROMPTS, targets=["abc"], scales=[-1, 0, 1], chat=False, max_new_tokens=5,
                               prompt_baseline=SYSTEM, out_dir=tmp_path, progress=False)
    assert [r["condition"] for r in res.prompted] == ["prompted", "prompted+steered"]
    prompted = ss.evaluate_transfer(m, v, [f"{SYSTEM}\n\n{p}" for p in PROMPTS], targets=["abc"], scales=[0, 1],
                                    chat=False, max_new_tokens=5, progress=False)
    # Δ log-prob of the prompted model is measured against the unprompted, unsteered model
    unprompted = res.baseline["mean_logprob"]
    assert res.prompted[0]["mean_delta_logprob"] == pytest.approx(prompted.baseline["mean_logprob"] - unprompted,
                                                                  abs=1e-4)
    assert res.prompted[1]["scale"] == 1.0
    assert res.prompted[1]["mean_logprob"] == pytest.approx(prompted.at(1.0)["mean_logprob"], abs=1e-4)
    assert len(read_csv(tmp_path / "transfer_prompted.csv")) == 2
