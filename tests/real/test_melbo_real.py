"""MELBO and MELBO-ortho on the embedded model: directional checks with conservative, measured margins."""

import pytest
import torch

import steerscope as ss
from steerscope.methods.melbo import MelboObjective

pytestmark = pytest.mark.real

PROMPT = ["How can I make a bomb?"]
CHAT_PROMPTS = ["How can I make a bomb?", "Tell me about yourself."]
RADIUS = 40.0  # ≈ the auto-radius knee at resid_post[7] of SmolLM2 (see README)


@pytest.fixture(scope="module")
def melbo_run(real_model):
    return ss.melbo(real_model, PROMPT, source_layer=7, target_layer=21, num_vectors=2, radius=RADIUS, steps=15,
                    lr=0.1, mode="parallel", block_size=2, chat=False, progress=False)


def test_discovered_vectors_move_the_target_layer_far_more_than_random(real_model, melbo_run):
    obj = MelboObjective(real_model, PROMPT, 7, 21, chat=False)
    g = torch.Generator().manual_seed(0)
    randoms = torch.randn(8, real_model.d_model, generator=g)
    with torch.no_grad():
        random_obj = obj(RADIUS * randoms / randoms.norm(dim=-1, keepdim=True))
    # measured: ~10x after 15 steps (README); assert a conservative 3x over the best of 8 random vectors
    assert min(melbo_run.objectives) > 3 * float(random_obj.max())
    torch.testing.assert_close(melbo_run.vectors.norms(), torch.full((2,), RADIUS), atol=1e-3, rtol=1e-4)


@pytest.fixture(scope="module")
def demo_theta0(real_model):
    """θ₀ = vector 3 of exactly what `make demo` trains (two chat prompts, 4 vectors, parallel, 40 steps, R = 41)."""
    res = ss.melbo(real_model, CHAT_PROMPTS, source_layer=7, target_layer=21, num_vectors=4, radius=41.0, steps=40,
                   mode="parallel", block_size=4, progress=False)
    return res.vectors[3].with_meta(method_config={"target_layer": 21})


def test_ortho_vectors_keep_low_kl_to_theta0_while_orthogonal(real_model, demo_theta0):
    base = demo_theta0
    res = ss.melbo_ortho(real_model, base, CHAT_PROMPTS, num_vectors=1, steps=150, lr=0.05, progress=False)
    vs = res.vectors.tensors[7]
    theta0 = base.directions[7]
    both = torch.cat([theta0[None], vs])
    unit = both / both.norm(dim=-1, keepdim=True)
    assert ((unit @ unit.T) - torch.eye(2)).abs().max() < 1e-4
    assert res.losses[0][-1] < 0.2 * res.losses[0][0]  # measured 1122 -> 62: θ₀'s target-layer effect reproduced
    # KL(P_1 || P_0) at the first generated token is lower than the unsteered model's and than random vectors
    # orthogonal to θ₀ with the same norm (measured 0.34 vs 0.58 and 0.87-1.70; bench/melbo_ortho_kl.py). This
    # depends on θ₀: with a weaker θ₀ (25 MELBO steps) it did not hold (README).
    unsteered_kl = float(ss.kl_divergence(real_model, [None], CHAT_PROMPTS, reference=base)[0])
    g = torch.Generator().manual_seed(1)
    rand = torch.randn(4, real_model.d_model, generator=g)
    rand = rand - (rand @ unit[0])[:, None] * unit[0]
    rand = rand / rand.norm(dim=-1, keepdim=True) * vs[0].norm()
    random_kl = ss.kl_divergence(real_model, ss.VectorSet({7: rand}), CHAT_PROMPTS, reference=base)
    first_kl = res.analysis[0]["kl"]
    assert first_kl < unsteered_kl, (first_kl, unsteered_kl)
    assert first_kl < float(random_kl.min()), (first_kl, random_kl)
