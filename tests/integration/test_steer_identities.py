"""Identities of steering on tiny random models of every supported architecture."""

import pytest
import torch
from tiny import ARCHS, tiny_model

import steerscope as ss
from steerscope.generate import forward_kwargs, tokenize

PROMPTS = ["the cat sat on the mat", "hi", "a much longer prompt with padding"]


def batch(m, prompts=PROMPTS):
    return tokenize(m, prompts, chat=False)


def logits(m, ids, mask, **kw):
    with torch.no_grad():
        return m.hf(**forward_kwargs(ids, mask), **kw).logits


def vec(m, layer, seed=1, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return ss.SteeringVector({layer: torch.randn(m.d_model, generator=g) * scale})


@pytest.mark.parametrize("arch", ARCHS)
def test_scale_zero_is_bit_identical(arch):
    m = tiny_model(arch)
    ids, mask = batch(m)
    base = logits(m, ids, mask)
    with ss.steer(m, vec(m, 1), scale=0.0):
        steered = logits(m, ids, mask)
    assert torch.equal(base, steered)


@pytest.mark.parametrize("arch", ARCHS)
def test_resid_post_moves_next_hidden_state_by_exactly_cv(arch):
    m = tiny_model(arch)
    ids, mask = batch(m)
    v, c, layer = vec(m, 1), 3.0, 1
    with torch.no_grad():
        base = m.hf(**forward_kwargs(ids, mask), output_hidden_states=True).hidden_states
        with ss.steer(m, v, scale=c):
            steered = m.hf(**forward_kwargs(ids, mask), output_hidden_states=True).hidden_states
    real = mask.bool()
    for i in range(layer + 1):
        assert torch.equal(base[i], steered[i]), f"hidden_states[{i}] changed but steering is at block {layer}"
    delta = (steered[layer + 1] - base[layer + 1])[real]
    if arch in ("gemma2", "gemma3_text") and layer + 1 == m.n_layers:
        return  # the last entry is after the final norm in these models
    torch.testing.assert_close(delta, (c * v.directions[layer]).expand_as(delta), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(base[layer + 2], steered[layer + 2])


@pytest.mark.parametrize("arch", ARCHS)
def test_scale_and_vector_commute(arch):
    m = tiny_model(arch)
    ids, mask = batch(m)
    v = vec(m, 0)
    with ss.steer(m, v, scale=2.0):
        a = logits(m, ids, mask)
    with ss.steer(m, 2 * v, scale=1.0):
        b = logits(m, ids, mask)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("arch", ARCHS)
def test_per_row_batch_equals_separate_runs(arch):
    m = tiny_model(arch)
    ids, mask = batch(m)
    rows = [vec(m, 1, seed=1), None, vec(m, 2, seed=2)]
    scales = [2.0, 5.0, -1.5]
    with ss.steer(m, rows, scale=scales):
        together = logits(m, ids, mask)
    for r, (v, s) in enumerate(zip(rows, scales)):
        one_ids, one_mask = batch(m, [PROMPTS[r]])
        if v is None:
            alone = logits(m, one_ids, one_mask)
        else:
            with ss.steer(m, v, scale=s):
                alone = logits(m, one_ids, one_mask)
        n = one_ids.shape[1]
        torch.testing.assert_close(together[r, -n:], alone[0], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("positions", ["all", "prompt", "from:3", "last:2"])
def test_left_padding_invariance(arch, positions):
    m = tiny_model(arch)
    v = vec(m, 1, scale=2.0)
    ids, mask = batch(m)  # "hi" is heavily left-padded
    with ss.steer(m, v, positions=positions):
        padded = logits(m, ids, mask)
        one_ids, one_mask = batch(m, ["hi"])
        alone = logits(m, one_ids, one_mask)
    torch.testing.assert_close(padded[1, -one_ids.shape[1]:], alone[0], atol=1e-4, rtol=1e-4)


def _greedy_manual(m, ids, mask, steps, use_cache):
    """Greedy decoding by hand so both paths run the same arithmetic (with and without KV cache)."""
    with ss.prompt_lengths(mask.sum(-1)):
        if not use_cache:
            out, done = ids, torch.zeros(ids.shape[0], dtype=torch.bool)
            eos, pad = m.tokenizer.eos_token_id, m.tokenizer.pad_token_id
            for _ in range(steps):
                full_mask = torch.cat([mask, torch.ones(ids.shape[0], out.shape[1] - ids.shape[1], dtype=mask.dtype)], 1)
                nxt = m.hf(**forward_kwargs(out, full_mask)).logits[:, -1].argmax(-1)
                nxt = torch.where(done, torch.full_like(nxt, pad), nxt)  # as HF generate: pad after EOS
                done |= nxt == eos
                out = torch.cat([out, nxt[:, None]], 1)
            return out
        return m.hf.generate(ids, attention_mask=mask, max_new_tokens=steps, do_sample=False,
                             pad_token_id=m.tokenizer.pad_token_id, temperature=None, top_p=None, top_k=None)


@pytest.mark.parametrize("arch", ["llama", "gemma3_text", "gpt2", "gpt_neox"])
@pytest.mark.parametrize("positions", ["generated", "from:9", "prompt"])
def test_cached_equals_uncached_generation(arch, positions):
    m = tiny_model(arch)
    ids, mask = batch(m)
    v = vec(m, 1, scale=4.0)
    with torch.no_grad(), ss.steer(m, v, positions=positions):
        cached = _greedy_manual(m, ids, mask, 6, use_cache=True)
        uncached = _greedy_manual(m, ids, mask, 6, use_cache=False)
    assert torch.equal(cached, uncached)


def test_generated_positions_leave_the_prompt_alone():
    m = tiny_model("llama")
    ids, mask = batch(m)
    with ss.steer(m, vec(m, 1, scale=5.0), positions="generated"):
        steered = logits(m, ids, mask)
    torch.testing.assert_close(steered, logits(m, ids, mask))  # a prompt-only forward is never steered


@pytest.mark.parametrize("site", ["resid_pre", "mlp_out", "attn_out"])
@pytest.mark.parametrize("arch", ["llama", "gpt2", "gpt_neox", "gemma2"])
def test_other_sites_change_output_and_scale_zero_is_identity(arch, site):
    m = tiny_model(arch)
    ids, mask = batch(m)
    v = ss.SteeringVector({1: torch.randn(m.d_model) * 3}, site=site)
    base = logits(m, ids, mask)
    with ss.steer(m, v, scale=0.0):
        assert torch.equal(logits(m, ids, mask), base)
    with ss.steer(m, v):
        assert not torch.allclose(logits(m, ids, mask), base)


def test_resid_pre_equals_resid_post_of_previous_layer():
    m = tiny_model("llama")
    ids, mask = batch(m)
    d = torch.randn(m.d_model)
    with ss.steer(m, ss.SteeringVector({2: d}, site="resid_pre")):
        a = logits(m, ids, mask)
    with ss.steer(m, ss.SteeringVector({1: d}, site="resid_post")):
        b = logits(m, ids, mask)
    torch.testing.assert_close(a, b)


def test_ablate_and_clamp_match_their_formulas():
    m = tiny_model("llama")
    ids, mask = batch(m)
    layer, d = 1, torch.randn(m.d_model)
    unit = d / d.norm()
    with torch.no_grad():
        base = m.hf(**forward_kwargs(ids, mask), output_hidden_states=True).hidden_states[layer + 1]
        for op, scale in [("ablate", 1.0), ("clamp", 2.5)]:
            with ss.steer(m, ss.SteeringVector({layer: d}), scale=scale, operator=op):
                got = m.hf(**forward_kwargs(ids, mask), output_hidden_states=True).hidden_states[layer + 1]
            along = (base @ unit)[..., None] * unit
            want = base - along + (scale * d if op == "clamp" else 0)
            real = mask.bool()
            torch.testing.assert_close(got[real], want[real], atol=1e-5, rtol=1e-5)
            if op == "clamp":
                torch.testing.assert_close(got[real] @ unit, torch.full_like(got[real] @ unit, scale * float(d.norm())),
                                           atol=1e-4, rtol=1e-4)


def test_multi_layer_vector_adds_at_each_layer():
    m = tiny_model("llama")
    ids, mask = batch(m)
    a, b = torch.randn(m.d_model), torch.randn(m.d_model)
    with ss.steer(m, ss.SteeringVector({0: a})), ss.steer(m, ss.SteeringVector({2: b})):
        nested = logits(m, ids, mask)
    with ss.steer(m, ss.SteeringVector({0: a, 2: b})):
        joint = logits(m, ids, mask)
    torch.testing.assert_close(nested, joint, atol=1e-5, rtol=1e-5)


def test_nested_contexts_restore_outer():
    m = tiny_model("llama")
    ids, mask = batch(m)
    outer, inner = vec(m, 0, 1), vec(m, 1, 2)
    with ss.steer(m, outer):
        only_outer = logits(m, ids, mask)
        with ss.steer(m, inner):
            both = logits(m, ids, mask)
        assert torch.equal(logits(m, ids, mask), only_outer)
    assert not torch.allclose(both, only_outer)


def _hook_count(m):
    return sum(len(mod._forward_hooks) + len(mod._forward_pre_hooks) for mod in m.hf.modules())


def test_hooks_removed_after_exception_and_keyboard_interrupt():
    m = tiny_model("llama")
    before = _hook_count(m)
    for exc in (RuntimeError("boom"), KeyboardInterrupt()):
        with pytest.raises(type(exc)), ss.steer(m, vec(m, 1)):
            assert _hook_count(m) > before
            raise exc
        assert _hook_count(m) == before
    handle = ss.steer(m, vec(m, 1))
    handle.remove()
    handle.remove()
    assert _hook_count(m) == before


def test_no_vector_installs_no_hook_and_still_checks_its_arguments():
    m = tiny_model("llama")
    ids, mask = batch(m)
    before, plain = _hook_count(m), logits(m, ids, mask)
    for unsteered in (None, [None] * len(PROMPTS)):
        with ss.steer(m, unsteered, positions="generated"):
            assert _hook_count(m) == before
            assert torch.equal(logits(m, ids, mask), plain)
    with pytest.raises(ss.SteerscopeError, match="last:0"):
        ss.steer(m, None, positions="last:0")
    with pytest.raises(ss.SteerscopeError, match="operator"):
        ss.steer(m, [None], operator="shift")


def test_per_row_count_mismatch_is_a_clear_error():
    m = tiny_model("llama")
    ids, mask = batch(m)
    with pytest.raises(ss.SteerscopeError, match="per-row"):
        with ss.steer(m, [vec(m, 1), None], scale=[1.0, 1.0]):
            logits(m, ids, mask)


def test_wrong_width_and_bad_layer_fail_clearly():
    m = tiny_model("llama")
    with pytest.raises(ss.SteerscopeError, match="width 7.*d_model 32"):
        ss.steer(m, ss.SteeringVector({1: torch.randn(7)}))
    with pytest.raises(ss.SteerscopeError, match="out of range"):
        ss.steer(m, ss.SteeringVector({9: torch.randn(32)}))
    with pytest.raises(ss.SteerscopeError, match="finite"):
        ss.steer(m, vec(m, 1), scale=float("nan"))


def test_generate_per_row_matches_separate_calls():
    m = tiny_model("llama")
    v = vec(m, 1, scale=3.0)
    prompts = ["hello", "hello", "why not"]
    together = ss.generate(m, prompts, vectors=[v, None, v], scales=[1.0, 0.0, -2.0], max_new_tokens=6, chat=False)
    assert together[0] == ss.generate(m, ["hello"], vectors=v, max_new_tokens=6, chat=False)[0]
    assert together[1] == ss.generate(m, ["hello"], max_new_tokens=6, chat=False)[0]
    assert together[2] == ss.generate(m, ["why not"], vectors=v, scales=-2.0, max_new_tokens=6, chat=False)[0]
