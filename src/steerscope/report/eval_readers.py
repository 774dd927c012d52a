"""Typed readers for the evaluations: scale sweep, transfer and linearity.

These producers write no ``config.json``; their settings are the ``config`` object inside their JSON file, and
``load_run`` recognises them by that file's exact name (``sweep.json``, ``transfer.json``, ``linearity.json``).

Example:
    >>> run = load_run("runs/sweep-1")
    >>> run.window, run.best_scale, run.scale_rows[0]["scale"]
    ((-4.0, 4.0), 4.0, -8.0)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from .data import Files, RunData, Sample, index, number, numbers, text


def _value(value):
    """A cell of a result row: a bool, a finite number or text as is; NaN, null and anything else None."""
    if isinstance(value, (bool, str)):
        return value
    return number(value)


def _rows(files: Files, obj: dict | None, key: str, where: str, columns: tuple[str, ...] | None = None) -> list[dict]:
    """A list of result rows (dicts). With ``columns`` exactly those keys; without, every key (a sweep's columns
    are the metrics the user chose) with scalar values."""
    rows = files.get(obj, key, lambda v: v if isinstance(v, list) else None, where) or []
    good = [r for r in rows if isinstance(r, dict)]
    if len(good) < len(rows):
        files.warn(f"{where}: {len(rows) - len(good)} entries of {key} are not objects; they are left out")
    if columns is not None:
        return [{c: _value(r.get(c)) for c in columns} for r in good]
    return [{str(k): _value(v) for k, v in r.items() if not isinstance(v, (dict, list))} for r in good]


def _settings(run: RunData, files: Files, obj: dict | None, where: str) -> dict:
    settings = files.get(obj, "config", lambda v: v if isinstance(v, dict) else None, where) or {}
    if not run.config:  # the producer's settings stand in for config.json
        run.config = dict(settings)
    return settings


@dataclass
class SweepRun(RunData):
    """``ss.sweep``'s directory: sweep.json (rows, window, best_scale, tolerance, objective, maximize, config,
    prompt_rows, prompting_comparison), sweep.csv, sweep_prompted.csv, samples.jsonl, sweep.png."""

    scale_rows: list[dict] = field(default_factory=list)  # scale, behaviour metrics, perplexity, ..., coherent
    window: tuple[float, float] | None = None
    best_scale: float | None = None
    tolerance: dict[str, float | None] = field(default_factory=dict)
    objective: str | None = None
    maximize: bool = True
    prompt_rows: list[dict] = field(default_factory=list)  # "prompted" and "prompted+steered" conditions
    prompting_comparison: dict | None = None
    prompted_samples: list[dict] = field(default_factory=list)  # samples.jsonl rows with a "condition"


def read_sweep(run: SweepRun, files: Files) -> SweepRun:
    data = files.json_object("sweep.json")
    where = "sweep.json"
    _settings(run, files, data, where)
    run.scale_rows = _rows(files, data, "rows", where)
    window = files.get(data, "window", numbers, where)
    run.window = (window[0], window[1]) if window and len(window) == 2 and None not in window else None
    run.best_scale = files.get(data, "best_scale", number, where)
    tolerance = files.get(data, "tolerance", lambda v: v if isinstance(v, dict) else None, where) or {}
    run.tolerance = {str(k): number(v) for k, v in tolerance.items()}
    run.objective = files.get(data, "objective", text, where)
    run.maximize = files.get(data, "maximize", lambda v: v if isinstance(v, bool) else None, where) is not False
    run.prompt_rows = _rows(files, data, "prompt_rows", where)
    comparison = files.get(data, "prompting_comparison", lambda v: v if isinstance(v, dict) else None, where)
    run.prompting_comparison = {str(k): _value(v) for k, v in comparison.items()} if comparison else None
    for row in files.jsonl("samples.jsonl"):
        prompt, response, scale = text(row.get("prompt")), text(row.get("response")), number(row.get("scale"))
        if prompt is None or response is None:
            continue
        if row.get("condition") is not None:
            run.prompted_samples.append({"condition": text(row.get("condition")), "scale": scale, "prompt": prompt,
                                         "response": response})
            continue
        # one vector swept over scales: scale 0 is its unsteered baseline
        run.samples.append(Sample(vector=None if scale == 0.0 else 0, prompt=prompt, split="", scale=scale,
                                  completion=response))
    return run


@dataclass
class TransferRun(RunData):
    """``ss.evaluate_transfer``'s directory: transfer.json (summary, baseline, config, prompted), transfer.csv,
    transfer_rows.csv, transfer_prompted.csv, generations.jsonl, transfer.png."""

    summary: list[dict] = field(default_factory=list)  # SUMMARY_COLUMNS per scale
    baseline: dict = field(default_factory=dict)  # unsteered mean_logprob, hit_rate
    prompted: list[dict] = field(default_factory=list)  # PROMPTED_COLUMNS per condition
    scored: list[dict] = field(default_factory=list)  # generations.jsonl without the text: ROW_COLUMNS

    SUMMARY_COLUMNS: ClassVar[tuple] = ("scale", "mean_delta_logprob", "sem_delta_logprob", "mean_logprob",
                                        "hit_rate", "n_prompts")
    PROMPTED_COLUMNS: ClassVar[tuple] = ("condition", "scale", "mean_delta_logprob", "sem_delta_logprob",
                                         "mean_logprob", "hit_rate", "n_prompts")
    ROW_COLUMNS: ClassVar[tuple] = ("scale", "prompt", "logprob", "base_logprob", "delta_logprob", "hit")


def read_transfer(run: TransferRun, files: Files) -> TransferRun:
    data = files.json_object("transfer.json")
    where = "transfer.json"
    _settings(run, files, data, where)
    run.summary = _rows(files, data, "summary", where, TransferRun.SUMMARY_COLUMNS)
    baseline = files.get(data, "baseline", lambda v: v if isinstance(v, dict) else None, where) or {}
    run.baseline = {k: number(baseline.get(k)) for k in ("mean_logprob", "hit_rate")}
    run.prompted = _rows(files, data, "prompted", where, TransferRun.PROMPTED_COLUMNS)
    for row in files.jsonl("generations.jsonl"):
        scored = {c: _value(row.get(c)) for c in TransferRun.ROW_COLUMNS}
        if not isinstance(scored["prompt"], str):
            continue
        run.scored.append(scored)
        generation = text(row.get("generation"))
        if generation is not None:  # scale 0 is the unsteered baseline (the same generation group)
            scale = number(row.get("scale"))
            run.samples.append(Sample(vector=None if scale == 0.0 else 0, prompt=scored["prompt"], split="",
                                      scale=scale, completion=generation))
    return run


@dataclass
class LinearityRun(RunData):
    """``ss.linearity_score``'s directory: linearity.json (score, raw_score, similarity, matching,
    embedding_shift_cosine, summaries, responses, config, control_*) and linearity_heatmap.png."""

    score: float | None = None
    raw_score: float | None = None
    embedding_shift_cosine: float | None = None
    control_score: float | None = None
    control_embedding_shift_cosine: float | None = None
    similarity: list[list[float | None]] = field(default_factory=list)  # LoRA batch × vector batch
    matching: list[tuple[int, int]] = field(default_factory=list)
    lora_summaries: list[str | None] = field(default_factory=list)
    vector_summaries: list[str | None] = field(default_factory=list)
    control_summaries: list[str | None] | None = None
    responses: dict[str, list[str]] = field(default_factory=dict)  # RESPONSE_KEYS

    RESPONSE_KEYS: ClassVar[tuple] = ("prompts", "baseline", "vector", "lora", "control")


def _texts(value) -> list[str | None] | None:
    return [text(v) for v in value] if isinstance(value, list) else None


def read_linearity(run: LinearityRun, files: Files) -> LinearityRun:
    data = files.json_object("linearity.json")
    where = "linearity.json"
    _settings(run, files, data, where)
    for key in ("score", "raw_score", "embedding_shift_cosine", "control_score", "control_embedding_shift_cosine"):
        setattr(run, key, files.get(data, key, number, where))
    matrix = files.get(data, "similarity", lambda v: v if isinstance(v, list) else None, where) or []
    run.similarity = [numbers(r) or [] for r in matrix]
    pairs = files.get(data, "matching", lambda v: v if isinstance(v, list) else None, where) or []
    run.matching = [(index(p[0]), index(p[1])) for p in pairs if isinstance(p, list) and len(p) == 2
                    and index(p[0]) is not None and index(p[1]) is not None]
    run.lora_summaries = files.get(data, "lora_summaries", _texts, where) or []
    run.vector_summaries = files.get(data, "vector_summaries", _texts, where) or []
    run.control_summaries = files.get(data, "control_summaries", _texts, where)
    responses = files.get(data, "responses", lambda v: v if isinstance(v, dict) else None, where) or {}
    for key in LinearityRun.RESPONSE_KEYS:
        texts = _texts(responses.get(key))
        if texts is not None:
            run.responses[key] = [t if t is not None else "" for t in texts]
    return run


READERS = {"sweep": (SweepRun, read_sweep), "transfer": (TransferRun, read_transfer),
           "linearity": (LinearityRun, read_linearity)}
