"""Steering positions on the embedded SmolLM2 during real generation (issue 15: under transformers 5.24 a batch
without padding reaches the hooks with no attention mask, and `generated` used to steer nothing)."""

import pytest
import torch
from tiny import recorded_around_steering

import steerscope as ss
from steerscope.generate import tokenize
from steerscope.sites import hook_point

pytestmark = pytest.mark.real

PROMPT = "Give me advice on learning to cook."


def _vector(m, layer=7, norm=60.0):
    g = torch.Generator().manual_seed(0)
    d = torch.randn(m.d_model, generator=g)
    return ss.SteeringVector({layer: d / d.norm() * norm})


def test_generated_prompt_all_and_last_differ_as_they_should(real_model):
    m, v = real_model, _vector(real_model)
    base = ss.generate(m, [PROMPT], max_new_tokens=12)[0]
    out = {p: ss.generate(m, [PROMPT], vectors=[v], scales=[2.0], positions=p, max_new_tokens=12)[0]
           for p in ("generated", "prompt", "all", "last:3")}
    assert out["generated"] != base, "positions='generated' steered nothing"
    assert out["generated"].split()[0] == base.split()[0], "the first generated token comes from the unsteered prompt"
    assert len({out["generated"], out["prompt"], out["all"]}) == 3
    assert out["last:3"] not in (base, out["prompt"])


@pytest.mark.parametrize("positions", ["generated", "prompt"])
def test_each_generated_step_moves_by_cv_or_not_at_all(real_model, positions):
    m, layer, scale = real_model, 7, 2.0
    v = _vector(m, layer)
    ids, mask = tokenize(m, [PROMPT, "Hi!"])  # left padding on the second row
    point = hook_point(m, "resid_post", layer)
    with torch.no_grad(), ss.steer(m, v, scale=scale, positions=positions), recorded_around_steering(point) as rec:
        m.hf.generate(ids, attention_mask=mask, max_new_tokens=5, min_new_tokens=5, do_sample=False,
                      pad_token_id=m.tokenizer.pad_token_id, temperature=None, top_p=None, top_k=None)
    before, after = rec
    cv = scale * v.directions[layer]
    for step in range(1, len(after)):  # decoding steps: one new token per row
        delta = (after[step] - before[step])[:, -1]  # (B, D)
        want = cv.expand_as(delta) if positions == "generated" else torch.zeros_like(delta)
        torch.testing.assert_close(delta, want, atol=1e-3, rtol=1e-4)


def test_per_row_generated_with_padding_equals_separate_calls(real_model):
    m, v = real_model, _vector(real_model)
    prompts = [PROMPT, "Hi!"]
    together = ss.generate(m, prompts, vectors=[v, v], scales=[2.0, -2.0], positions="generated", max_new_tokens=8)
    for prompt, s, got in zip(prompts, [2.0, -2.0], together):
        assert got == ss.generate(m, [prompt], vectors=v, scales=s, positions="generated", max_new_tokens=8)[0]
