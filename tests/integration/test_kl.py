"""kl_divergence: identities on tiny models (exact zeros, agreement with a hand-computed KL, batching invariance)."""

import pytest
import torch
from tiny import tiny_model

import steerscope as ss
from steerscope.errors import InvalidArgumentError
from steerscope.generate import forward_kwargs, tokenize

PROMPTS = ["the cat sat on the mat", "hi", "a much longer prompt with padding"]


def vec(m, layer=1, seed=1, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return ss.SteeringVector({layer: torch.randn(m.d_model, generator=g) * scale})


def manual_kl(m, v, scale, prompt, direction="forward"):
    """KL at the last prompt token, one prompt at a time, no batching."""
    ids, mask = tokenize(m, [prompt], chat=False)
    with torch.no_grad():
        q = torch.log_softmax(m.hf(**forward_kwargs(ids, mask)).logits[0, -1].float(), -1)
        with ss.steer(m, v, scale):
            p = torch.log_softmax(m.hf(**forward_kwargs(ids, mask)).logits[0, -1].float(), -1)
    if direction == "reverse":
        p, q = q, p
    return float((p.exp() * (p - q)).sum())


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_matches_hand_computed_kl_both_directions(arch):
    m = tiny_model(arch)
    v = vec(m, scale=3.0)
    for direction in ("forward", "reverse"):
        got = ss.kl_divergence(m, [v], PROMPTS, direction=direction, chat=False, reduction="none")
        want = torch.tensor([[manual_kl(m, v, 1.0, p, direction) for p in PROMPTS]])
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)
    fwd = ss.kl_divergence(m, [v], PROMPTS, chat=False)
    rev = ss.kl_divergence(m, [v], PROMPTS, direction="reverse", chat=False)
    assert not torch.allclose(fwd, rev)  # KL is asymmetric: the direction flag must matter


def test_none_and_zero_scale_are_exactly_zero_and_reference_to_itself_is_zero():
    m = tiny_model("llama")
    v, w = vec(m, seed=1, scale=3.0), vec(m, seed=2, scale=3.0)
    kl = ss.kl_divergence(m, [None, v, w], PROMPTS, scale=[1.0, 0.0, 1.0], chat=False)
    assert kl.shape == (3,)
    assert kl[0] == 0 and kl[1] == 0 and kl[2] > 0
    kl_ref = ss.kl_divergence(m, [v, w], PROMPTS, reference=v, reference_scale=2.0, scale=[2.0, 2.0], chat=False)
    assert kl_ref[0] == 0 and kl_ref[1] > 0


def test_batching_and_vectorset_invariance():
    m = tiny_model("qwen2")
    vs = [vec(m, seed=s, scale=2.0) for s in range(5)]
    one_each = torch.cat([ss.kl_divergence(m, [v], PROMPTS, chat=False) for v in vs])
    batched = ss.kl_divergence(m, vs, PROMPTS, chat=False, batch_size=4)
    as_set = ss.kl_divergence(m, ss.VectorSet.from_vectors(vs), PROMPTS, chat=False, batch_size=64)
    torch.testing.assert_close(batched, one_each, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(as_set, one_each, atol=1e-5, rtol=1e-4)


def test_larger_scale_larger_kl_and_position_windows():
    m = tiny_model("llama")
    v = vec(m, scale=1.0)
    kls = ss.kl_divergence(m, [v, v, v], PROMPTS, scale=[0.5, 2.0, 8.0], chat=False)
    assert kls[0] < kls[1] < kls[2]
    for spec in ("last", "last:3", "all"):
        out = ss.kl_divergence(m, [v], PROMPTS, score_positions=spec, chat=False)
        assert out.shape == (1,) and torch.isfinite(out).all() and out[0] > 0
    torch.testing.assert_close(ss.kl_divergence(m, [v], PROMPTS, score_positions="last", chat=False),
                               ss.kl_divergence(m, [v], PROMPTS, score_positions="last:1", chat=False))


def test_bad_arguments_raise_clear_errors():
    m = tiny_model("llama")
    v = vec(m)
    with pytest.raises(InvalidArgumentError, match="direction"):
        ss.kl_divergence(m, [v], PROMPTS, direction="sideways", chat=False)
    with pytest.raises(InvalidArgumentError, match="positions"):
        ss.kl_divergence(m, [v], PROMPTS, score_positions="middle", chat=False)
    with pytest.raises(InvalidArgumentError, match="scales"):
        ss.kl_divergence(m, [v, v], PROMPTS, scale=[1.0], chat=False)
