"""Is a per-row batch that disagrees with separate calls a bug or bf16 batch numerics? (issue 11)

    OMP_NUM_THREADS=1 .venv/bin/python bench/batch_numerics.py

On the embedded SmolLM2, for fp32 and bf16: 8 prompts of different lengths, each with its own random vector
(norm 8 at resid_post[10]), greedy, 32 new tokens: one batched ``generate`` with per-row vectors vs 8 separate
calls. The control is the same comparison with no steering at all: if unsteered rows disagree just as often, the
cause is batching (left padding changes matmul shapes and so the reduction order), not the per-row steering. At
each first disagreement we record the separate run's top-1 − top-2 logit margin: a near-tie that rounding flips.
Writes bench/results/batch_numerics.json.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

import steerscope as ss
from steerscope.generate import tokenize

PROMPTS = ["Hi!", "What is the capital of France?", "Write one sentence about the sea.",
           "Give me advice on learning to cook.", "Explain photosynthesis to a child in two sentences.",
           "Name three prime numbers.", "Tell me a joke about computers.",
           "Describe the smell of rain on a summer evening, in detail."]
TOKENS, LAYER, NORM = 32, 10, 8.0


def vectors(m):
    out = []
    for i in range(len(PROMPTS)):
        d = torch.randn(m.d_model, generator=torch.Generator().manual_seed(i))
        out.append(ss.SteeringVector({LAYER: d / d.norm() * NORM}))
    return out


def first_margin(m, prompt: str, v, tokens_before: str) -> float:
    """Top-1 minus top-2 logit (fp32) of the separate run at the first disagreeing step."""
    ids, mask = tokenize(m, [prompt])
    cont = m.tokenizer(tokens_before, add_special_tokens=False, return_tensors="pt")["input_ids"].to(ids.device)
    full = torch.cat([ids, cont], 1)
    with torch.no_grad(), (ss.steer(m, v, scale=1.0) if v is not None else torch.enable_grad()):
        logits = m.hf(input_ids=full, attention_mask=torch.ones_like(full)).logits[0, -1].float()
    top = logits.topk(2).values
    return float(top[0] - top[1])


def compare(m, steered: bool) -> dict:
    vs = vectors(m) if steered else [None] * len(PROMPTS)
    batched = ss.generate(m, PROMPTS, vectors=vs, scales=1.0, max_new_tokens=TOKENS)
    separate = [ss.generate(m, [p], vectors=v, scales=1.0, max_new_tokens=TOKENS)[0] for p, v in zip(PROMPTS, vs)]
    rows = []
    for p, v, a, b in zip(PROMPTS, vs, batched, separate):
        if a == b:
            rows.append({"equal": True})
            continue
        common = 0
        while common < min(len(a), len(b)) and a[common] == b[common]:
            common += 1
        rows.append({"equal": False, "first_difference_char": common,
                     "margin_at_difference": first_margin(m, p, v, b[:common].rstrip())})
    return {"rows": len(rows), "equal_rows": sum(r["equal"] for r in rows), "detail": rows}


def main() -> None:
    torch.set_num_threads(1)
    result = {"tokens": TOKENS, "prompts": len(PROMPTS), "vector_norm": NORM, "layer": LAYER}
    for dtype in ("float32", "bfloat16"):
        m = ss.load_model(device="cpu", dtype=dtype)
        result[dtype] = {"steered_per_row": compare(m, True), "unsteered": compare(m, False)}
        print(dtype, {k: f'{v["equal_rows"]}/{v["rows"]}' for k, v in result[dtype].items()}, flush=True)
    out = Path("bench/results/batch_numerics.json")
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
