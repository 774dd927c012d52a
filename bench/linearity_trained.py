"""Does the linearity score tell trained LoRAs' own vectors from controls? (issue 13, item 3)

1. Train N adapters with ``discover_lora`` on the embedded SmolLM2 (shipped honesty prompts; short runs).
2. Extract each adapter's vector with ``vector_from_lora`` (per_layer="increment") on training prompts.
3. Generate once on held-out prompts: unsteered, with each LoRA, with each extracted vector and with R random
   vectors per adapter (same per-layer norms).
4. Score every (adapter i, vector j) pairing, plus adapter i × its random controls, with three measures computed
   by ``linearity.score_texts`` from the same generations:
   - ``keywords``: the default linearity score (log-odds keyword summaries per batch → MiniLM → Hungarian);
   - ``batch_shift``: summariser-free: per-batch mean MiniLM embedding shift from the baseline, Hungarian-matched;
   - ``shift``: the embedding-shift cosine over all responses.
5. Per adapter and measure: the own vector's rank among its controls (the N − 1 other adapters' vectors and the R
   random vectors) as a permutation-style p-value p = (1 + #controls ≥ own) / (1 + #controls); across adapters
   the number of adapters whose own vector beats every control, with its binomial p-value under the null
   (each of the 1 + #controls candidates equally likely to be best). An adapter "reduces to a steering vector"
   when its own vector beats all controls on the shift measure and the vector's own-KL check passes (see JSON).

    OMP_NUM_THREADS=1 .venv/bin/python bench/linearity_trained.py --adapters 6 --steps 8 --lr 0.03
        -> bench/results/linearity_trained.json
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import steerscope as ss
from steerscope.data import load_prompts
from steerscope.evaluate.linearity import lora_active, random_like, score_texts

MEASURES = ("keywords", "batch_shift", "shift")


def binomial_tail(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p)."""
    return sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k, n + 1))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--adapters", type=int, default=6)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--lr", type=float, default=3e-2)
    parser.add_argument("--train-tokens", type=int, default=24)
    parser.add_argument("--prompts", type=int, default=24)
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--randoms", type=int, default=2)
    parser.add_argument("--runs-dir", default=None)
    args = parser.parse_args()
    m = ss.load_model()
    t0 = time.time()
    runs_dir = Path(args.runs_dir or tempfile.mkdtemp(prefix="lin_trained_"))
    res = ss.discover_lora(m, runs=args.adapters, max_steps=args.steps, batch_size=8, lr=args.lr,
                           max_new_tokens=args.train_tokens, eval_size=8, num_samples=2, out_dir=runs_dir,
                           progress=True)
    train_seconds = time.time() - t0
    adapters = [r.adapter_dir for r in res.runs]
    heldout = [r.heldout for r in res.runs]
    extract_prompts = load_prompts("honesty_train")[:12]
    vectors = [ss.vector_from_lora(m, a, extract_prompts, per_layer="increment", max_new_tokens=args.train_tokens)
               for a in adapters]
    prompts = load_prompts("honesty_heldout")[: args.prompts]
    n, k = len(prompts), args.adapters
    randoms = [[random_like(v, seed=100 * i + r) for r in range(args.randoms)] for i, v in enumerate(vectors)]
    rows = [None, *vectors, *(c for cs in randoms for c in cs)]
    t1 = time.time()
    texts = ss.generate(m, prompts * len(rows), vectors=[v for v in rows for _ in range(n)], scales=1.0,
                        max_new_tokens=args.tokens, batch_size=48, progress=True)
    by_row = [texts[i * n:(i + 1) * n] for i in range(len(rows))]
    baseline, vector_out = by_row[0], by_row[1:1 + k]
    random_out = [by_row[1 + k + i * args.randoms: 1 + k + (i + 1) * args.randoms] for i in range(k)]
    lora_out = []
    for a in adapters:
        with lora_active(m, a) as (lora_model, _):
            lora_out.append(ss.generate(lora_model, prompts, max_new_tokens=args.tokens, batch_size=48))
    gen_seconds = time.time() - t1

    per_adapter = []
    for i in range(k):
        others = [j for j in range(k) if j != i]
        controls = [vector_out[j] for j in others] + random_out[i]
        scored = score_texts(lora_out[i], vector_out[i], baseline, batches=args.batches, controls=controls)
        entry = {"adapter": i, "heldout": heldout[i], "vector_norms": [round(float(d.norm()), 3)
                                                                     for d in vectors[i].directions.values()],
                 "lora_identical_to_baseline": sum(a == b for a, b in zip(lora_out[i], baseline)),
                 "vector_identical_to_baseline": sum(a == b for a, b in zip(vector_out[i], baseline))}
        for measure, own_key, ctrl_key in (("keywords", "raw", "control_raw"),
                                           ("batch_shift", "batch_shift", "control_batch_shift"),
                                           ("shift", "shift", "control_shift")):
            own = scored[own_key]
            ctrl = scored[ctrl_key]
            other_vecs, rand = ctrl[: k - 1], ctrl[k - 1:]
            finite = [c for c in ctrl if math.isfinite(c)]
            entry[measure] = {"own": own, "other_adapters_vectors": other_vecs, "random_vectors": rand,
                              "p_value": (1 + sum(c >= own for c in finite)) / (1 + len(finite)),
                              "beats_all_controls": bool(math.isfinite(own) and all(own > c for c in finite))}
        entry["sample"] = {"prompt": prompts[0], "baseline": baseline[0], "lora": lora_out[i][0],
                           "vector": vector_out[i][0]}
        per_adapter.append(entry)
        print(json.dumps({m_: entry[m_] for m_ in ("adapter", *MEASURES)}), flush=True)

    null_p = 1.0 / (1 + (k - 1) + args.randoms)
    summary = {}
    for measure in MEASURES:
        wins = sum(e[measure]["beats_all_controls"] for e in per_adapter)
        own = [e[measure]["own"] for e in per_adapter]
        ctrl = [c for e in per_adapter for c in e[measure]["other_adapters_vectors"] + e[measure]["random_vectors"]]
        summary[measure] = {"adapters_whose_vector_beats_all_controls": wins, "of": k,
                            "binomial_p_value": binomial_tail(wins, k, null_p),
                            "mean_own": float(np.nanmean(own)), "mean_controls": float(np.nanmean(ctrl))}
    out = {"setting": {"adapters": k, "discover_lora_steps": args.steps, "lr": args.lr, "train_tokens": args.train_tokens,
                       "heldout_prompts": n, "batches": args.batches, "max_new_tokens": args.tokens,
                       "random_controls_per_adapter": args.randoms, "extract": "vector_from_lora increment, 12 "
                       "training prompts", "scale": 1.0, "threads": torch.get_num_threads()},
           "seconds": {"train": train_seconds, "generate": gen_seconds, "total": time.time() - t0},
           "null_probability_own_is_best": null_p, "summary": summary, "per_adapter": per_adapter}
    path = Path(__file__).parent / "results" / "linearity_trained.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
