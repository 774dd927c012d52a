"""Read a run directory into one plain structure for the report and the explorer. Every file is optional.

Run-directory files understood here (all written by steerscope run commands):

- ``config.json``: ``method``, ``model_name``, ``model_type``, ``n_layers``, ``d_model``, ... and method settings
- ``vectors.safetensors``: a VectorSet (norms and layers come from it)
- ``vectors.csv``: one row per vector ``index`` with numeric columns (``norm``, ``objective``, ``kl_to_base``, ...)
- ``losses.csv``: long format ``vector, step, loss``
- ``samples.jsonl``: ``{"vector": int | null, "prompt", "split", "scale", "completion"}`` (null vector = baseline)
- ``ortho.csv``: ``index, norm, kl, kl_moving_avg, kl_rescaled`` (MELBO-ortho)
- ``plots/*.png``, ``sweep.{json,csv,png}``, ``linearity.json``, ``linearity_heatmap.png``
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InvalidArgumentError, SteerscopeError
from ..io import read_csv, read_jsonl

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
    images: dict[str, Path] = field(default_factory=dict)  # name relative to the run dir -> path
    warnings: list[str] = field(default_factory=list)

    @property
    def method(self) -> str:
        return str(self.config.get("method") or (self.vector_set.meta.method if self.vector_set else "") or "run")

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
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(float(value)):
        return float(value)
    return None


def _read(run: RunData, name: str, reader):
    """Call ``reader(path)`` if the file exists; a broken file becomes a warning in the report, not a crash."""
    path = run.path / name
    if not path.is_file():
        return None
    try:
        return reader(path)
    except (OSError, ValueError, KeyError, TypeError, SteerscopeError) as exc:
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
    run.config = _read(run, "config.json", lambda p: json.loads(p.read_text())) or {}
    if not isinstance(run.config, dict):
        run.warnings.append("config.json is not a JSON object; it is left out")
        run.config = {}
    run.vector_set = _read(run, VECTORS_FILE, VectorSet.load)
    run.vector_rows = _vector_rows(_read(run, "vectors.csv", read_csv) or [])
    run.losses = _losses(_read(run, "losses.csv", read_csv) or [])
    samples = _read(run, "samples.jsonl", read_jsonl) or []
    run.samples = [s for s in samples if isinstance(s, dict) and isinstance(s.get("completion"), str)]
    run.ortho = _read(run, "ortho.csv", read_csv) or []
    run.sweep = _read(run, "sweep.json", lambda p: json.loads(p.read_text()))
    run.sweep_rows = _read(run, "sweep.csv", read_csv) or []
    run.linearity = _read(run, "linearity.json", lambda p: json.loads(p.read_text()))
    images = sorted(path.glob("*.png")) + sorted((path / "plots").glob("*.png"))
    run.images = {p.relative_to(path).as_posix(): p for p in images if p.is_file()}
    if not (run.config or run.vector_set is not None or run.samples):
        log.warning("report: %s has no config.json, vectors or samples", path)
    return run
