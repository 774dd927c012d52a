"""One-shot steering on the embedded SmolLM2: promotion, suppression and negation move log-probs the right way.

Short runs (a dozen Adam steps at lr 0.1) so the whole file stays well under a minute of CPU.
"""

import pytest

import steerscope as ss
from steerscope.data import load_prompts

pytestmark = pytest.mark.real

TRAIN = "Write a poem about cats."
LAYER = 8


def train_delta(m, vector, target):
    """Δ teacher-forced log p(target | TRAIN) when steered with the vector at scale 1."""
    res = ss.evaluate_transfer(
        m, vector, [TRAIN], targets=[target], scales=[1.0], do_generate=False, progress=False
    )
    return res.at(1.0)["mean_delta_logprob"]


@pytest.fixture(scope="module")
def promoted(real_model):
    ex = ss.Example(TRAIN, promote=["Sure, here is"])
    return ss.optimize_vector(real_model, [ex], layer=LAYER, lr=0.1, max_iters=12, progress=False)


def test_promotion_raises_target_logprob_on_training_prompt(real_model, promoted):
    assert promoted.final_loss < promoted.losses[0] - 2.0
    assert train_delta(real_model, promoted.vector, "Sure, here is") > 3.0  # nats, from ~ -10 unsteered
    assert all(p.grad is None for p in real_model.hf.parameters())


def test_suppression_lowers_target_logprob(real_model):
    ex = ss.Example(TRAIN, suppress=["In the realm"])  # a likely opening of the unsteered answer
    res = ss.optimize_vector(real_model, [ex], layer=LAYER, lr=0.1, max_iters=8, progress=False)
    assert res.final_loss < res.losses[0]
    assert train_delta(real_model, res.vector, "In the realm") < -1.0


def test_negation_reverses_the_effect_on_held_out_prompts(real_model, promoted):
    held_out = load_prompts("one_shot_heldout")[:8]
    res = ss.evaluate_transfer(
        real_model,
        promoted.vector,
        held_out,
        targets=["Sure, here is"],
        scales=[-1.0, 1.0],
        do_generate=False,
        progress=False,
    )
    plus, minus = res.at(1.0), res.at(-1.0)
    assert plus["mean_delta_logprob"] > 1.0 and minus["mean_delta_logprob"] < -1.0
    by_prompt = {}
    for row in res.rows:
        by_prompt.setdefault(row["prompt"], {})[row["scale"]] = row["delta_logprob"]
    assert sum(d[1.0] > 0 > d[-1.0] for d in by_prompt.values()) >= 6


def test_shared_prompt_packing_is_exact_on_the_real_model(real_model):
    # sdpa attention with a custom 4-D mask: the packed row must give the per-completion losses exactly
    ex = ss.Example(TRAIN, promote=["Sure, here is", "Here is a poem"], suppress=["In the realm"], positions="last:4")
    kw = {"layer": LAYER, "max_iters": 0, "init_norm": 8.0, "progress": False}
    packed = ss.optimize_vector(real_model, [ex], **kw)
    rows = ss.optimize_vector(real_model, [ex], share_prompt=False, **kw)
    assert packed.final_loss == pytest.approx(rows.final_loss, rel=1e-4)
