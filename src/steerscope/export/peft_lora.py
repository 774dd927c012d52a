"""Export a steering vector as a standard PEFT LoRA adapter, so any engine that serves LoRA adapters serves it.

Two methods:

* ``bias`` (exact): a LoRA on the projection whose output enters the residual stream at the vector's site, with
  ``lora_A = 0`` and ``lora_B.bias = v / scaling`` (PEFT's ``lora_bias=True``): it adds exactly v at every token.
* ``rank1`` (no bias; what most servers accept): ``ΔW = scaling · a bᵀ`` with ``a = v / scaling`` and b fitted on
  calibration activations of the projection's input so that ``bᵀx ≈ 1`` for every token (see ``lora_fit``). For
  residual sites both the attention and the MLP output projection are tried; the one that reproduces the vector
  at its site best on a validation split is kept.

Site -> module (``model.arch``): ``resid_post[L]`` -> block L's MLP output projection (its output is the last
thing added to the residual stream in block L); ``resid_pre[L]`` -> the same for block L-1; ``mlp_out[L]`` /
``attn_out[L]`` -> block L's MLP / attention output projection. Families with post-sublayer norms (Gemma 2/3)
normalise the projection's output before adding it to the residual stream, so no LoRA there adds a constant to
``resid_*``: those are refused (their ``mlp_out``/``attn_out`` sites, which are before the norm, work).

The output directory holds ``adapter_config.json`` + ``adapter_model.safetensors`` (loadable with
``peft.PeftModel.from_pretrained``), ``README.md`` (method, layers, measured fidelity, servers), ``fidelity.json``
and the source vector as ``steerscope_vector.safetensors``.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..configs import configurable, renamed
from ..errors import ArchitectureError, InvalidArgumentError
from ..io import write_json
from ..models.load import SteerableModel
from ..vector import SteeringVector
from . import lora_fit
from .lora_fit import Adapter, Moments
from .lora_readme import render_readme

log = logging.getLogger(__name__)

METHODS = ("rank1", "bias")


@dataclass(frozen=True)
class Target:
    """A projection that can stand in for the vector at one layer."""

    layer: int  # vector layer
    module_path: str  # path in the HF model, e.g. "model.layers.10.mlp.down_proj"
    kind: str  # "mlp" | "attn"
    exact_site: bool  # a constant added to this module's output equals steering the vector's site


@dataclass
class LoraExport:
    """What ``export_lora`` wrote: directory, method, module per layer and the measured fidelity."""

    path: Path
    method: str
    modules: dict[int, str]
    fidelity: dict = field(default_factory=dict)


def default_prompts(split: str) -> list[str]:
    """The shipped prompts (``data/calibration_prompts.jsonl``) of one split: "calibration" or "heldout"."""
    from ..data import data_path
    from ..io import read_jsonl

    return [r["prompt"] for r in read_jsonl(data_path("calibration_prompts")) if r.get("split") == split]


def lora_targets(model, vector: SteeringVector, method: str) -> dict[int, list[Target]]:
    """Candidate projections per vector layer (exact ones first), or a clear error when none is faithful."""
    arch = model.arch
    site = vector.site
    if arch.post_norms and site in ("resid_post", "resid_pre"):
        raise InvalidArgumentError(
            f"{model.model_type} normalises each sublayer's output (post-sublayer norms) before adding it to the "
            f"residual stream, so no LoRA on its projections adds a constant to {site}. Export a vector at site "
            "mlp_out or attn_out, or ship this one with export_gguf / steer()")
    out: dict[int, list[Target]] = {}
    for layer in vector.layers:
        model.check_layer(layer)
        block = layer
        if site == "resid_pre":
            if layer == 0:
                raise InvalidArgumentError("resid_pre[0] is the embedding output: no block's projection writes "
                                           "there. Use resid_post or resid_pre[1] or later")
            block = layer - 1
        kinds = {"mlp_out": ["mlp"], "attn_out": ["attn"]}.get(site, ["mlp", "attn"])  # resid sites: both
        if method == "bias":
            kinds = kinds[:1]
        out[layer] = []
        for kind in kinds:
            proj = getattr(arch, f"{kind}_out_proj")  # mlp_out_proj | attn_out_proj
            if proj is None:
                raise ArchitectureError(
                    f"steerscope does not know the {kind} output projection of {model.model_type!r}; set "
                    f"{kind}_out_proj in steerscope.models.architectures.ARCHITECTURES[{model.model_type!r}]")
            path = f"{arch.layers}.{block}.{proj}"
            try:
                lora_fit.module_dims(model.hf.get_submodule(path))
            except (AttributeError, TypeError) as exc:
                raise ArchitectureError(f"{path} is not a Linear/Conv1D module PEFT can adapt ({exc})") from exc
            # for resid sites only the MLP projection is last in the block (GPT-NeoX's parallel residual makes the
            # attention projection exact too, but the KL comparison finds that by itself)
            out[layer].append(Target(layer, path, kind, exact_site=(kind == kinds[0])))
    return out


def _bias_adapter(model, target: Target, v: torch.Tensor) -> Adapter:
    d_in, d_out, _ = lora_fit.module_dims(model.hf.get_submodule(target.module_path))
    # cpu-ok: adapter tensors are built on the host and written to a file
    return Adapter(target.module_path, torch.zeros(1, d_in), torch.zeros(d_out, 1), bias=v.double(), layer=target.layer)


def _rank1_adapter(target: Target, v: torch.Tensor, b: torch.Tensor) -> Adapter:
    """``ΔW = a bᵀ`` with a = v (scaling 1), split as A = k·bᵀ, B = a/k with equal norms (fp16-friendly)."""
    v = v.double()
    k = math.sqrt(float(v.norm()) / max(float(b.norm()), 1e-30))
    return Adapter(target.module_path, (k * b)[None, :], (v / k)[:, None], layer=target.layer)


def _fit_rank1(model, vector, scale, targets, fit_batches, val_batches, progress: bool = True
               ) -> tuple[dict[int, Adapter], dict]:
    """Fit b for every candidate, then keep per layer the candidate that best reproduces the vector at its site.

    One early-stopped forward per calibration batch records every candidate's input; candidates are compared on
    the validation split by their RMS relative error at the vector's site (``lora_fit.candidate_site_errors``).
    """
    from tqdm.auto import tqdm

    paths = [t.module_path for ts in targets.values() for t in ts]
    dims = {p: lora_fit.module_dims(model.hf.get_submodule(p))[0] for p in paths}
    fit = {p: Moments(d) for p, d in dims.items()}
    val = {p: Moments(d) for p, d in dims.items()}  # the validation split
    for moments, batches in ((fit, fit_batches), (val, val_batches)):
        for batch in tqdm(batches, desc="calibration activations", disable=not progress):
            inputs = lora_fit.capture_inputs(model, paths, batch, vector, scale)
            for p in paths:
                moments[p].add(inputs[p][batch.keep])
    report, chosen = {}, {}
    for layer, ts in targets.items():
        v = vector.directions[layer].double() * scale
        layer_report, adapters = {}, {}
        for t in ts:
            fit_m, val_m = fit[t.module_path], val[t.module_path]
            b, ridge, scores = lora_fit.fit_readout(fit_m, val_m)
            adapters[t.kind] = _rank1_adapter(t, v, b)
            check = val_m if val_m.n else fit_m
            layer_report[t.kind] = {"module": t.module_path, "exact_site": t.exact_site, "ridge": ridge,
                                    "validation_mse_by_ridge": scores,
                                    "validation": {"rel_error_rms": math.sqrt(max(check.mse(b), 0.0))}}
        if len(ts) > 1:
            single = SteeringVector({layer: vector.directions[layer]}, vector.site)
            errors = lora_fit.candidate_site_errors(model, single, scale, {k: [a] for k, a in adapters.items()},
                                                    val_batches or fit_batches)
            for kind, err in errors.items():
                layer_report[kind]["validation"]["site_rel_error_rms"] = err
            best = min(errors, key=errors.get)
        else:
            best = ts[0].kind
        chosen[layer] = adapters[best]
        report[str(layer)] = {"chosen": best, "candidates": layer_report}
        log.info("layer %d: kept %s (validation %s)", layer, layer_report[best]["module"],
                 layer_report[best]["validation"])
    return chosen, report


# the Hub repository the embedded model (a dequantised Q4_1 GGUF of it) comes from
EMBEDDED_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"


def base_model_source(model) -> tuple[str, str | None]:
    """(what ``from_pretrained`` should load as the base: the Hub id or directory the model was loaded from,
    a Hub id to use elsewhere or None).

    transformers records the argument of ``from_pretrained`` as ``name_or_path``; for a GGUF file steerscope loads
    its converted cache directory, which resolves on this machine only, so the README also names the Hub id of the
    embedded model. Models built in memory (``from_config``) have no source: their display name is used.
    """
    from ..models.load import DEFAULT_MODEL_NAME

    source = str(getattr(model.hf, "name_or_path", "") or getattr(model.hf.config, "_name_or_path", "") or "")
    hub = EMBEDDED_HUB_ID if model.name == DEFAULT_MODEL_NAME else None
    if not source:
        return model.name, hub
    local = Path(source).expanduser()
    if source.startswith(("/", ".", "~")) and local.exists():
        source = str(local.resolve())
    return source, hub


def _save_adapter(model, adapters: dict[int, Adapter], method: str, out: Path) -> None:
    from peft import LoraConfig
    from safetensors.torch import save_file

    paths = [a.module_path for a in adapters.values()]
    LoraConfig(r=1, lora_alpha=1, lora_dropout=0.0, bias="none", lora_bias=(method == "bias"), task_type="CAUSAL_LM",
               target_modules=sorted(paths), inference_mode=True, base_model_name_or_path=base_model_source(model)[0],
               fan_in_fan_out=all(lora_fit.module_dims(model.hf.get_submodule(p))[2] for p in paths),
               ).save_pretrained(str(out))
    tensors = {f"base_model.model.{a.module_path}.{name}": t.float().contiguous() for a in adapters.values()
               for name, t in (("lora_A.weight", a.lora_A), ("lora_B.weight", a.lora_B), ("lora_B.bias", a.bias))
               if t is not None}
    save_file(tensors, out / "adapter_model.safetensors", metadata={"format": "pt"})


@configurable("export_lora", name="ExportConfig")
@renamed(new_tokens="max_new_tokens")
def export_lora(
    model: SteerableModel,
    vector: SteeringVector,
    out_dir: str | os.PathLike,
    *,
    method: str = "rank1",
    scale: float = 1.0,
    calibration_prompts: Sequence[str] | None = None,
    heldout_prompts: Sequence[str] | None = None,
    max_new_tokens: int = 24,
    chat: bool = True,
    batch_size: int = 64,
    evaluate: bool = True,
    progress: bool = True,
) -> LoraExport:
    """Write ``scale * vector`` as a PEFT LoRA adapter directory and measure how faithfully it reproduces steering.

    Args:
        model: the ``SteerableModel`` the vector was made for (the adapter targets its module names).
        vector: any site; multi-layer vectors give one module per layer.
        out_dir: adapter directory (replaced if it already holds an adapter).
        method: ``"rank1"`` (plain LoRA, fitted on calibration activations) or ``"bias"`` (exact, needs LoRA bias).
        scale: baked into the adapter.
        calibration_prompts: prompts whose activations fit b (rank1); default the shipped calibration split.
        heldout_prompts: prompts the reported fidelity is measured on; default the shipped held-out split.
        max_new_tokens: greedy tokens generated under the vector after each prompt, so statistics and fidelity also
            cover generated text (0: prompts only).
        chat: apply the chat template to prompts.
        batch_size: sequences per generate/forward pass (the default covers the shipped calibration set in one pass).
        evaluate: measure fidelity on the held-out prompts (README and fidelity.json report it).
        progress: a progress bar over the calibration activations.

    Returns:
        ``LoraExport`` with the directory, the module per layer and the fidelity numbers.

    Example:
        >>> res = ss.export_lora(m, v, "adapters/happy", method="rank1", scale=4.0)
        >>> res.fidelity["heldout"]["kl_mean"]
        0.003
        >>> peft_model = peft.PeftModel.from_pretrained(hf_model, "adapters/happy")
    """
    if method not in METHODS:
        raise InvalidArgumentError(f"unknown method {method!r}; choose rank1 (plain LoRA) or bias (exact)")
    scale = float(scale)
    if not math.isfinite(scale):
        raise InvalidArgumentError(f"scale must be a finite number, got {scale}")
    if max_new_tokens < 0:
        raise InvalidArgumentError(f"max_new_tokens must be 0 or more, got {max_new_tokens}")
    model.check_width(vector.d_model)
    targets = lora_targets(model, vector, method)
    heldout = list(heldout_prompts) if heldout_prompts is not None else default_prompts("heldout")

    def batches(prompts: Sequence[str]):
        return lora_fit.token_batches(model, prompts, vector, scale, new_tokens=max_new_tokens, chat=chat,
                                      batch_size=batch_size)

    fidelity: dict = {"method": method, "scale": scale, "site": vector.site, "model": model.name,
                      "max_new_tokens": max_new_tokens, "chat": chat}
    if method == "bias":
        adapters = {layer: _bias_adapter(model, ts[0], vector.directions[layer] * scale) for layer, ts in targets.items()}
    else:
        calibration = list(calibration_prompts) if calibration_prompts is not None else default_prompts("calibration")
        if len(calibration) < 2:
            raise InvalidArgumentError("rank1 export needs at least 2 calibration prompts (a few dozen is better)")
        n_val = max(1, len(calibration) // 5)  # a fifth of the prompts choose the ridge and the module
        # one generate pass over all calibration prompts; its first n_val sequences are the validation split
        val_batches, fit_batches = lora_fit.split_rows(batches(calibration), n_val)
        adapters, fidelity["layers"] = _fit_rank1(model, vector, scale, targets, fit_batches, val_batches, progress)
        fidelity["n_calibration_prompts"] = len(calibration)
    if evaluate:
        if not heldout:
            raise InvalidArgumentError("give at least one held-out prompt, or evaluate=False")
        fidelity["heldout"] = lora_fit.measure_fidelity(model, vector, scale, list(adapters.values()), batches(heldout))
        fidelity["n_heldout_prompts"] = len(heldout)
    modules = {layer: a.module_path for layer, a in adapters.items()}
    fidelity["modules"] = {str(k): v for k, v in modules.items()}

    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    old = out.with_name(f".{out.name}.old-{os.getpid()}")  # where an export being replaced waits
    try:
        _save_adapter(model, adapters, method, tmp)
        write_json(tmp / "fidelity.json", fidelity)
        vector.save(tmp / "steerscope_vector.safetensors")
        (tmp / "README.md").write_text(render_readme(model, vector, fidelity))
        # move the finished directory into place: an existing export there is replaced, any other content refused
        if out.exists():
            if any(out.iterdir()) and not (out / "adapter_config.json").exists():
                raise InvalidArgumentError(f"{out} exists and is not an adapter directory; choose another --out")
            os.replace(out, old)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old.exists() and not out.exists():  # the new export did not land: the previous one goes back
            os.replace(old, out)
        raise
    shutil.rmtree(old, ignore_errors=True)  # nothing there when out did not exist
    log.info("wrote %s adapter for layers %s to %s", method, list(modules), out)
    return LoraExport(out, method, modules, fidelity)


ExportConfig = export_lora.Config
