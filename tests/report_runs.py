"""Run directories for the report tests, written by the real producers on tiny random models.

``produce_runs(root)`` makes one directory per run kind the report reads (MELBO, MELBO-ortho, sweep, transfer,
linearity, LoRA discovery) and returns each producer's result next to its directory, so tests can compare what
``load_run`` reads with what the producer returned. Cached per root: a test session builds them once (~13 s on 2 CPU cores).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tiny import tiny_model

import steerscope as ss

# markup in a prompt reaches the page through samples.jsonl: it must come out escaped
MARKUP = "<script>alert(1)</script>"
PROMPTS = [f"{MARKUP} the cat sat on", "Tell me about the sea", "once upon a time", "dogs run fast"]
HELDOUT = ["hello there", "what is up"]
LONG_PROMPT = "a long prompt " * 30  # 420 characters: the report folds it


@dataclass
class Produced:
    """A run directory and what its producer returned."""

    kind: str
    path: Path
    result: object


def char_embedder(texts):
    """Cheap deterministic embedder for linearity_score: letter counts."""
    out = np.zeros((len(texts), 27))
    for i, t in enumerate(texts):
        for ch in t.lower():
            out[i, ord(ch) - 97 if "a" <= ch <= "z" else 26] += 1
        out[i, 26] += 1e-3
    return out


@functools.cache
def produce_runs(root: Path) -> dict[str, Produced]:
    """Every run kind once under ``root`` (report=False: the tests write the reports themselves)."""
    m = tiny_model("llama")
    root.mkdir(parents=True, exist_ok=True)
    runs: dict[str, Produced] = {}
    melbo = ss.melbo(m, PROMPTS, source_layer=0, target_layer=2, num_vectors=3, steps=3, radius="auto", chat=False,
                     heldout_prompts=HELDOUT, sample_tokens=6, out_dir=root / "melbo", report=False, progress=False)
    runs["melbo"] = Produced("melbo", root / "melbo", melbo)
    ortho = ss.melbo_ortho(m, melbo.vectors[0], PROMPTS[:2], num_vectors=2, steps=3, chat=False, sample_tokens=6,
                           out_dir=root / "melbo_ortho", report=False, progress=False)
    runs["melbo_ortho"] = Produced("melbo_ortho", root / "melbo_ortho", ortho)
    v = melbo.vectors[0]
    sweep = ss.sweep(m, v, [PROMPTS[0], LONG_PROMPT], scales=[-2, 0, 2], completions=["the end", "the end"], max_new_tokens=6,
                     chat=False, out_dir=root / "sweep", progress=False)
    runs["sweep"] = Produced("sweep", root / "sweep", sweep)
    transfer = ss.evaluate_transfer(m, v, PROMPTS[:2], targets=["the end"], scales=[-1, 0, 1], max_new_tokens=6,
                                    chat=False, out_dir=root / "transfer", progress=False)
    runs["transfer"] = Produced("transfer", root / "transfer", transfer)
    lora = ss.discover_lora(m, PROMPTS, heldout_prompts=HELDOUT, runs=2, max_steps=2, batch_size=2, max_new_tokens=4,
                            lr=0.05, out_dir=root / "lora", chat=False, eval_size=2, num_samples=2, stop_kl=None,
                            progress=False)
    runs["lora_discovery"] = Produced("lora_discovery", root / "lora", lora)
    linearity = ss.linearity_score(m, lora.runs[0].adapter_dir, v, PROMPTS, batches=2, embedder=char_embedder,
                                   max_new_tokens=6, chat=False, out_dir=root / "linearity", progress=False)
    runs["linearity"] = Produced("linearity", root / "linearity", linearity)
    one_shot = ss.optimize_vector(m, ss.Example(PROMPTS[0], promote=["the end"], suppress=["no"]), layer=1,
                                  max_iters=3, chat=False, progress=False)
    runs["one_shot"] = Produced("one_shot", ss.write_run(one_shot, root / "one_shot"), one_shot)
    return runs


def report_runs(tmp_path_factory) -> dict[str, Produced]:
    """For a session fixture: every run kind, produced once per test session."""
    return produce_runs(tmp_path_factory.getbasetemp() / "report-runs")
