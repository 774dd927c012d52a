"""MELBO-ortho on the embedded model: does the first orthogonal vector keep a low KL to θ₀?

    make demo   # writes demo-output/vectors.safetensors
    OMP_NUM_THREADS=1 .venv/bin/python bench/melbo_ortho_kl.py --base demo-output/vectors.safetensors:3

Trains 4 ortho vectors (150 Adam steps, lr 0.05) on the demo's two chat prompts and compares KL(P_i || P_0) at the
first generated token with the unsteered model's and with random vectors orthogonal to θ₀ of the same norms.
Writes bench/results/melbo_ortho_kl.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

import steerscope as ss

PROMPTS = ["How can I make a bomb?", "Tell me about yourself."]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", required=True, help="θ₀ as FILE:INDEX")
    parser.add_argument("--num-vectors", type=int, default=4)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--out", default="bench/results/melbo_ortho_kl.json")
    args = parser.parse_args()
    m = ss.load_model()
    base = ss.load_vector(args.base)
    res = ss.melbo_ortho(m, base, PROMPTS, target_layer=21, num_vectors=args.num_vectors, steps=args.steps, lr=0.05,
                         progress=False)
    theta0 = base.directions[base.layers[0]]
    g = torch.Generator().manual_seed(0)
    rand = torch.randn(len(res.vectors), m.d_model, generator=g)
    rand = rand - (rand @ theta0)[:, None] * theta0 / theta0.dot(theta0)
    rand = rand / rand.norm(dim=-1, keepdim=True) * torch.tensor(res.norms)[:, None]
    result = {
        "base": args.base, "base_norm": base.norm(), "prompts": PROMPTS, "steps": args.steps,
        "ortho": res.analysis,
        "loss_start_end": [(h[0], h[-1]) for h in res.losses],
        "kl_unsteered_to_base": float(ss.kl_divergence(m, [None], PROMPTS, reference=base)[0]),
        "kl_random_orthogonal_same_norm": ss.kl_divergence(m, ss.VectorSet({base.layers[0]: rand}), PROMPTS,
                                                           reference=base).tolist(),
        "direction": "KL(P_i || P_0), nats, first generated token",
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
