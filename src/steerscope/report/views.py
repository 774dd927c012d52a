"""What the report shows of each typed result: vectors, loss curves, the kind's per-index table columns and the
samples (``RunData``'s fields), taken from the result its producer's own ``load`` returned and the samples the run
layer wrote. ``generic`` is a directory without a loaded result (unfinished, damaged, an unknown method): whatever
the run layer's checkpoint holds.

Example:
    >>> run = load_run("runs/melbo-1")       # VIEWS["melbo"] filled run.rows from run.result
    >>> run.rows[0]["objective"] == run.result.objectives[0]
    True
"""

from __future__ import annotations

from ..io import read_csv
from ..vector import VectorSet
from .data import Files, RunData, Sample, loss_curves, number, sample


def _curves(losses: list[list[float]]) -> dict[int, list[tuple[float, float]]]:
    """A result's per-vector loss curves (one list per vector) as (step, loss) points, non-finite values left out."""
    return loss_curves([{"vector": i, "step": step, "loss": v} for i, curve in enumerate(losses)
                        for step, v in enumerate(curve)])


def _steps(history: list[dict]) -> list[tuple[float, float]]:
    """(step, loss) of a per-step table (one-shot's history, a LoRA run's losses.csv)."""
    points = [(number(row.get("step")), number(row.get("loss"))) for row in history]
    return sorted((s, v) for s, v in points if s is not None and v is not None)


def generic(run: RunData, files: Files) -> None:
    run.vector_set = files.vectors()
    run.losses = loss_curves(files.read("losses.csv", read_csv) or [])  # MELBO / ortho's checkpoint
    run.samples = files.samples("samples.jsonl")


def melbo(run: RunData, files: Files) -> None:
    res = run.result
    run.vector_set, run.losses = res.vectors, _curves(res.losses)
    run.rows = {i: {"objective": o, "objective_vs_random": r} for i, (o, r) in enumerate(zip(res.objectives,
                                                                                            res.ratios))}
    for i, kl in enumerate(res.heldout_kl):  # empty with heldout_kl=False
        run.rows.setdefault(i, {})["heldout_kl"] = kl
    run.samples = files.samples("samples.jsonl")


def melbo_ortho(run: RunData, files: Files) -> None:
    res = run.result
    run.vector_set, run.losses = res.vectors, _curves(res.losses)
    run.rows = {i: {"kl_to_base": row.get("kl"), "kl_rescaled": row.get("kl_rescaled")}
                for i, row in enumerate(res.analysis)}
    run.samples = files.samples("samples.jsonl")
    run.reference_samples = files.samples("base_samples.jsonl")


def lora_discovery(run: RunData, files: Files) -> None:
    """One adapter per finished ``run_###``: its summary.json's counts and held-out measures, its loss curve, and
    its held-out samples (the base model's completion is the baseline)."""
    run.item = "adapter"
    for adapter in run.result.runs:
        run.rows[adapter.index] = {**{k: adapter.summary.get(k) for k in ("steps", "updates", "stopped_by")},
                                   **{f"heldout_{k}": v for k, v in adapter.heldout.items()}}
        if points := _steps(adapter.losses):
            run.losses[adapter.index] = points
        for row in files.jsonl(f"{adapter.dir.name}/samples.jsonl"):
            pair = (sample(row, None, "base", "heldout"), sample(row, adapter.index, "adapted", "heldout"))
            if None not in pair:
                run.samples.extend(pair)
    finished = {adapter.dir.name for adapter in run.result.runs}  # the load skips a run without summary.json
    for unit in sorted(run.path.glob("run_[0-9][0-9][0-9]")):
        if unit.is_dir() and unit.name not in finished:
            run.notes.append(f"{unit.name} has no readable summary.json: that run did not finish")


def one_shot(run: RunData, files: Files) -> None:
    run.vector_set = VectorSet.from_vectors([run.result.vector])
    run.losses = {0: _steps(run.result.history)}


def _scale_samples(rows: list, completion_key: str) -> list[Sample]:
    """One vector's completions over scales (vector 0); scale 0 is its unsteered baseline."""
    found = (sample(row, None if number(row.get("scale")) == 0.0 else 0, completion_key)
             for row in rows if isinstance(row, dict))
    return [s for s in found if s is not None]


def sweep(run: RunData, files: Files) -> None:
    # the prompted conditions have their own section
    run.samples = _scale_samples([r for r in run.result.samples if isinstance(r, dict) and r.get("condition") is None],
                                 "response")


def transfer(run: RunData, files: Files) -> None:
    run.samples = _scale_samples(run.result.rows, "generation")


def linearity(run: RunData, files: Files) -> None:
    """Everything linearity shows is on the result (its own section)."""


VIEWS = {"generic": generic, "melbo": melbo, "melbo_ortho": melbo_ortho, "lora_discovery": lora_discovery,
         "one_shot": one_shot, "sweep": sweep, "transfer": transfer, "linearity": linearity}
