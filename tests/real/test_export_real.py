"""Embedded SmolLM2: a rank-1 LoRA export of a contrastive vector reaches, through PEFT, the fidelity it reports."""

import json
import warnings

import pytest
import torch

import steerscope as ss
from steerscope.cli.main import main
from steerscope.export import lora_fit
from steerscope.export.peft_lora import default_prompts
from steerscope.generate import forward_kwargs, tokenize
from steerscope.hooks import capture

pytestmark = pytest.mark.real

LAYER, SCALE, NEW_TOKENS = 15, 8.0, 8
FRESH = ["Describe a trip to the mountains.", "What is your opinion of modern art?", "How was your day?"]


@pytest.fixture(scope="module")
def contrastive(real_model):
    """Mean difference of resid_post[15] between cheerful and gloomy sentences (a real, discovered direction)."""
    m = real_model
    pos = ["I am so happy today!", "What a wonderful, joyful day.", "I love everything about this."]
    neg = ["I am so sad today.", "What a terrible, miserable day.", "I hate everything about this."]

    def mean(prompts):
        ids, mask = tokenize(m, prompts)
        acts = capture(m, ids, mask, [LAYER])[LAYER]  # (B, T, D)
        return (acts * mask[..., None]).sum((0, 1)) / mask.sum()

    return ss.SteeringVector({LAYER: mean(pos) - mean(neg)}, model_type=m.model_type, model_name=m.name,
                             method="contrastive")


@torch.no_grad()
def peft_kl(m, v, adapter_dir, batches):
    """Mean next-token KL(vector-steered || PEFT-loaded adapter) and KL(vector-steered || unsteered)."""
    from peft import PeftModel

    p_rows, base_rows = [], []
    for b in batches:
        kw, real = forward_kwargs(b.input_ids, b.attention_mask), b.attention_mask.bool()
        with ss.steer(m, v, SCALE):
            p_rows.append(m.hf(**kw).logits[real])
        base_rows.append(m.hf(**kw).logits[real])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        peft_model = PeftModel.from_pretrained(m.hf, str(adapter_dir))
    try:  # the session's model is shared: always take the adapter out again
        q_rows = [peft_model(**forward_kwargs(b.input_ids, b.attention_mask)).logits[b.attention_mask.bool()]
                  for b in batches]
    finally:
        peft_model.unload()
    kl = torch.cat([lora_fit.kl_rows(p, q) for p, q in zip(p_rows, q_rows)])
    base = torch.cat([lora_fit.kl_rows(p, q) for p, q in zip(p_rows, base_rows)])
    return float(kl.mean()), float(base.mean())


def test_rank1_export_reaches_reported_fidelity(real_model, contrastive, tmp_path):
    m = real_model
    heldout = default_prompts("heldout")[:6]
    res = ss.export_lora(m, contrastive, tmp_path / "ad", method="rank1", scale=SCALE,
                         calibration_prompts=default_prompts("calibration")[:16], heldout_prompts=heldout,
                         max_new_tokens=NEW_TOKENS)
    held = res.fidelity["heldout"]
    print("\nreal rank1 fidelity:", json.dumps({"modules": res.modules, **held,
                                                "chosen": res.fidelity["layers"][str(LAYER)]["chosen"]}))
    # the adapter is far closer to the vector-steered model than the unsteered model is
    assert held["kl_mean"] < 0.05 * held["kl_vector_vs_unsteered_mean"]
    assert held["rel_error_mean"] < 0.2
    # loaded through PEFT, on the same held-out tokens, it measures what it reported
    batches = lora_fit.token_batches(m, heldout, contrastive, SCALE, new_tokens=NEW_TOKENS, chat=True, batch_size=16)
    kl, _ = peft_kl(m, contrastive, tmp_path / "ad", batches)
    assert kl == pytest.approx(held["kl_mean"], rel=0.05, abs=1e-6)
    # and on prompts it never saw (prompt tokens only), it stays that close
    fresh = [lora_fit.TokenBatch(*tokenize(m, FRESH))]
    kl_fresh, base_fresh = peft_kl(m, contrastive, tmp_path / "ad", fresh)
    print("fresh prompts: KL(vector || adapter)", kl_fresh, "KL(vector || unsteered)", base_fresh)
    assert kl_fresh < 0.05 * base_fresh


def test_cli_bias_and_gguf_on_the_embedded_model(contrastive, tmp_path, capsys):
    path = tmp_path / "v.safetensors"
    contrastive.save(path)
    assert main(["export", "lora", str(path), "--out", str(tmp_path / "ad"), "--method", "bias", "--no-evaluate"]) == 0
    config = json.loads((tmp_path / "ad" / "adapter_config.json").read_text())
    assert config["target_modules"] == [f"model.layers.{LAYER}.mlp.down_proj"] and config["lora_bias"] is True
    assert main(["export", "gguf", str(path), "--out", str(tmp_path / "v.gguf"), "--scale", str(SCALE)]) == 0
    back = ss.import_gguf(tmp_path / "v.gguf")
    assert back.layers == [LAYER]  # llama.cpp's direction.15 = output of block 15 = our resid_post[15]
    torch.testing.assert_close(back.directions[LAYER], contrastive.directions[LAYER] * SCALE)
