"""Short LoRA discovery on SmolLM2, then how well vectors extracted from the adapter reproduce its effect.

Trains one adapter (40 honesty prompts, batch 4, 16 tokens, lr 1e-2, stop_kl 0.5), extracts the vector with
per_layer="total" and "increment", and compares the mean MiniLM embedding shift (vs the unsteered base) of greedy
generations on 12 held-out prompts: adapter vs each vector (cosine, and the shift's size). A random vector with the
increment vector's per-layer norms is the control.

    .venv/bin/python bench/lora_vector_effect.py   ->  bench/results/lora_vector_effect.json
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch


def main() -> None:
    import steerscope as ss
    from steerscope.data import load_prompts
    from steerscope.evaluate.embed import cosine, load_embedder
    from steerscope.io import read_csv, read_json, write_json
    from steerscope.methods._lora_common import loaded_adapter

    m = ss.load_model()
    held = load_prompts("honesty_heldout")
    out_dir = Path(__file__).parent.parent / "tests" / "artifacts" / "lora_vector_effect"
    res = ss.discover_lora(m, load_prompts("honesty_train")[:40], heldout_prompts=held[:8], runs=1, lr=1e-2,
                           max_steps=10, stop_kl=0.5, batch_size=4, max_new_tokens=16, eval_size=8, num_samples=4,
                           out_dir=out_dir, seed=0, progress=False, resume=False)
    run = res.runs[0]
    vt = ss.vector_from_lora(m, run.adapter_dir, held[:8], max_new_tokens=16, per_layer="total")
    vi = ss.vector_from_lora(m, run.adapter_dir, held[:8], max_new_tokens=16, per_layer="increment")
    g = torch.Generator().manual_seed(0)
    rand = ss.SteeringVector({layer: torch.randn(m.d_model, generator=g) * d.norm() / m.d_model ** 0.5
                              for layer, d in vi.directions.items()})
    conds = [("base", None, 0.0), ("increment, all layers, x1", vi, 1.0), ("total, all layers, x1", vt, 1.0),
             ("total, all layers, x1/30", vt, 1 / 30), ("total, layer 15 only, x1", ss.SteeringVector(
                 {15: vt.directions[15]}), 1.0), ("random (increment norms), x1", rand, 1.0)]
    prompts = held[8:20]
    n = len(prompts)
    outs = ss.generate(m, [p for _ in conds for p in prompts], vectors=[c[1] for c in conds for _ in prompts],
                       scales=[c[2] for c in conds for _ in prompts], max_new_tokens=24, batch_size=36)
    with loaded_adapter(m, run.adapter_dir):
        lora = ss.generate(m, prompts, max_new_tokens=24, batch_size=36)
    embed = load_embedder()
    e_base = embed(outs[:n])
    lora_shift = (embed(lora) - e_base).mean(0)
    rows = []
    for i, (name, _, scale) in enumerate(conds[1:], 1):
        shift = (embed(outs[i * n:(i + 1) * n]) - e_base).mean(0)
        rows.append({"condition": name, "cosine_with_adapter_shift": cosine(lora_shift, shift),
                     "shift_norm": float(np.linalg.norm(shift)), "example": outs[i * n]})
        print(f"{name}: cos {rows[-1]['cosine_with_adapter_shift']:.3f}, shift {rows[-1]['shift_norm']:.3f}")
    summary = read_json(run.dir / "summary.json")
    write_json(Path(__file__).parent / "results" / "lora_vector_effect.json", {
        "model": m.name, "training": read_csv(run.dir / "losses.csv"), "run_summary": summary,
        "adapter_shift_norm": float(np.linalg.norm(lora_shift)), "conditions": rows,
        "examples": {"base": outs[0], "adapter": lora[0]},
        "vector_layer_norms": {"total": vt.layer_norms(), "increment": vi.layer_norms()},
    })


if __name__ == "__main__":
    main()
