"""Read a run directory into one plain structure for the report and the explorer. Every file is optional.

Run-directory files understood here (all written by steerscope run commands):

- ``config.json``: ``method``, ``model_name``, ``model_type``, ``n_layers``, ``d_model``, ... and method settings
- ``vectors.safetensors``: a VectorSet (norms and layers come from it)
- ``vectors.csv``: one row per vector ``index`` with numeric columns (``norm``, ``objective``, ``kl_to_base``, ...)
- ``losses.csv``: long format ``vector, step, loss``
- ``samples.jsonl``: ``{"vector": int | null, "prompt", "split", "scale", "completion"}`` (null vector = baseline)
- ``ortho.csv``: ``index, norm, kl, kl_moving_avg, kl_rescaled`` (MELBO-ortho)
- ``plots/*.png``, ``sweep.{json,csv,png}``, ``linearity.json``, ``linearity_heatmap.png``, ``summary.json``

Formats other commands write are read too: sweep samples (``response``, no ``vector``: scale 0 is the baseline,
other scales the swept vector) and LoRA discovery's ``run_###/`` directories (``losses.csv``, ``summary.json``,
``samples.jsonl`` with ``base`` / ``adapted`` completions), where adapter ``###`` plays the part of a vector.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InvalidArgumentError, SteerscopeError
from ..io import read_csv, read_json, read_jsonl

log = logging.getLogger(__name__)

VECTORS_FILE = "vectors.safetensors"


@dataclass
class RunData:
    """Everything found in a run directory; absent files leave their field empty."""

    path: Path
    config: dict = field(default_factory=dict)
    vector_set: object | None = None  # VectorSet
    vector_rows: dict[int, dict] = field(default_factory=dict)  # index -> numeric columns
    losses: dict[int, list[tuple[float, float]]] = field(default_factory=dict)  # vector -> [(step, loss)]
    samples: list[dict] = field(default_factory=list)
    ortho: list[dict] = field(default_factory=list)
    sweep: dict | list | None = None
    sweep_rows: list[dict] = field(default_factory=list)
    linearity: dict | list | None = None
    summary: dict | list | None = None
    images: dict[str, Path] = field(default_factory=dict)  # name relative to the run dir -> path
    warnings: list[str] = field(default_factory=list)

    @property
    def item(self) -> str:
        """What one index is: a steering vector, or a LoRA adapter for LoRA discovery runs."""
        return "adapter" if self.method == "lora_discovery" else "vector"

    @property
    def method(self) -> str:
        """config.json's method; else the vectors' method; else guessed from the files (sweep, linearity)."""
        found = self.config.get("method") or (self.vector_set.meta.method if self.vector_set else None)
        if not found:
            found = "sweep" if self.sweep is not None else "linearity" if self.linearity is not None else "run"
        return str(found)

    def vector_indices(self) -> list[int]:
        """Every vector index mentioned anywhere: the set, the table, the losses or the samples."""
        found = set(self.vector_rows) | set(self.losses)
        if self.vector_set is not None:
            found |= set(range(len(self.vector_set)))
        found |= {int(s["vector"]) for s in self.samples if s.get("vector") is not None}
        return sorted(found)

    def table(self) -> list[dict]:
        """One row per vector: ``index``, ``norm`` (from the VectorSet unless the CSV has it), ``layers``,
        then every other numeric column of ``vectors.csv``, then ``final_loss`` when losses exist."""
        norms = self.vector_set.norms().tolist() if self.vector_set is not None else []
        rows = []
        for i in self.vector_indices():
            row = {"index": i}
            if i < len(norms):
                row["norm"] = float(norms[i])
            row.update({k: v for k, v in self.vector_rows.get(i, {}).items() if k != "index"})
            if self.losses.get(i):
                row.setdefault("final_loss", self.losses[i][-1][1])
            rows.append(row)
        return rows


def _number(value) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            number = float(value)
        except OverflowError:  # an integer beyond float range (a corrupt file)
            return None
        return number if math.isfinite(number) else None
    return None


def _read(run: RunData, name: str, reader):
    """Call ``reader(path)`` if the file exists; a broken file becomes a warning in the report, not a crash."""
    path = run.path / name
    if not path.is_file():
        return None
    try:
        return reader(path)
    except (OSError, ValueError, KeyError, TypeError, RecursionError, SteerscopeError) as exc:
        run.warnings.append(f"{name} could not be read ({type(exc).__name__}: {exc}); it is left out")
        log.warning("report: %s unreadable: %s", name, exc)
        return None


def _vector_rows(rows: list[dict]) -> dict[int, dict]:
    out = {}
    for n, row in enumerate(rows):
        index = _number(row.get("index", row.get("vector")))
        key = int(index) if index is not None else n
        out[key] = {k: v for k, v in row.items() if k not in ("vector",)}
    return out


def _losses(rows: list[dict]) -> dict[int, list[tuple[float, float]]]:
    out: dict[int, list[tuple[float, float]]] = {}
    for n, row in enumerate(rows):
        vector, loss = _number(row.get("vector")), _number(row.get("loss"))
        step = _number(row.get("step"))
        if vector is None or loss is None:
            continue
        out.setdefault(int(vector), []).append((step if step is not None else float(n), loss))
    return {k: sorted(v) for k, v in sorted(out.items())}


def _samples(rows: list, default_vector: int | None = None) -> list[dict]:
    """Samples in one shape: ``vector`` (None = baseline), ``prompt``, ``split``, ``scale``, ``completion``."""
    out = []
    for row in rows:
        if not isinstance(row, dict):
            continue
        if not isinstance(row.get("prompt", ""), str) or not isinstance(row.get("split", ""), str):
            continue
        if isinstance(row.get("base"), str) and isinstance(row.get("adapted"), str):  # LoRA discovery
            common = {"prompt": row.get("prompt", ""), "split": row.get("split", "heldout")}
            out.append({**common, "vector": None, "scale": 0.0, "completion": row["base"]})
            out.append({**common, "vector": default_vector, "scale": None, "completion": row["adapted"]})
            continue
        text = row.get("completion", row.get("response"))
        if not isinstance(text, str):
            continue
        scale = _number(row.get("scale"))
        if "vector" in row:
            vector = row["vector"]
            if vector is not None:
                index = _number(vector)
                if index is None or not index.is_integer() or index < 0:
                    continue  # a corrupt vector index: leave the row out rather than crash the report
                vector = int(index)
        else:  # a sweep of one vector: scale 0 is its baseline
            vector = None if scale in (None, 0.0) else (default_vector or 0)
        out.append({**row, "vector": vector, "scale": scale, "completion": text})
    return out


def _lora_runs(run: RunData) -> None:
    """LoRA discovery: one ``run_###`` directory per adapter; its index is the number in the name."""
    for sub in sorted(run.path.glob("run_*")):
        tail = sub.name.removeprefix("run_")
        if not (sub.is_dir() and tail.isdigit()):
            continue
        index = int(tail)
        rel = sub.name
        losses = _read(run, f"{rel}/losses.csv", read_csv) or []
        points = [(_number(r.get("step")) or float(n), _number(r.get("loss"))) for n, r in enumerate(losses)]
        if any(v is not None for _, v in points):
            run.losses[index] = [(s, v) for s, v in points if v is not None]
        summary = _read(run, f"{rel}/summary.json", read_json) or {}
        row = {"index": index}
        if isinstance(summary, dict):
            heldout = summary.get("heldout")
            heldout = heldout if isinstance(heldout, dict) else {}
            row.update({f"heldout_{k}": v for k, v in heldout.items() if _number(v) is not None})
            row.update({k: summary[k] for k in ("steps", "updates", "seed") if _number(summary.get(k)) is not None})
        run.vector_rows.setdefault(index, {}).update(row)
        run.samples += _samples(_read(run, f"{rel}/samples.jsonl", read_jsonl) or [], default_vector=index)


def load_run(run_dir: str | Path) -> RunData:
    """Read whatever of a run directory exists.

    Example:
        >>> run = load_run("runs/melbo-1")
        >>> run.method, len(run.table())
        ('melbo', 8)
    """
    from ..vector import VectorSet

    path = Path(run_dir)
    if not path.is_dir():
        raise InvalidArgumentError(f"run directory {path} does not exist; pass the directory a run command wrote")
    run = RunData(path=path)
    run.config = _read(run, "config.json", read_json) or {}
    if not isinstance(run.config, dict):
        run.warnings.append("config.json is not a JSON object; it is left out")
        run.config = {}
    run.vector_set = _read(run, VECTORS_FILE, VectorSet.load)
    run.vector_rows = _vector_rows(_read(run, "vectors.csv", read_csv) or [])
    run.losses = _losses(_read(run, "losses.csv", read_csv) or [])
    run.samples = _samples(_read(run, "samples.jsonl", read_jsonl) or [])
    _lora_runs(run)
    run.summary = _read(run, "summary.json", read_json)
    run.ortho = _read(run, "ortho.csv", read_csv) or []
    run.sweep = _read(run, "sweep.json", read_json)
    run.sweep_rows = _read(run, "sweep.csv", read_csv) or []
    run.linearity = _read(run, "linearity.json", read_json)
    images = sorted(path.glob("*.png")) + sorted(p for p in path.glob("*/**/*.png"))
    run.images = {p.relative_to(path).as_posix(): p for p in images if p.is_file()}
    if not (run.config or run.vector_set is not None or run.samples):
        log.warning("report: %s has no config.json, vectors or samples", path)
    return run
