"""Exported adapters obey what vLLM's LoRA loader accepts (read from vLLM's source, vllm/lora/):

- ``peft_helper.py`` (PEFTHelper.from_dict / validate_legal): adapter_config.json must hold r, lora_alpha and
  target_modules; ``modules_to_save`` must be empty, ``use_dora`` false; r <= --max-lora-rank (default 16; we
  require r <= 8, the smallest common setting); scaling is lora_alpha / r (or / sqrt(r) with use_rslora).
- ``utils.py`` (parse_fine_tuned_lora_name): every tensor is ``[base_model.model.]MODULE.lora_A.weight`` or
  ``MODULE.lora_B.weight`` (or lora_embedding_A/B); anything else, a ``lora_B.bias`` included, is "unsupported LoRA
  weight" (LoRA bias support was removed; older releases needed --enable-lora-bias).
- ``lora_model.py`` (check_unexpected_modules): the last component of each module name must be one of the model's
  LoRA-capable linear layers (vLLM's module names, with packed qkv_proj / gate_up_proj expanded).

The rank1 export must pass every rule; the exact bias export is reported as breaking exactly the bias rule.
"""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open
from tiny import tiny_config, tiny_tokenizer

import steerscope as ss

# LoRA-capable linear layers of vLLM's implementation of each family (the names vLLM's loader compares against)
VLLM_LINEAR_MODULES = {
    "llama": {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"},
    "qwen2": {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"},
    "qwen3": {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"},
    "phi3": {"qkv_proj", "o_proj", "gate_up_proj", "down_proj"},
    "gpt2": {"c_attn", "c_proj", "c_fc"},
    "gpt_neox": {"query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"},
}
MAX_RANK = 8
CALIBRATION = [f"prompt number {i}: the quick brown fox {'jumps ' * (i % 4)}over the lazy dog" for i in range(10)]


def vllm_violations(adapter_dir, arch: str) -> list[str]:
    """Every rule of vLLM's LoRA loader the adapter directory breaks (empty when vLLM would load it)."""
    problems = []
    config = json.loads((adapter_dir / "adapter_config.json").read_text())
    for key in ("r", "lora_alpha", "target_modules"):
        if key not in config:
            problems.append(f"adapter_config.json lacks {key}")
    if config.get("modules_to_save"):
        problems.append("modules_to_save is set")
    if config.get("use_dora"):
        problems.append("use_dora is set")
    if config.get("r", 0) > MAX_RANK:
        problems.append(f"rank {config['r']} > {MAX_RANK}")
    if config.get("bias", "none") != "none" or config.get("lora_bias"):
        problems.append("adapter has a LoRA bias")
    modules: dict[str, set[str]] = {}
    with safe_open(str(adapter_dir / "adapter_model.safetensors"), framework="pt") as f:
        for name in f.keys():  # noqa: SIM118 (safe_open is not iterable)
            parts = name.split(".")
            if parts[-1] != "weight" or parts[-2] not in ("lora_A", "lora_B"):
                problems.append(f"unsupported LoRA weight {name}")
                continue
            module = ".".join(parts[2:-2] if name.startswith("base_model.model.") else parts[:-2])
            modules.setdefault(module, set()).add(parts[-2])
            shape = f.get_slice(name).get_shape()
            if (parts[-2] == "lora_A" and shape[0] != config.get("r")) or (
                    parts[-2] == "lora_B" and shape[1] != config.get("r")):
                problems.append(f"{name} has shape {shape}, not rank {config.get('r')}")
    for module, kinds in modules.items():
        if kinds != {"lora_A", "lora_B"}:
            problems.append(f"{module} lacks one of lora_A / lora_B")
        if module.rsplit(".", 1)[-1] not in VLLM_LINEAR_MODULES[arch]:
            problems.append(f"module {module} is not a LoRA-capable layer of vLLM's {arch}")
    targets = config.get("target_modules") or []
    if isinstance(targets, list) and set(targets) != set(modules):
        problems.append("target_modules differ from the modules in adapter_model.safetensors")
    return problems


def fresh(arch: str):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    config = tiny_config(arch)
    config._attn_implementation = "eager"
    return ss.wrap_model(AutoModelForCausalLM.from_config(config, dtype=torch.float32), tiny_tokenizer(), f"tiny-{arch}")


def vector(m, layers, site="resid_post"):
    g = torch.Generator().manual_seed(1)
    return ss.SteeringVector({layer: torch.randn(m.d_model, generator=g) for layer in layers}, site)


@pytest.mark.parametrize("arch", sorted(VLLM_LINEAR_MODULES))
def test_rank1_export_is_loadable_by_vllm(arch, tmp_path):
    m = fresh(arch)
    site = "resid_post"
    ss.export_lora(m, vector(m, [0, 2], site), tmp_path / "ad", method="rank1", scale=2.0,
                   calibration_prompts=CALIBRATION, max_new_tokens=0, evaluate=False, chat=False)
    assert vllm_violations(tmp_path / "ad", arch) == []
    config = json.loads((tmp_path / "ad" / "adapter_config.json").read_text())
    assert config["lora_alpha"] / config["r"] == 1.0 and not config.get("use_rslora")  # vLLM's scaling = ours


@pytest.mark.parametrize("site", ["mlp_out", "attn_out"])
def test_sublayer_sites_export_loadable_by_vllm(site, tmp_path):
    m = fresh("llama")
    ss.export_lora(m, vector(m, [1], site), tmp_path / "ad", method="rank1", calibration_prompts=CALIBRATION,
                   max_new_tokens=0, evaluate=False, chat=False)
    assert vllm_violations(tmp_path / "ad", "llama") == []


def test_bias_export_breaks_exactly_the_bias_rule(tmp_path):
    m = fresh("llama")
    ss.export_lora(m, vector(m, [1]), tmp_path / "ad", method="bias", evaluate=False, chat=False)
    problems = vllm_violations(tmp_path / "ad", "llama")
    assert problems and all("bias" in p for p in problems), problems
