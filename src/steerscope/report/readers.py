"""Typed readers for the vector-finding runs: MELBO, MELBO-ortho and LoRA discovery.

Each reader knows the files and keys its producer writes (``methods/melbo.py``, ``methods/ortho.py``,
``methods/lora_discovery.py``) and nothing else.

Example:
    >>> run = load_run("runs/ortho-1")        # config.json method "melbo_ortho"
    >>> [r["kl"] for r in run.analysis][:2]
    [0.0083, 0.011]
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, ClassVar

from .data import Files, RunData, Sample, index, losses, number, numbers, samples, text

LOSS_COLUMNS = {"vector": index, "step": number, "loss": number}  # runs.save_vector_checkpoint


def _by_index(rows: list[dict]) -> dict[int, dict]:
    return {row.pop("index"): row for row in rows if row.get("index") is not None}


@dataclass
class MelboRun(RunData):
    """``ss.melbo``'s run directory: vectors.{safetensors,csv}, losses.csv, summary.json, radius_sweep.csv,
    samples.jsonl, plots/{loss_curves,objective_vs_index,radius_sweep}.png."""

    vector_rows: dict[int, dict] = field(default_factory=dict)  # vectors.csv: VECTOR_COLUMNS per index
    objectives: list[float | None] = field(default_factory=list)  # final objective per vector
    ratios: list[float | None] = field(default_factory=list)  # objective / random level
    heldout_kl: list[float | None] = field(default_factory=list)
    random_objective: float | None = None
    random_band: tuple[float, float] | None = None
    radius: float | None = None
    lr: float | str | None = None  # a number, or "trust_region"
    stop_reason: str | None = None
    radius_sweep: list[dict] = field(default_factory=list)  # radius, objective, random_objective, gain, chosen

    VECTOR_COLUMNS: ClassVar[dict] = {"index": index, "norm": number, "objective": number,
                                      "objective_vs_random": number, "heldout_kl": number}
    SWEEP_COLUMNS: ClassVar[dict] = {"radius": number, "objective": number, "random_objective": number,
                                     "gain": number, "chosen": lambda v: v in (True, "True")}

    def rows(self) -> dict[int, dict]:
        return self.vector_rows


def read_melbo(run: MelboRun, files: Files) -> MelboRun:
    run.vector_set = files.vectors()
    # heldout_kl=False leaves that column out
    run.vector_rows = _by_index(files.csv("vectors.csv", MelboRun.VECTOR_COLUMNS, optional=("heldout_kl",)))
    run.losses = losses(files.csv("losses.csv", LOSS_COLUMNS))
    run.samples = samples(files, "samples.jsonl")
    run.radius_sweep = files.csv("radius_sweep.csv", MelboRun.SWEEP_COLUMNS)
    summary = files.json_object("summary.json")
    where = "summary.json"
    run.objectives = files.get(summary, "objectives", numbers, where) or []
    run.ratios = files.get(summary, "objective_vs_random", numbers, where) or []
    run.heldout_kl = files.get(summary, "heldout_kl", numbers, where) or []
    run.random_objective = files.get(summary, "random_objective", number, where)
    band = files.get(summary, "random_band", numbers, where)
    run.random_band = (band[0], band[1]) if band and len(band) == 2 and None not in band else None
    run.radius = files.get(summary, "radius", number, where)
    run.lr = files.get(summary, "lr", lambda v: number(v) if text(v) is None else v, where)
    run.stop_reason = files.get(summary, "stop_reason", text, where)
    return run


@dataclass
class OrthoRun(RunData):
    """``ss.melbo_ortho``'s run directory: ortho.csv, vectors.{safetensors,csv}, base_vector.safetensors,
    losses.csv, summary.json, samples.jsonl, base_samples.jsonl, plots/{ortho_kl_norm,loss_curves}.png."""

    analysis: list[dict] = field(default_factory=list)  # ortho.csv: ORTHO_COLUMNS
    vector_rows: dict[int, dict] = field(default_factory=dict)
    base_vector: Any = None  # SteeringVector θ₀
    base_samples: list[Sample] = field(default_factory=list)  # θ₀'s own completions (vector 0 in that file)
    kl_direction: str | None = None
    base_norm: float | None = None
    kl_first10_mean: float | None = None

    ORTHO_COLUMNS: ClassVar[dict] = {"index": index, "norm": number, "kl": number, "kl_moving_avg": number,
                                     "kl_rescaled": number}
    VECTOR_COLUMNS: ClassVar[dict] = {"index": index, "norm": number, "kl_to_base": number, "kl_rescaled": number,
                                      "final_loss": number}

    def rows(self) -> dict[int, dict]:
        return self.vector_rows


def read_ortho(run: OrthoRun, files: Files) -> OrthoRun:
    from ..vector import SteeringVector

    run.vector_set = files.vectors()
    run.base_vector = files.read("base_vector.safetensors", SteeringVector.load)
    run.analysis = files.csv("ortho.csv", OrthoRun.ORTHO_COLUMNS)
    run.vector_rows = _by_index(files.csv("vectors.csv", OrthoRun.VECTOR_COLUMNS))
    run.losses = losses(files.csv("losses.csv", LOSS_COLUMNS))
    run.samples = samples(files, "samples.jsonl")
    run.base_samples = samples(files, "base_samples.jsonl")
    summary = files.json_object("summary.json")
    run.kl_direction = files.get(summary, "kl_direction", text, "summary.json")
    run.base_norm = files.get(summary, "base_norm", number, "summary.json")
    run.kl_first10_mean = files.get(summary, "kl_first10_mean", number, "summary.json")
    return run


@dataclass
class LoraAdapter:
    """One ``run_###/`` of a LoRA discovery run."""

    index: int
    steps: float | None = None
    updates: float | None = None
    stopped_by: str | None = None
    seed: float | None = None
    heldout: dict[str, float | None] = field(default_factory=dict)  # HELDOUT_KEYS
    train: list[dict] = field(default_factory=list)  # losses.csv: TRAIN_COLUMNS


@dataclass
class LoraDiscoveryRun(RunData):
    """``ss.discover_lora``'s directory: config.json, summary.json and ``run_###/`` with adapter/, losses.csv,
    losses.png, samples.jsonl (``base`` / ``adapted``) and summary.json. An adapter plays the part of a vector."""

    adapters: list[LoraAdapter] = field(default_factory=list)
    item: ClassVar[str] = "adapter"

    HELDOUT_KEYS: ClassVar[tuple] = ("kl", "nll", "base_nll", "base_ppl", "base_ppl_of_base_samples", "tokens")
    TRAIN_COLUMNS: ClassVar[dict] = {"step": number, "epoch": number, "loss": number, "kl": number, "nll": number,
                                     "base_nll": number, "tokens": number, "seconds": number}

    def rows(self) -> dict[int, dict]:
        return {a.index: {"steps": a.steps, "updates": a.updates, "stopped_by": a.stopped_by,
                          **{f"heldout_{k}": a.heldout.get(k) for k in self.HELDOUT_KEYS}} for a in self.adapters}


def read_lora_discovery(run: LoraDiscoveryRun, files: Files) -> LoraDiscoveryRun:
    for sub in sorted(run.path.glob("run_*")):
        match = re.fullmatch(r"run_(\d+)", sub.name)
        if not (match and sub.is_dir()):
            continue
        adapter = LoraAdapter(int(match.group(1)))
        summary = files.json_object(f"{sub.name}/summary.json")
        if summary is None:
            run.notes.append(f"{sub.name} has no readable summary.json: that run did not finish")
        where = f"{sub.name}/summary.json"
        adapter.steps = files.get(summary, "steps", number, where)
        adapter.updates = files.get(summary, "updates", number, where)
        adapter.stopped_by = files.get(summary, "stopped_by", text, where)
        adapter.seed = files.get(summary, "seed", number, where)
        heldout = files.get(summary, "heldout", lambda v: v if isinstance(v, dict) else None, where) or {}
        adapter.heldout = {k: number(heldout.get(k)) for k in LoraDiscoveryRun.HELDOUT_KEYS}
        adapter.train = files.csv(f"{sub.name}/losses.csv", LoraDiscoveryRun.TRAIN_COLUMNS)
        points = [(r["step"], r["loss"]) for r in adapter.train if r["step"] is not None and r["loss"] is not None]
        if points:
            run.losses[adapter.index] = points
        for row in files.jsonl(f"{sub.name}/samples.jsonl"):
            prompt, base, adapted = text(row.get("prompt")), text(row.get("base")), text(row.get("adapted"))
            if prompt is None or base is None or adapted is None:
                continue
            run.samples.append(Sample(vector=None, prompt=prompt, split="heldout", scale=None, completion=base))
            run.samples.append(Sample(vector=adapter.index, prompt=prompt, split="heldout", scale=None,
                                      completion=adapted))
        run.adapters.append(adapter)
    return run


@dataclass
class OneShotRun(RunData):
    """``ss.optimize_vector``'s result directory (``ss.write_run`` / ``steerscope optimize --out``):
    vector.safetensors, history.csv, summary.json, loss.png."""

    summary: dict = field(default_factory=dict)  # final_loss, stop_reason, steps, norm
    examples: list[dict] = field(default_factory=list)  # the training examples (config.json)

    HISTORY_COLUMNS: ClassVar[dict] = {"step": number, "loss": number, "promote_loss": number,
                                       "suppress_loss": number, "norm": number}


def read_one_shot(run: OneShotRun, files: Files) -> OneShotRun:
    from ..vector import SteeringVector, VectorSet

    run.vector_set = files.read("vector.safetensors", lambda path: VectorSet.from_vectors([SteeringVector.load(path)]))
    summary = files.json_object("summary.json") or {}
    run.summary = {k: summary.get(k) for k in ("final_loss", "stop_reason", "steps", "norm") if k in summary}
    history = files.csv("history.csv", OneShotRun.HISTORY_COLUMNS, optional=("promote_loss", "suppress_loss"))
    run.losses = {0: [(r["step"], r["loss"]) for r in history if r["step"] is not None and r["loss"] is not None]}
    examples = run.config.get("examples")
    run.examples = [e for e in examples if isinstance(e, dict)] if isinstance(examples, list) else []
    return run


READERS = {"melbo": (MelboRun, read_melbo), "melbo_ortho": (OrthoRun, read_ortho),
           "lora_discovery": (LoraDiscoveryRun, read_lora_discovery), "one_shot": (OneShotRun, read_one_shot)}
