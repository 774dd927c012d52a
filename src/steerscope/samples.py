"""Baseline and steered completions for every vector of a run, generated in one batched pass per chunk."""

from __future__ import annotations

from pathlib import Path

from .generate import generate
from .io import write_jsonl
from .vector import VectorSet


def default_heldout_prompts() -> list[str]:
    """A few varied chat prompts shipped with steerscope (data/heldout_chat.jsonl)."""
    from .data import load_prompts

    return load_prompts("heldout_chat")


def sample_rows(model, vectors: VectorSet, prompts_by_split: dict[str, list[str]], *, scale: float = 1.0,
                max_new_tokens: int = 40, chat: bool = True, progress: bool = True) -> list[dict]:
    """Greedy completions: for every split and prompt, the baseline (vector None) and each vector at ``scale``.
    All rows go through ``generate`` with per-row vectors, so N vectors × M prompts are a few batched calls."""
    plan: list[tuple[str, str, int | None]] = []
    for split, prompts in prompts_by_split.items():
        for prompt in prompts:
            plan.append((split, prompt, None))
            plan.extend((split, prompt, i) for i in range(len(vectors)))
    row_vectors = [None if i is None else vectors[i] for _, _, i in plan]
    row_scales = [0.0 if i is None else scale for _, _, i in plan]
    texts = generate(model, [p for _, p, _ in plan], vectors=row_vectors, scales=row_scales,
                     max_new_tokens=max_new_tokens, chat=chat, progress=progress)
    return [{"vector": i, "prompt": p, "split": split, "scale": 0.0 if i is None else scale, "completion": text}
            for (split, p, i), text in zip(plan, texts)]


def write_samples(model, vectors: VectorSet, prompts_by_split: dict[str, list[str]], path: Path, **kwargs) -> Path:
    return write_jsonl(path, sample_rows(model, vectors, prompts_by_split, **kwargs))
