"""The README.md written into every exported adapter directory: method, modules, fidelity, how to serve it."""

from __future__ import annotations

from ..vector import SteeringVector


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return "n/a" if value is None else str(value)


SERVERS_BIAS = """\
**Serving a `bias` adapter: PEFT only.** The adapter stores `lora_B.bias` (PEFT `lora_bias=True`, PEFT >= 0.14).
PEFT / transformers load and run it unmerged (`PeftModel.from_pretrained`), and that is the only place it works:
PEFT cannot merge a LoRA bias into a projection without a bias (Llama-style `down_proj`: `merge_and_unload`
refuses it), vLLM removed its LoRA-bias
support, and llama.cpp's `convert_lora_to_gguf.py` rejects the `lora_B.bias` tensor. To serve a vector, export it
with `method="rank1"` (a plain LoRA) or as a llama.cpp control vector (`steerscope export gguf`, exact)."""

SERVERS_RANK1 = """\
**Serving a `rank1` adapter (the serving path).** It is a plain rank-1 LoRA (no bias, no extra tensors) on a
standard projection, so engines that serve PEFT LoRA adapters on these projections can load it (e.g. vLLM with
`--enable-lora`, SGLang, LoRAX, or llama.cpp after its `convert_lora_to_gguf.py`; only PEFT is tested here), and
PEFT can merge it. It is an approximation: the numbers above say how close it is."""


def render_readme(model, vector: SteeringVector, fidelity: dict) -> str:
    from .peft_lora import base_model_source

    method = fidelity["method"]
    source, hub = base_model_source(model)
    lines = [
        "# Steering vector exported as a LoRA adapter (steerscope)", "",
        f"- base model: `{model.name}` ({model.model_type}), loaded from `{source}`",
        (f"- vector: site `{vector.site}`, layers {vector.layers}, method `{vector.method}`, "
         f"scale baked in: {fidelity['scale']:g}"),
        f"- export method: **{method}** "
        + ("(exact: lora_A = 0, lora_B.bias = v, so the adapter adds v at every token)" if method == "bias"
           else "(rank-1 ΔW = a bᵀ with a = v and bᵀx ≈ 1 fitted on calibration activations)"),
        "", "| vector layer | module |", "| --- | --- |",
    ]
    lines += [f"| {layer} | `{module}` |" for layer, module in fidelity["modules"].items()]
    held = fidelity.get("heldout")
    if held:
        lines += [
            "",
            (f"## Measured fidelity ({fidelity.get('n_heldout_prompts')} held-out prompts, "
             f"{held['n_tokens']} tokens, {fidelity['max_new_tokens']} generated tokens per prompt)"),
            "",
            ("Relative error of the added vector per token is ‖added − v‖/‖v‖ at the adapted module (first token of "
             "each sequence reported apart); KL is next-token KL(vector-steered ‖ adapter-steered) per position."),
            "", "| metric | value |", "| --- | --- |",
            f"| relative error, mean | {_fmt(held['rel_error_mean'])} |",
            f"| relative error, worst token | {_fmt(held['rel_error_worst'])} |",
            f"| relative error, first token (mean) | {_fmt(held['rel_error_first_token_mean'])} |",
            f"| KL mean (nats) | {_fmt(held['kl_mean'])} |",
            f"| KL max | {_fmt(held['kl_max'])} |",
            f"| KL at the last prompt/generated token (mean) | {_fmt(held['kl_last_token_mean'])} |",
            f"| for scale: KL(vector-steered ‖ unsteered) mean | {_fmt(held.get('kl_vector_vs_unsteered_mean'))} |",
        ]
    if fidelity.get("layers"):
        lines += [
            "", "## Candidate modules (validation split of the calibration prompts)", "",
            "| layer | candidate | module | ridge | error at the site (RMS, relative) | rel. error of bᵀx (RMS) |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for layer, entry in fidelity["layers"].items():
            for kind, c in entry["candidates"].items():
                mark = " (kept)" if kind == entry["chosen"] else ""
                lines.append(f"| {layer} | {kind}{mark} | `{c['module']}` | {c['ridge']:g} | "
                             f"{_fmt(c['validation'].get('site_rel_error_rms'))} | "
                             f"{_fmt(c['validation'].get('rel_error_rms'))} |")
    lines += [
        "", "## Use", "",
        "`adapter_config.json` records the base model as `base_model_name_or_path`, so PEFT finds it by itself:", "",
        "```python",
        "from peft import AutoPeftModelForCausalLM",
        "model = AutoPeftModelForCausalLM.from_pretrained('THIS_DIRECTORY')   # loads the base, then the adapter",
        "```", "",
        "or with the base model loaded yourself:", "",
        "```python",
        "from peft import PeftModel",
        "from transformers import AutoModelForCausalLM",
        f"base = AutoModelForCausalLM.from_pretrained({source!r})",
        "model = PeftModel.from_pretrained(base, 'THIS_DIRECTORY')",
        "```", "",
    ]
    if hub is not None:
        lines += [(f"`{source}` is steerscope's local copy of the embedded model (the Q4_1 GGUF of `{hub}`, "
                   f"dequantised). On another machine use `{hub}` as the base: the module names are the same, the "
                   "weights differ by the quantisation, so the fidelity above holds only approximately there."), ""]
    lines += [SERVERS_BIAS if method == "bias" else SERVERS_RANK1, "",
              "`fidelity.json` holds every number above; `steerscope_vector.safetensors` is the source vector.", ""]
    return "\n".join(lines)
