"""The default MELBO step rule (trust region with model angles, conjugate directions and per-vector stopping):
monotone, exactly orthonormal, frozen vectors leave the batch, the quadratic angle model is exact on quadratics."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from tiny import tiny_config, tiny_model, tiny_tokenizer

from steerscope.methods.melbo import MelboObjective, _init, _model_angle, train_block
from steerscope.orthogonal import extend_basis

PROMPTS = ["the cat sat on the mat", "a dog ran in the park!"]


def bf16_model():
    """A fresh tiny llama in bf16 (never the cached fp32 one)."""
    from transformers import AutoModelForCausalLM

    from steerscope.models.load import wrap_model

    torch.manual_seed(0)
    config = tiny_config("llama", 3)
    config._attn_implementation = "eager"
    hf = AutoModelForCausalLM.from_config(config, dtype=torch.float32).to(torch.bfloat16)
    return wrap_model(hf, tiny_tokenizer(), name="tiny-llama-bf16")


class Counting:
    """Wraps an objective and records the rows of every call."""

    def __init__(self, objective) -> None:
        self.objective, self.rows = objective, []

    def __getattr__(self, name):
        return getattr(self.objective, name)

    def __call__(self, thetas):
        self.rows.append(thetas.shape[0])
        return self.objective(thetas)


def models():
    return [("fp32", tiny_model("llama")), ("bf16", bf16_model())]


@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
def test_block_never_falls_and_stays_orthonormal(dtype):
    """A block of 6 trained against a basis of 3: every recorded curve is non-decreasing (the keep rule's 1e-6
    rounding allowance per step), rows are orthonormal at norm R and orthogonal to the basis."""
    m = dict(models())[dtype]
    obj = MelboObjective(m, PROMPTS, source_layer=0, target_layer=2, chat=False)
    radius, d = 3.0, m.d_model
    basis = extend_basis(None, _init(7, 3, d, None, 1.0))
    theta, history = train_block(obj, _init(1, 6, d, basis, radius), basis, radius=radius, steps=40, tol=1e-3)
    for curve in history:
        assert all(b >= a - 1e-6 * abs(a) for a, b in itertools.pairwise(curve))
        assert curve[-1] > curve[0]
    unit = theta / radius
    assert (unit @ unit.T - torch.eye(6)).abs().max() <= 1e-5
    assert (unit @ basis.T).abs().max() <= 1e-5
    torch.testing.assert_close(theta.norm(dim=-1), torch.full((6,), radius), atol=1e-5, rtol=1e-5)
    with torch.no_grad():  # the recorded final objectives are those of the returned vectors
        final = obj(theta)
    rtol = 1e-4 if dtype == "fp32" else 2e-2
    torch.testing.assert_close(final, torch.tensor([h[-1] for h in history]), rtol=rtol, atol=1e-6)


@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
def test_converged_vectors_leave_the_batch(dtype):
    """Per-vector early stop: once a row's own objective stops rising (tol over the patience window) it is not
    evaluated again and its vector does not change; the block still reaches the objective of a run to the cap."""
    m = dict(models())[dtype]
    obj = Counting(MelboObjective(m, PROMPTS, source_layer=0, target_layer=2, chat=False))
    radius, d, k = 3.0, m.d_model, 8
    init = _init(3, k, d, None, radius)
    _, history = train_block(obj, init, None, radius=radius, steps=200, tol=1e-3)
    assert obj.rows[0] == k and min(obj.rows) < k  # some rows stopped before the block did
    for curve in history:  # a frozen row's curve is flat from the step it stopped
        stopped = next((t for t in range(6, len(curve)) if curve[t] <= curve[t - 5] * (1 + 5e-4)), None)
        if stopped is not None:
            assert curve[-1] == pytest.approx(curve[stopped], rel=1e-4 if dtype == "fp32" else 2e-2)
    assert sum(obj.rows) < k * len(obj.rows)


def test_quadratic_angle_model_is_exact():
    """On f(θ) = θᵀAθ the model angle from f(θ), ∇f·d and one trial value is the great circle's maximiser."""
    torch.manual_seed(0)
    d, radius = 10, 2.0
    a = torch.randn(d, d)
    a = a @ a.T
    theta = torch.randn(d)
    theta = radius * theta / theta.norm()
    g = 2 * a @ theta
    direction = g - (g @ theta) / radius**2 * theta
    direction = direction / direction.norm()

    def f(phi):
        x = math.cos(phi) * theta + math.sin(phi) * radius * direction
        return x @ a @ x

    alpha = torch.tensor([0.3])
    best = _model_angle(f(0.0)[None], 0.5 * radius * (g @ direction)[None], f(0.3)[None], alpha)
    grid = torch.linspace(0, math.pi / 2, 20001)
    values = torch.stack([f(float(p)) for p in grid])
    assert float(best) == pytest.approx(float(grid[values.argmax()]), abs=1e-3)
    assert bool(torch.isnan(_model_angle(torch.tensor([1.0]), torch.tensor([-1.0]), torch.tensor([1.0]), alpha)))
