"""LoRA discovery loss terms: the one-pass computation equals a direct per-token computation of KL and NLL."""

import contextlib

import pytest
import torch
import torch.nn.functional as F
from reference.lora_stepwise import loss_terms_stepwise
from tiny import tiny_model

from steerscope.generate import forward_kwargs, tokenize
from steerscope.methods._lora_common import continuation_mask, loss_terms, sample

PROMPTS = ["the cat sat", "hi", "a longer prompt here"]


def perturbed_copy(arch):
    """A second tiny model with the same architecture and slightly different weights: a stand-in for Q."""
    import copy

    from steerscope.models.load import wrap_model

    m = tiny_model(arch)
    q = copy.deepcopy(m.hf)
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in q.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    return m, wrap_model(q, m.tokenizer, name="q")


class Swap:
    """Makes `model.hf` behave as P inside `base()` and as Q outside, like peft's disable_adapter()."""

    def __init__(self, m, p_hf, q_hf):
        self.m, self.p_hf, self.q_hf = m, p_hf, q_hf
        m.hf = q_hf

    @contextlib.contextmanager
    def base(self):
        self.m.hf = self.p_hf
        try:
            yield
        finally:
            self.m.hf = self.q_hf


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_loss_terms_match_direct_computation(arch):
    p, q = perturbed_copy(arch)
    ids, mask = tokenize(p, PROMPTS, chat=False)
    torch.manual_seed(0)
    seq, attn, cont = sample(q, ids, mask, max_new_tokens=6)
    # force an early end-of-sequence in one row so masking is exercised
    seq[1, ids.shape[1] + 2] = p.tokenizer.eos_token_id
    cont = continuation_mask(p, seq[:, ids.shape[1]:])
    attn = torch.cat([mask, cont], 1)
    assert cont[1].tolist() == [1, 1, 1, 0, 0, 0]

    swap = Swap(q, p.hf, q.hf)
    terms = loss_terms(q, seq, attn, cont, swap.base, alpha=1.1, beta=0.3)

    # direct: per row, unpadded, per token, full forward of each model
    kls, nlls, base_nlls = [], [], []
    for r in range(len(PROMPTS)):
        real = seq[r][attn[r].bool()]
        n_prompt = int(mask[r].sum())
        for t in range(n_prompt, len(real)):
            prefix = real[:t][None]
            with torch.no_grad():
                lp = F.log_softmax(p.hf(**forward_kwargs(prefix, None)).logits[0, -1], -1)
                lq = F.log_softmax(q.hf(**forward_kwargs(prefix, None)).logits[0, -1], -1)
            kls.append(float((lp.exp() * (lp - lq)).sum()))
            nlls.append(float(-lq[real[t]]))
            base_nlls.append(float(-lp[real[t]]))
    kl, nll = sum(kls) / len(kls), sum(nlls) / len(nlls)
    assert terms.tokens == len(kls)
    assert terms.kl.item() == pytest.approx(kl, rel=1e-4, abs=1e-6)
    assert terms.nll.item() == pytest.approx(nll, rel=1e-4)
    assert terms.base_nll.item() == pytest.approx(sum(base_nlls) / len(base_nlls), rel=1e-4)
    assert terms.loss.item() == pytest.approx(-1.1 * kl + 0.3 * nll, rel=1e-4, abs=1e-6)
    assert kl > 0


def test_stepwise_reference_equals_one_pass():
    p, q = perturbed_copy("llama")
    ids, mask = tokenize(p, PROMPTS, chat=False)
    torch.manual_seed(1)
    seq, attn, cont = sample(q, ids, mask, max_new_tokens=5)
    swap = Swap(q, p.hf, q.hf)
    a = loss_terms(q, seq, attn, cont, swap.base, alpha=1.1, beta=0.3)
    b = loss_terms_stepwise(q, seq, attn, cont, swap.base, alpha=1.1, beta=0.3)
    torch.testing.assert_close(a.loss, b.loss, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(a.kl, b.kl, atol=1e-6, rtol=1e-5)


def test_identical_models_have_zero_kl():
    m = tiny_model("llama")
    ids, mask = tokenize(m, PROMPTS, chat=False)
    seq, attn, cont = sample(m, ids, mask, max_new_tokens=4)
    terms = loss_terms(m, seq, attn, cont, contextlib.nullcontext, alpha=1.1, beta=0.3)
    assert abs(terms.kl.item()) < 1e-6
