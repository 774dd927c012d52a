"""Contrastive vectors on tiny models: mean difference by hand, PCA sign convention, padding invariance."""

import pytest
import torch
from tiny import tiny_model

import steerscope as ss
from steerscope.generate import forward_kwargs

PAIRS = [("i love this so much", "i hate this"), ("great day", "awful, terrible day today"),
         ("yes!", "no"), ("wonderful news everyone", "bad news")]


def hand_read(m, text, layer, pos=-1):
    """resid_post[layer] at one token of the unpadded text (not the last layer: HF normalises that entry)."""
    ids = m.tokenizer(text, return_tensors="pt", add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        hs = m.hf(**forward_kwargs(ids, None), output_hidden_states=True).hidden_states
    return hs[layer + 1][0, pos]


@pytest.mark.parametrize("arch", ["llama", "gpt2", "gemma2"])
@pytest.mark.parametrize("pos", [-1, -2, 0])
def test_mean_diff_equals_hand_computation(arch, pos):
    m = tiny_model(arch)
    v = ss.contrastive_vector(m, PAIRS, layers=[0, 1], method="mean_diff", read_position=pos, chat=False,
                              batch_size=3)
    for layer in (0, 1):
        expected = torch.stack([hand_read(m, p, layer, pos) - hand_read(m, n, layer, pos) for p, n in PAIRS]).mean(0)
        torch.testing.assert_close(v.directions[layer], expected, atol=1e-5, rtol=1e-4)
    assert v.method == "mean_diff" and v.site == "resid_post"


def test_pca_sign_convention_and_flip():
    m = tiny_model("llama")
    v = ss.contrastive_vector(m, PAIRS, layers=[1], method="pca", chat=False)
    u = v.directions[1] / v.directions[1].norm()
    pos = torch.stack([hand_read(m, p, 1) for p, _ in PAIRS])
    neg = torch.stack([hand_read(m, n, 1) for _, n in PAIRS])
    assert (pos @ u).mean() > (neg @ u).mean()
    flipped = ss.contrastive_vector(m, [(n, p) for p, n in PAIRS], layers=[1], method="pca", chat=False)
    torch.testing.assert_close(flipped.directions[1], -v.directions[1], atol=1e-5, rtol=1e-4)
    # norm = mean separation along u
    assert v.directions[1].norm().item() == pytest.approx(((pos - neg) @ u).mean().item(), rel=1e-4)


def test_prompted_pairs_and_dicts():
    m = tiny_model("llama")
    pairs = [{"prompt": "is it good?", "positive": "yes", "negative": "no"},
             {"prompt": "do you agree?", "positive": "yes indeed", "negative": "not at all"}]
    v = ss.contrastive_vector(m, pairs, layers=[1], chat=False)
    expected = torch.stack([hand_read(m, f"{d['prompt']} {d['positive']}", 1) -
                            hand_read(m, f"{d['prompt']} {d['negative']}", 1) for d in pairs]).mean(0)
    torch.testing.assert_close(v.directions[1], expected, atol=1e-5, rtol=1e-4)


def test_bad_inputs():
    m = tiny_model("llama")
    with pytest.raises(ss.SteerscopeError):
        ss.contrastive_vector(m, PAIRS, layers=[1], method="median", chat=False)
    with pytest.raises(ss.SteerscopeError):
        ss.contrastive_vector(m, [("a", "")], layers=[1], chat=False)
    with pytest.raises(ss.SteerscopeError):
        ss.contrastive_vector(m, PAIRS, layers=[7], chat=False)
    with pytest.raises(ss.SteerscopeError):
        ss.contrastive_vector(m, PAIRS, layers=[1], read_position=50, chat=False)
