"""Replayed blocks equal the full forward."""

import pytest
import torch
from tiny import ARCHS, tiny_model

from steerscope.errors import InvalidArgumentError
from steerscope.generate import forward_kwargs, tokenize
from steerscope.layers import LayerReplay, hidden_to_logits


@pytest.mark.parametrize("arch", ARCHS)
def test_replay_equals_full_forward(arch):
    m = tiny_model(arch)
    ids, mask = tokenize(m, ["the cat sat", "a longer prompt here"], chat=False)
    with torch.no_grad():
        hs = m.hf(**forward_kwargs(ids, mask), output_hidden_states=True).hidden_states
        replay = LayerReplay(m, ids, mask, start=1, end=m.n_layers - 2)
        torch.testing.assert_close(replay.hidden, hs[1], atol=1e-6, rtol=1e-6)
        out = replay.run(replay.hidden)
        torch.testing.assert_close(out, hs[m.n_layers - 1], atol=1e-5, rtol=1e-5)
        tiled = replay.run(torch.cat([replay.hidden, replay.hidden + 0.5]))
        torch.testing.assert_close(tiled[:2], out, atol=1e-5, rtol=1e-5)
        # until= stops early: resid_post[1] is the input of block 2
        torch.testing.assert_close(replay.run(replay.hidden, until=1), hs[2], atol=1e-5, rtol=1e-5)
        for outside in (0, m.n_layers - 1, -2):  # no inputs were captured for those blocks
            with pytest.raises(InvalidArgumentError, match="outside the replayed blocks"):
                replay.run(replay.hidden, until=outside)
        # run_shifted: vector i on prompt b at row i·B + b, added at every position
        thetas = torch.stack([torch.zeros(m.d_model), torch.full((m.d_model,), 0.5)])
        torch.testing.assert_close(replay.run_shifted(thetas), tiled, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("arch", ARCHS)
def test_replay_to_logits_equals_model_logits(arch):
    m = tiny_model(arch)
    ids, mask = tokenize(m, ["the cat sat", "hi"], chat=False)
    with torch.no_grad():
        full = m.hf(**forward_kwargs(ids, mask)).logits
        replay = LayerReplay(m, ids, mask, start=1, end=m.n_layers - 1)
        got = hidden_to_logits(m, replay.run(replay.hidden))
    real = mask.bool()
    torch.testing.assert_close(got[real], full[real], atol=1e-5, rtol=1e-5)
