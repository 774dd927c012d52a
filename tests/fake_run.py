"""A small but complete run directory on a tiny model: real VectorSet and real generated samples, made-up curves."""

from __future__ import annotations

from pathlib import Path

import torch
from tiny import tiny_model

import steerscope as ss
from steerscope.io import write_csv, write_json, write_jsonl

PROMPTS = [("train", "the cat sat on"), ("heldout", "Tell me about the sea"), ("heldout", "once upon a time")]


def _png(path: Path, title: str) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(3, 2))
    ax = fig.add_subplot()
    ax.plot([0, 1, 2], [1.0, 0.5, 0.7])
    ax.set_title(title)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=60)


def make_run(path: Path, n_vectors: int = 4, method: str = "melbo", layer: int = 1, scales=(4.0,)) -> Path:
    """Write config, vectors (.safetensors + .csv), losses, samples (tiny-model generate), ortho, sweep,
    linearity and plots into ``path``."""
    m = tiny_model("llama")
    path.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(1)
    vs = ss.VectorSet({layer: torch.randn(n_vectors, m.d_model) * 3}, method=method, model_name=m.name,
                      model_type=m.model_type)
    vs.save(path / "vectors.safetensors")
    write_json(path / "config.json", {
        "method": method, "model_name": m.name, "model_type": m.model_type, "n_layers": m.n_layers,
        "d_model": m.d_model, "steerscope_version": ss.__version__, "created_at": "2024-01-01T00:00:00Z",
        "source_layer": layer, "target_layer": 2, "num_vectors": n_vectors, "lr": 0.01,
        "prompts": [p for _, p in PROMPTS]})
    norms = vs.norms().tolist()
    write_csv(path / "vectors.csv", [
        {"index": i, "norm": norms[i], "objective": 10.0 - i * 1.5, "kl_to_base": None if i == 0 else 0.1 * i}
        for i in range(n_vectors)])
    write_csv(path / "losses.csv", [{"vector": i, "step": s, "loss": 5.0 / (s + 1) + i}
                                    for i in range(n_vectors) for s in range(10)])
    # the real part: baseline and every vector on every prompt, one batched generate with per-row vectors
    rows = [(split, prompt, None, 0.0) for split, prompt in PROMPTS]
    rows += [(split, prompt, i, s) for i in range(n_vectors) for s in scales for split, prompt in PROMPTS]
    texts = ss.generate(m, [r[1] for r in rows], vectors=[None if r[2] is None else vs[r[2]] for r in rows],
                        scales=[r[3] for r in rows], max_new_tokens=8, chat=False)
    write_jsonl(path / "samples.jsonl", [{"vector": v, "prompt": p, "split": sp, "scale": s, "completion": t}
                                         for (sp, p, v, s), t in zip(rows, texts)])
    write_csv(path / "ortho.csv", [{"index": i, "norm": norms[i], "kl": 1.0 / (i + 1), "kl_moving_avg": 0.8 / (i + 1),
                                    "kl_rescaled": 0.5 / (i + 1)} for i in range(n_vectors)])
    write_json(path / "sweep.json", {"vector": 0, "scales": [-8, -4, 0, 4, 8], "coherence_window": [-4.0, 4.0],
                                     "threshold": 0.5})
    write_csv(path / "sweep.csv", [{"scale": s, "behaviour": s / 8, "coherence": 1 - abs(s) / 10}
                                   for s in (-8, -4, 0, 4, 8)])
    write_json(path / "linearity.json", {"score": 0.83, "layers": [0, 1, 2]})
    _png(path / "sweep.png", "sweep")
    _png(path / "linearity_heatmap.png", "linearity")
    _png(path / "plots" / "kl_by_vector.png", "kl")
    return path
