"""Evaluation on the embedded SmolLM2: sweeps, KL, linearity with a random LoRA, the MiniLM embedder, LocalJudge."""

import copy

import pytest
import torch

import steerscope as ss
from steerscope.generate import forward_kwargs, tokenize

pytestmark = pytest.mark.real

PROMPTS = ["Tell me about your favourite food.", "How do I learn to swim?", "Write a short poem about the sea.",
           "What is the capital of France?"]
LAYER = 10  # residual norm here is ~150 on these prompts: a unit vector at scale 300 is far outside any window


def unit_vector(m, seed=0):
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(m.d_model, generator=g)
    return ss.SteeringVector({LAYER: v / v.norm()})


def test_sweep_5_scales_4_prompts_and_extreme_scale_is_less_coherent(real_model, tmp_path):
    res = ss.sweep(real_model, unit_vector(real_model), PROMPTS, scales=[-300, -30, 0, 30, 300],
                   metrics=["count:\\?"], max_new_tokens=16, out_dir=tmp_path, progress=False)
    assert len(res.rows) == 5 and len(res.samples) == 20
    base = res.row(0)["perplexity"]
    extremes = [res.row(-300), res.row(300)]
    # an extreme scale may end every response at once (empty_rate 1, perplexity NaN); the others must read worse
    finite = [r["perplexity"] for r in extremes if r["perplexity"] == r["perplexity"]]
    assert finite and all(base < p for p in finite)
    assert not any(r["coherent"] for r in extremes)
    assert -300 < res.window[0] <= 0 <= res.window[1] < 300
    assert (tmp_path / "sweep.png").is_file()


def test_kl_grows_with_scale_and_is_zero_unsteered(real_model):
    v = unit_vector(real_model, seed=1)
    kl = ss.kl_divergence(real_model, [None, v, v, v], PROMPTS, scales=[1.0, 10.0, 40.0, 160.0])
    assert kl[0] == 0 and 0 < kl[1] < kl[2] < kl[3]


def test_minilm_embedder_offline():
    from steerscope.evaluate.embed import cosine_matrix, load_embedder, minilm_dir

    assert (minilm_dir() / "modules.json").is_file()
    e = load_embedder()(["a dog runs in the park", "a puppy plays outside", "quarterly tax filing deadline"])
    assert e.shape == (3, 384)
    sim = cosine_matrix(e, e)
    assert sim[0, 1] > sim[0, 2] and sim[0, 1] > sim[1, 2]


def test_linearity_with_random_lora(real_model, tmp_path):
    from peft import LoraConfig, get_peft_model

    m = real_model
    ids, mask = tokenize(m, PROMPTS[:1])
    with torch.no_grad():
        before = m.hf(**forward_kwargs(ids, mask)).logits
    torch.manual_seed(0)
    pm = get_peft_model(copy.deepcopy(m.hf), LoraConfig(r=4, target_modules=["down_proj"], layers_to_transform=[8, 9],
                                                        init_lora_weights=False))
    pm.save_pretrained(tmp_path / "adapter")
    del pm
    res = ss.linearity_score(m, tmp_path / "adapter", unit_vector(m, seed=2) * 40, PROMPTS + PROMPTS[::-1],
                             batches=2, max_new_tokens=16, out_dir=tmp_path / "lin", progress=False)
    assert 0.0 <= res.score <= 1.0 and res.similarity.shape == (2, 2)
    assert (tmp_path / "lin" / "linearity.json").is_file() and (tmp_path / "lin" / "linearity_heatmap.png").is_file()
    with torch.no_grad():
        after = m.hf(**forward_kwargs(ids, mask)).logits
    assert torch.equal(before, after)  # no PEFT wrapper left on the shared model
    assert not any("lora" in n for n, _ in m.hf.named_modules())


def test_local_judge_pairwise(real_model):
    from steerscope.evaluate.judge_tasks import pairwise_compare

    judge = ss.LocalJudge(real_model, max_new_tokens=8, attempts=2)
    res = pairwise_compare(judge, ["Greet me."] * 2, ["HELLO!!! WONDERFUL DAY!!!", "Hi!!! So happy!!!"],
                           ["Hello.", "Hi."], behaviour="excitement")
    assert res.n + res.n_missing == 2 and len(res.records) == 2
    assert all(r["winner"] in ("a", "b", None) for r in res.records)
    assert all((r["winner"] is None) == (r["answer"] is None) for r in res.records)
