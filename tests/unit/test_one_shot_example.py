"""Example validation, the loss formula and the steering operators of one-shot optimisation (no model)."""

import math

import pytest
import torch

from steerscope.completions import EPS, PackedBatch, completion_losses, token_logprobs
from steerscope.errors import InvalidArgumentError
from steerscope.methods.one_shot import Example, OptimizeResult, apply_operator
from steerscope.vector import SteeringVector


def test_example_normalises_completions_and_roundtrips():
    ex = Example("hi", promote="Sure", suppress=["No", "Never"], negate=True, positions="last:3")
    assert ex.promote == ("Sure",) and ex.suppress == ("No", "Never")
    assert Example.from_dict(ex.to_dict()) == ex


@pytest.mark.parametrize(
    "kwargs",
    [
        {"prompt": ""},
        {"prompt": "hi"},
        {"prompt": "hi", "promote": [""]},
        {"prompt": "hi", "promote": ["a"], "positions": "generated"},
        {"prompt": "hi", "promote": ["a"], "positions": "last:0"},
        {"prompt": "hi", "promote": ["a"], "positions": "nope"},
    ],
)
def test_example_rejects_bad_input(kwargs):
    with pytest.raises(InvalidArgumentError):
        Example(**kwargs)


def test_example_from_dict_rejects_unknown_keys():
    with pytest.raises(InvalidArgumentError, match="unknown example keys"):
        Example.from_dict({"prompt": "hi", "promote": ["a"], "target": "x"})


def _batch(lengths):
    owner = torch.repeat_interleave(torch.arange(len(lengths)), torch.tensor(lengths))
    n, zeros = len(lengths), torch.zeros(len(owner), dtype=torch.long)
    return PackedBatch(
        ids=torch.zeros(n, 1, dtype=torch.long),
        mask=torch.ones(n, 1, dtype=torch.long),
        position_ids=torch.zeros(n, 1, dtype=torch.long),
        prompt_len=torch.ones(n, dtype=torch.long),
        completion_len=torch.tensor(lengths),
        completion_row=torch.arange(n),
        pred_index=zeros,
        target_ids=zeros,
        token_completion=owner,
    )


def test_completion_losses_follow_the_formula():
    p = torch.tensor([0.5, 0.25, 0.9, 0.1, 0.3])
    batch = _batch([2, 3])  # row 0 promoted, row 1 suppressed
    got = completion_losses(p.log(), batch, torch.tensor([False, True]))
    want0 = -(math.log(0.5 + EPS) + math.log(0.25 + EPS))
    want1 = -(math.log(1 - 0.9 + EPS) + math.log(1 - 0.1 + EPS) + math.log(1 - 0.3 + EPS))
    torch.testing.assert_close(got, torch.tensor([want0, want1]))
    normed = completion_losses(p.log(), batch, torch.tensor([False, True]), normalize_by_length=True)
    torch.testing.assert_close(normed, torch.tensor([want0 / 2, want1 / 3]))


def test_token_logprobs_use_coldness():
    logits = torch.tensor([[1.0, 2.0, 3.0]])
    got = token_logprobs(logits, torch.tensor([2]), coldness=0.7)
    torch.testing.assert_close(got, torch.log_softmax(0.7 * logits, -1)[:, 2])


def test_clamp_operator_matches_its_formula():
    g = torch.Generator().manual_seed(0)
    x, v = torch.randn(2, 4, 8, generator=g), torch.randn(8, generator=g)
    mask = torch.tensor([[1, 1, 0, 1], [0, 1, 1, 1]], dtype=torch.float32)[..., None]
    sign = torch.tensor([1.0, -1.0])[:, None, None]
    got = apply_operator(x, v, mask, sign, "clamp")
    unit = v / v.norm()
    for b in range(2):
        for t in range(4):
            want = x[b, t] - (x[b, t] @ unit) * unit + sign[b, 0, 0] * v if mask[b, t] else x[b, t]
            torch.testing.assert_close(got[b, t], want)
    # the component along v is set to ±|v|, whatever it was
    torch.testing.assert_close((got[0, 0] @ unit), v.norm())
    torch.testing.assert_close(apply_operator(x, v, mask, sign, "add"), x + mask * sign * v)


def test_optimize_result_unpacks_and_lists_losses():
    v = SteeringVector({0: torch.ones(4)})
    res = OptimizeResult(v, [{"step": 0, "loss": 2.0, "norm": 1.0}, {"step": 1, "loss": 1.0, "norm": 1.0}])
    vec, history = res
    assert vec is v and res.losses == [2.0, 1.0] and history is res.history
