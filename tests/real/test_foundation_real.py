"""The embedded SmolLM2-135M-Instruct: offline load, coherent generation, steering that shows up everywhere."""

import pytest
import torch

import steerscope as ss
from steerscope.generate import forward_kwargs, tokenize

pytestmark = pytest.mark.real


def test_loads_offline_with_expected_shape(real_model):
    assert (real_model.n_layers, real_model.d_model, real_model.model_type) == (30, 576, "llama")
    assert real_model.name == "SmolLM2-135M-Instruct"


def test_generates_coherent_text_and_a_large_random_vector_changes_it(real_model):
    prompts = ["What is the capital of France?", "Write one sentence about the sea."]
    base = ss.generate(real_model, prompts, max_new_tokens=24)
    assert "paris" in base[0].lower()
    words = base[1].split()
    assert len(words) >= 5 and len(set(words)) / len(words) > 0.5  # real words, not a loop of one token
    g = torch.Generator().manual_seed(0)
    v = ss.SteeringVector({8: torch.randn(real_model.d_model, generator=g)})
    v = v * (40.0 / v.norm())
    steered = ss.generate(real_model, prompts, vectors=v, max_new_tokens=24)
    assert steered != base


def test_steering_is_visible_in_hidden_states_after_a_recorded_forward(real_model):
    """DESIGN.md rule 7: transformers 5 installs its own hidden-state hooks at the first forward."""
    m = real_model
    ids, mask = tokenize(m, ["Hello there"])
    with torch.no_grad():
        base = m.hf(**forward_kwargs(ids, mask), output_hidden_states=True).hidden_states
        v = ss.SteeringVector({10: torch.randn(m.d_model)})
        with ss.steer(m, v, scale=3.0):
            steered = m.hf(**forward_kwargs(ids, mask), output_hidden_states=True).hidden_states
    torch.testing.assert_close(steered[10], base[10])
    torch.testing.assert_close(steered[11] - base[11], (3.0 * v.directions[10]).expand_as(base[11]),
                               atol=1e-4, rtol=1e-4)
