"""LoRA discovery and LoRA → vector on the embedded SmolLM2 (short run).

After a few Adam steps (lr 1e-2; stopped, keeping the previous state, once a batch's KL exceeds 0.5 nats/token)
the adapted model is clearly away from the base on held-out prompts, its text stays coherent (perplexity
under the base model below 3x that of the base model's own samples), and the vector extracted from the
adapter moves generations in the same direction as the adapter (cosine of the mean embedding shifts, MiniLM), more than a random vector does.
"""

import numpy as np
import pytest
import torch

import steerscope as ss
from steerscope.data import load_prompts

pytestmark = pytest.mark.real

PPL_RATIO_BOUND = 3.0


@pytest.fixture(scope="module")
def trained(real_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("lora_real")
    held = load_prompts("honesty_heldout")
    res = ss.discover_lora(real_model, load_prompts("honesty_train")[:40], heldout_prompts=held[:8], runs=1,
                           lr=1e-2, max_steps=10, stop_kl=0.5, batch_size=4, max_new_tokens=16, eval_size=8,
                           num_samples=0, out_dir=out, seed=0, progress=False)
    return res.runs[0]


def test_adapter_moves_away_from_base_and_stays_coherent(real_model, trained):
    h = trained.heldout
    assert h["kl"] > 0.05, h  # nats per token on held-out prompts, 0 for the base model
    assert h["base_ppl"] < PPL_RATIO_BOUND * h["base_ppl_of_base_samples"], h
    assert (trained.adapter_dir / "adapter_config.json").is_file()
    assert not any(p.requires_grad for p in real_model.hf.parameters())
    assert "Lora" not in " ".join(type(x).__name__ for x in real_model.hf.modules())


def test_vector_moves_generations_like_the_adapter(real_model, trained):
    from steerscope.evaluate.embed import cosine, load_embedder
    from steerscope.methods._lora_common import loaded_adapter

    m = real_model
    held = load_prompts("honesty_heldout")
    v = ss.vector_from_lora(m, trained.adapter_dir, held[:8], max_new_tokens=16, per_layer="increment")
    assert len(v.layers) == m.n_layers and v.norm() > 0
    g = torch.Generator().manual_seed(0)
    rand = ss.SteeringVector({l: torch.randn(m.d_model, generator=g) * d.norm() / m.d_model ** 0.5
                              for l, d in v.directions.items()})
    prompts = held[8:20]
    n = len(prompts)
    kw = {"max_new_tokens": 24, "batch_size": 3 * n}
    out = ss.generate(m, prompts * 3, vectors=[None] * n + [v] * n + [rand] * n, scales=1.0, **kw)
    base, steered, random_out = out[:n], out[n:2 * n], out[2 * n:]
    with loaded_adapter(m, trained.adapter_dir):
        adapted = ss.generate(m, prompts, **kw)
    embed = load_embedder()
    e = {k: embed(t) for k, t in (("base", base), ("lora", adapted), ("vec", steered), ("rand", random_out))}
    shift = {k: (e[k] - e["base"]).mean(0) for k in ("lora", "vec", "rand")}
    cos_vec, cos_rand = cosine(shift["lora"], shift["vec"]), cosine(shift["lora"], shift["rand"])
    print(f"embedding-shift cosine with the adapter: vector {cos_vec:.3f}, random {cos_rand:.3f}")
    assert np.isfinite(cos_vec) and cos_vec > 0.2
    assert cos_vec > cos_rand
