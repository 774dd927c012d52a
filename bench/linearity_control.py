"""Does the linearity score tell an extracted vector from a random one? Side by side in one run.

For one LoRA adapter (``--adapter DIR``; default: a random-init rank-4 LoRA on the MLP output of layers 8-11 of
the embedded model, made here), extract its vector with ``vector_from_lora`` (per_layer="increment"), then score
``linearity_score`` for (a) that vector and (b) a random vector with the same per-layer norms. Writes
bench/results/linearity_control.json.

    python bench/linearity_control.py [--adapter DIR] [--prompts 24] [--batches 4] [--tokens 32]
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time
from pathlib import Path

import torch

import steerscope as ss
from steerscope.io import write_json

PROMPTS = [
    "Tell me about your favourite food.", "How do I learn to swim?", "Write a short poem about the sea.",
    "What is the capital of France?", "Give me three tips for better sleep.", "Describe a rainy day in a city.",
    "What should I pack for a weekend trip?", "Explain how a bicycle works.", "Write a haiku about winter.",
    "How do plants make food?", "What is a good name for a cat?", "Tell me a fun fact about space.",
    "How can I be more productive?", "Describe your ideal weekend.", "What is the best way to learn a language?",
    "Write a thank-you note to a teacher.", "Why is the sky blue?", "Suggest a healthy breakfast.",
    "How do I make a paper plane?", "What makes a good friend?", "Describe the taste of chocolate.",
    "How do I start running?", "What are clouds made of?", "Write a short story opening about a dragon.",
]


def random_lora(m, out: Path) -> Path:
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    pm = get_peft_model(copy.deepcopy(m.hf), LoraConfig(r=4, target_modules=["down_proj"],
                                                        layers_to_transform=[8, 9, 10, 11], init_lora_weights=False))
    pm.save_pretrained(out)
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--adapter", default=None)
    p.add_argument("--prompts", type=int, default=24)
    p.add_argument("--batches", type=int, default=4)
    p.add_argument("--tokens", type=int, default=32)
    args = p.parse_args()
    m = ss.load_model()
    prompts = PROMPTS[: args.prompts]
    tmp = Path(tempfile.mkdtemp(prefix="linctl_"))
    adapter = Path(args.adapter) if args.adapter else random_lora(m, tmp / "adapter")
    t0 = time.time()
    vec = ss.vector_from_lora(m, adapter, prompts[: len(prompts) // 2], per_layer="increment",
                              max_new_tokens=args.tokens)
    g = torch.Generator().manual_seed(1)
    control = ss.SteeringVector({layer: torch.randn(t.shape, generator=g) * t.norm() / t.shape[0] ** 0.5
                                 for layer, t in vec.directions.items()})
    held_out = prompts[len(prompts) // 2:] + prompts[: len(prompts) // 2]  # all prompts, held-out half first
    results = {}
    for name, v in (("extracted", vec), ("random_same_norms", control)):
        t = time.time()
        res = ss.linearity_score(m, adapter, v, held_out, batches=args.batches, max_new_tokens=args.tokens,
                                 out_dir=tmp / name, progress=False)
        results[name] = {"score": res.score, "raw_score": res.raw_score,
                         "embedding_shift_cosine": res.embedding_shift_cosine, "seconds": time.time() - t,
                         "lora_summaries": res.lora_summaries, "vector_summaries": res.vector_summaries}
        print(name, round(res.score, 3), round(res.embedding_shift_cosine, 3))
    write_json(Path(__file__).parent / "results" / "linearity_control.json", {
        "adapter": str(args.adapter or "random-init rank-4 LoRA, down_proj of layers 8-11, seed 0"),
        "n_prompts": len(held_out), "batches": args.batches, "max_new_tokens": args.tokens,
        "vector_layers": vec.layers, "total_seconds": time.time() - t0, "results": results,
        "command": "python bench/linearity_control.py " + " ".join(f"--{k} {v}" for k, v in vars(args).items()
                                                                  if v is not None),
    })


if __name__ == "__main__":
    main()
