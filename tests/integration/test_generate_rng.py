"""generate() seeds a forked RNG (issue 14): the caller's global RNG is untouched; sampling is reproducible."""

import torch
from tiny import tiny_model

import steerscope as ss


def test_generate_leaves_the_global_rng_alone_and_is_reproducible():
    m = tiny_model("llama")
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    a = ss.generate(m, ["hello", "hi"], do_sample=True, max_new_tokens=5, chat=False, seed=7)
    assert torch.equal(torch.rand(3), expected), "generate() reseeded the global RNG"
    assert a == ss.generate(m, ["hello", "hi"], do_sample=True, max_new_tokens=5, chat=False, seed=7)


def test_temperature_zero_sampling_is_greedy():
    m = tiny_model("llama")
    greedy = ss.generate(m, ["hello"], max_new_tokens=5, chat=False)
    assert ss.generate(m, ["hello"], do_sample=True, temperature=0.0, max_new_tokens=5, chat=False) == greedy
