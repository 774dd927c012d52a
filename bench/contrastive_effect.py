"""Effect of the shipped happy/sad contrastive vector (CAA mean difference and PCA) on SmolLM2 generations.

Sentiment is read with the shipped MiniLM embedder: score = cos(text, "I feel happy and joyful.") −
cos(text, "I feel sad and miserable."), averaged over neutral prompts; greedy decoding, one batched generate.

    .venv/bin/python bench/contrastive_effect.py [--layer 12] [--scales -4,0,4,8]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

PROMPTS = ["Describe your morning.", "Write a short note to a neighbour.", "Tell me about the weather today.",
           "What did you do last weekend?", "Describe a walk in the park.", "Write two sentences about Mondays."]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--layer", type=int, default=12)
    parser.add_argument("--scales", default="-4,0,4,8")
    parser.add_argument("--max-new-tokens", type=int, default=40)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "contrastive_effect.json"))
    args = parser.parse_args()

    import steerscope as ss
    from steerscope.data import load_pairs
    from steerscope.evaluate.embed import load_embedder
    from steerscope.io import write_json

    m = ss.load_model()
    pairs = load_pairs("contrastive_happy_sad")
    scales = [float(s) for s in args.scales.split(",")]
    embed = load_embedder()
    anchors = embed(["I feel happy and joyful.", "I feel sad and miserable."])
    result = {"model": m.name, "layer": args.layer, "pairs": len(pairs), "prompts": PROMPTS,
              "max_new_tokens": args.max_new_tokens, "methods": {}}
    for method in ("mean_diff", "pca"):
        v = ss.contrastive_vector(m, pairs, layers=[args.layer], method=method)
        rows_p = [p for _ in scales for p in PROMPTS]
        rows_s = [s for s in scales for _ in PROMPTS]
        outs = ss.generate(m, rows_p, vectors=v, scales=rows_s, max_new_tokens=args.max_new_tokens,
                           batch_size=len(rows_p))
        e = embed(outs)
        score = e @ anchors[0] - e @ anchors[1]  # (n,)
        per_scale = {}
        for i, s in enumerate(scales):
            chunk = slice(i * len(PROMPTS), (i + 1) * len(PROMPTS))
            per_scale[str(s)] = {"sentiment_score": float(np.mean(score[chunk])), "example": outs[chunk][0]}
        result["methods"][method] = {"vector_norm": v.norm(), "scales": per_scale}
        print(method, {s: round(d["sentiment_score"], 3) for s, d in per_scale.items()})
    write_json(args.out, result)


if __name__ == "__main__":
    main()
