"""Rank-1 LoRA export speed: the fit before issue 13 vs now, interleaved in one run (machine load hits both alike).

Both fit the same contrastive vector at resid_post[15] of the embedded SmolLM2 (scale 8, the 48 shipped
calibration prompts, 24 generated tokens) and choose between the MLP and attention projections:

- before: generate the fit and validation splits separately (batches of 16), then the full float64 fidelity
  measurement (steered + adapter forwards, per-token KL) once per candidate;
- now: ``export_lora(..., evaluate=False)``: one generate pass (batch 64) split into fit/validation rows, candidates
  compared by their error at the vector's site (forwards up to block 15 only).

Also checks that both choose the same module and that their read-out directions agree.

    OMP_NUM_THREADS=1 .venv/bin/python bench/export_speed.py [--pairs 2]  -> bench/results/export_speed.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

import steerscope as ss
from steerscope.export import lora_fit
from steerscope.export.lora_fit import Moments
from steerscope.export.peft_lora import _rank1_adapter, default_prompts, lora_targets

sys.path.insert(0, str(Path(__file__).parent))
from export_fidelity import contrastive

SCALE = 8.0


def fit_before(m, v) -> tuple[str, torch.Tensor]:
    """The pre-issue-13 rank-1 fit, written with the same primitives."""
    calibration = default_prompts("calibration")
    n_val = max(1, len(calibration) // 5)
    fit_b = lora_fit.token_batches(m, calibration[n_val:], v, SCALE, new_tokens=24, chat=True, batch_size=16)
    val_b = lora_fit.token_batches(m, calibration[:n_val], v, SCALE, new_tokens=24, chat=True, batch_size=16)
    targets = lora_targets(m, v, "rank1")[v.layers[0]]
    paths = [t.module_path for t in targets]
    dims = {p: lora_fit.module_dims(m.hf.get_submodule(p))[0] for p in paths}
    fit = {p: Moments(dims[p]) for p in paths}
    val = {p: Moments(dims[p]) for p in paths}
    for moments, batches in ((fit, fit_b), (val, val_b)):
        for batch in batches:
            inputs = lora_fit.capture_inputs(m, paths, batch, v, SCALE)
            for p in paths:
                moments[p].add(inputs[p][batch.keep])
    best, best_kl, best_b = None, float("inf"), None
    for t in targets:
        b, _, _ = lora_fit.fit_readout(fit[t.module_path], val[t.module_path])
        adapter = _rank1_adapter(t, v.directions[t.layer].double() * SCALE, b)
        kl = lora_fit.measure_fidelity(m, v, SCALE, [adapter], val_b, with_base=False)["kl_mean"]
        if kl < best_kl:
            best, best_kl, best_b = t.module_path, kl, b
    return best, best_b


def fit_now(m, v, out: Path) -> tuple[str, torch.Tensor]:
    res = ss.export_lora(m, v, out, method="rank1", scale=SCALE, evaluate=False)
    from safetensors.torch import load_file

    module = res.modules[v.layers[0]]
    a = load_file(str(out / "adapter_model.safetensors"))[f"base_model.model.{module}.lora_A.weight"][0]
    return module, a.double()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=int, default=2)
    args = parser.parse_args()
    m = ss.load_model()
    v = contrastive(m)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.pairs):
            t0 = time.perf_counter()
            module_before, b_before = fit_before(m, v)
            t1 = time.perf_counter()
            module_now, a_now = fit_now(m, v, Path(tmp) / f"now{i}")
            t2 = time.perf_counter()
            cos = float(torch.nn.functional.cosine_similarity(b_before, a_now, dim=0))
            rows.append({"before_seconds": t1 - t0, "now_seconds": t2 - t1, "speedup": (t1 - t0) / (t2 - t1),
                         "module_before": module_before, "module_now": module_now,
                         "readout_direction_cosine": cos})
            print(json.dumps(rows[-1]), flush=True)
    out = {"model": m.name, "layer": v.layers[0], "scale": SCALE, "threads": torch.get_num_threads(),
           "pairs": rows, "note": "fit only (evaluate=False); the held-out evaluation is the same code before and now"}
    (Path(__file__).parent / "results" / "export_speed.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
