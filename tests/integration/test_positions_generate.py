"""Steering positions during real generation (issue 15): every architecture, through ``model.hf.generate`` and
``ss.generate``, with and without the KV cache, with and without left padding, per-row.

The identity: a recorder hook that runs *before* the steering hook on block L sees the unsteered output, one that
runs *after* it the steered output. Their difference at every decoding step must be
exactly c·v on the tokens ``positions`` selects and exactly 0 elsewhere.
"""

import pytest
import torch
from tiny import ARCHS, recorded_around_steering, tiny_model

import steerscope as ss
from steerscope.generate import tokenize
from steerscope.sites import hook_point

LAYER, SCALE = 1, 3.0
PADDED = ["the cat sat on the mat", "hi"]  # "hi" is left-padded
UNPADDED = ["the cat sat"]  # one row: transformers 5.24 passes no attention mask at all


def vec(m, seed=1, norm=12.0):
    g = torch.Generator().manual_seed(seed)
    d = torch.randn(m.d_model, generator=g)
    return ss.SteeringVector({LAYER: d / d.norm() * norm})


def _generate(m, ids, mask, steps, use_cache=True, **kw):
    return m.hf.generate(ids, attention_mask=mask, max_new_tokens=steps, min_new_tokens=steps, do_sample=False,
                         use_cache=use_cache, pad_token_id=m.tokenizer.pad_token_id, temperature=None, top_p=None,
                         top_k=None, **kw)


def _expected_mask(positions: str, mask: torch.Tensor, total: int, k: int = 2) -> torch.Tensor:
    """(B, total) which tokens of the final sequence `positions` selects, written out independently."""
    plen = mask.sum(-1)
    pad = mask.shape[1] - plen
    idx = torch.arange(total)[None, :] - pad[:, None]  # absolute position, negative at padding
    real = idx >= 0
    gen = idx >= plen[:, None]
    return {"all": real, "prompt": real & ~gen, "generated": gen,
            "last:2": real & ~gen & (idx >= plen[:, None] - k), "from:9": idx >= 9}[positions]


@pytest.mark.parametrize("use_cache", [True, False])
@pytest.mark.parametrize("prompts", [PADDED, UNPADDED], ids=["padded", "unpadded"])
@pytest.mark.parametrize("positions", ["generated", "prompt", "all", "last:2", "from:9"])
@pytest.mark.parametrize("arch", ARCHS)
def test_each_decoding_step_moves_by_exactly_cv_where_selected(arch, positions, prompts, use_cache):
    m = tiny_model(arch)
    ids, mask = tokenize(m, prompts, chat=False)
    v, steps = vec(m), 4
    point = hook_point(m, "resid_post", LAYER)
    with torch.no_grad(), ss.prompt_lengths(mask.sum(-1)), ss.steer(m, v, scale=SCALE, positions=positions):
        with recorded_around_steering(point) as (before, after):
            out = _generate(m, ids, mask, steps, use_cache=use_cache, return_dict_in_generate=True)
    total = out.sequences.shape[1]
    want = _expected_mask(positions, mask, total)  # (B, total)
    cv = SCALE * v.directions[LAYER]
    assert len(before) == len(after) == steps
    for step, (unsteered, steered) in enumerate(zip(before, after)):
        t = steered.shape[1]  # tokens in this forward call: the prompt, one new token, or (uncached) everything
        end = ids.shape[1] + step
        sel = want[:, end - t:end]  # (B, T_step)
        delta = steered - unsteered
        torch.testing.assert_close(delta[sel], cv.expand_as(delta[sel]), atol=1e-4, rtol=1e-4)
        assert torch.equal(delta[~sel], torch.zeros_like(delta[~sel])), f"step {step}: unselected tokens moved"
    if positions in ("generated", "prompt"):
        assert want[:, ids.shape[1]:].any() == (positions == "generated")


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("prompts", [PADDED, UNPADDED], ids=["padded", "unpadded"])
def test_generated_changes_output_but_not_its_first_token(arch, prompts):
    m = tiny_model(arch)
    ids, mask = tokenize(m, prompts, chat=False)
    v, n = vec(m, norm=40.0), ids.shape[1]
    with torch.no_grad():
        base = _generate(m, ids, mask, 6)
        outs = {}
        for positions in ("generated", "prompt", "all"):
            with ss.steer(m, v, scale=SCALE, positions=positions):
                outs[positions] = _generate(m, ids, mask, 6)
    gen = outs["generated"]
    assert torch.equal(gen[:, n], base[:, n]), "the first generated token comes from an unsteered prompt"
    assert not torch.equal(gen, base), "positions='generated' steered nothing"
    assert not torch.equal(outs["prompt"], outs["all"])
    assert not torch.equal(outs["prompt"], gen) and not torch.equal(outs["all"], gen)


@pytest.mark.parametrize("arch", ["llama", "gpt2", "gemma3_text"])
@pytest.mark.parametrize("positions", ["generated", "prompt", "last:2"])
def test_ss_generate_matches_hf_generate_and_per_row_matches_separate(arch, positions):
    m = tiny_model(arch)
    v1, v2 = vec(m, 1, 40.0), vec(m, 2, 40.0)
    prompts = ["the cat sat on the mat", "hi", "why not"]
    together = ss.generate(m, prompts, vectors=[v1, None, v2], scales=[SCALE, 0.0, -SCALE], positions=positions,
                           max_new_tokens=6, chat=False)
    for prompt, v, s, got in zip(prompts, [v1, None, v2], [SCALE, 0.0, -SCALE], together):
        alone = ss.generate(m, [prompt], vectors=v, scales=s, positions=positions, max_new_tokens=6, chat=False)
        assert got == alone[0]
        ids, mask = tokenize(m, [prompt], chat=False)
        with torch.no_grad():
            if v is None:
                raw = _generate(m, ids, mask, 6)
            else:
                with ss.steer(m, v, scale=s, positions=positions):
                    raw = _generate(m, ids, mask, 6)
        # ss.generate stops at EOS; compare the shared prefix of token strings
        text = m.tokenizer.decode(raw[0, ids.shape[1]:], skip_special_tokens=True).strip()
        assert text.startswith(got) or got.startswith(text)


def test_unknown_cache_type_fails_loudly():
    from steerscope.errors import SteeringPositionError
    from steerscope.steer import _cache_length

    with pytest.raises(SteeringPositionError, match="transformers"):
        _cache_length(object())


def test_last_zero_is_refused():
    with pytest.raises(ss.SteerscopeError, match="last:K"):
        ss.steer(tiny_model("llama"), vec(tiny_model("llama")), positions="last:0")
