"""Read a run directory for the report: ``load_run(dir)`` loads the typed result its producer saved (the result
type's own ``load``, chosen by ``config.json``'s ``method``: ``MelboResult``, ``SweepResult``, ...) and adds what the
run layer wrote beside it (samples, figures) in the report's shape (``views.py``).

The report reads no schema of its own, so it cannot drift from the producers. A directory whose result cannot be
loaded still gets a page: one that has not finished (no final result file yet) shows its checkpoint (vectors, loss
curves, samples) with a note; a damaged one shows the same with a warning naming the problem. Nothing but a
``SteerscopeError`` escapes.

Example:
    >>> run = load_run("runs/melbo-1")
    >>> type(run.result).__name__, run.result.objectives[:2]
    ('MelboResult', [39.3, 38.3])
    >>> sweep = load_run("runs/sweep-1").result
    >>> sweep.window, sweep.best_scale
    ((-4.0, 4.0), 4.0)
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict

from ..errors import InvalidArgumentError, SteerscopeError
from ..io import read_json, read_jsonl

log = logging.getLogger(__name__)

VECTORS_FILE = "vectors.safetensors"
# what a malformed file can raise from a result's load (besides RunFileError); caught, shown as a warning
READ_ERRORS = (OSError, ValueError, KeyError, IndexError, TypeError, RecursionError, SteerscopeError)


class Sample(TypedDict):
    """One completion in the report's shape. ``vector`` None is the unsteered baseline."""

    vector: int | None
    prompt: str
    split: str
    scale: float | None
    completion: str


@dataclass
class RunData:
    """A run directory as the report shows it.

    ``method`` is config.json's; ``result`` the typed result (None when it could not be loaded: ``kind`` is then
    ``generic``); ``rows`` the kind's own per-index columns of the vector table; ``notes`` are shown on the page
    (how the method was found, an unfinished run); ``warnings`` name every file that could not be read."""

    path: Path
    method: str = "generic"
    config: dict = field(default_factory=dict)
    result: Any = None
    vector_set: Any = None  # VectorSet
    samples: list[Sample] = field(default_factory=list)
    reference_samples: list[Sample] = field(default_factory=list)  # MELBO-ortho: θ₀'s own completions
    losses: dict[int, list[tuple[float, float]]] = field(default_factory=dict)  # index -> [(step, loss)]
    rows: dict[int, dict] = field(default_factory=dict)
    images: dict[str, Path] = field(default_factory=dict)  # name relative to the run dir -> path
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    item: str = "vector"  # what one index is (LoRA discovery: an adapter)

    @property
    def kind(self) -> str:
        """Which sections the page has: the method's when its result loaded, else ``generic``."""
        return self.method if self.result is not None else "generic"

    def vector_indices(self) -> list[int]:
        """Every index mentioned: the vector set, the table rows, the losses or the samples."""
        return sorted({*self.rows, *self.losses, *range(len(self.vector_set or ())),
                       *(s["vector"] for s in self.samples if s["vector"] is not None)})

    def table(self) -> list[dict]:
        """One row per index: ``index``, ``norm``, ``layers`` (vector file), the kind's ``rows``, any ``final_loss``."""
        vs = self.vector_set
        norms, layers = (vs.norms().tolist(), ", ".join(map(str, vs.layers))) if vs is not None else ([], None)
        out = []
        for i in self.vector_indices():
            row: dict = {"index": i}
            if i < len(norms):
                row["norm"], row["layers"] = norms[i], layers
            row.update({k: v for k, v in self.rows.get(i, {}).items() if v is not None or k not in row})
            if self.losses.get(i) and "final_loss" not in row:
                row["final_loss"] = self.losses[i][-1][1]
            out.append(row)
        return out


# ---- values the run layer's files hold: anything unexpected is None (the row is left out) ----

def number(value) -> float | None:
    """A finite float, or None (bool, text, NaN, an integer beyond float range)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return None
    try:
        return float(value) if math.isfinite(value) else None
    except OverflowError:  # an integer beyond float range
        return None


def index(value) -> int | None:
    """A non-negative integer index (CSV cells arrive as floats), or None."""
    value = number(value)
    return int(value) if value is not None and value.is_integer() and value >= 0 else None


def sample(row: dict, vector, completion_key: str = "completion", split: str | None = None) -> Sample | None:
    """A Sample from one JSONL row (its ``split`` unless given), or None when the prompt, completion or split is not
    text or ``vector`` is not an index."""
    if not isinstance(row, dict) or (vector is not None and index(vector) is None):
        return None
    prompt, completion = row.get("prompt"), row.get(completion_key)
    split = row.get("split", "") if split is None else split
    if not all(isinstance(v, str) for v in (prompt, completion, split)):
        return None
    return Sample(vector=index(vector), prompt=prompt, split=split, scale=number(row.get("scale")),
                  completion=completion)


def loss_curves(rows: list[dict], key: str = "vector") -> dict[int, list[tuple[float, float]]]:
    """Long-format loss rows (``key``, ``step``, ``loss``) per index; rows without a number are left out."""
    out: dict[int, list[tuple[float, float]]] = {}
    for n, row in enumerate(rows):
        i, loss = index(row.get(key)), number(row.get("loss"))
        if i is not None and loss is not None:
            step = number(row.get("step"))
            out.setdefault(i, []).append((step if step is not None else float(n), loss))
    return {k: sorted(v) for k, v in sorted(out.items())}


class Files:
    """Reads the run layer's own files of one run directory, turning every failure into a warning on ``run``."""

    def __init__(self, run: RunData) -> None:
        self.run = run

    def warn(self, message: str) -> None:
        if message not in self.run.warnings:
            self.run.warnings.append(message)
            log.warning("report: %s: %s", self.run.path, message)

    def read(self, name: str, reader: Callable[[Path], Any]):
        path = self.run.path / name
        if not path.is_file():
            return None
        try:
            return reader(path)
        except READ_ERRORS as exc:
            self.warn(f"{name} could not be read ({type(exc).__name__}: {exc}); it is left out")
            return None

    def jsonl(self, name: str) -> list[dict]:
        rows = self.read(name, read_jsonl) or []
        good = [r for r in rows if isinstance(r, dict)]
        if len(good) < len(rows):
            self.warn(f"{name}: {len(rows) - len(good)} lines are not JSON objects; they are left out")
        return good

    def samples(self, name: str) -> list[Sample]:
        """``samples.jsonl`` (by ``steerscope.samples``): vector (null: baseline), prompt, split, scale, completion."""
        return [s for row in self.jsonl(name) if (s := sample(row, row.get("vector"))) is not None]

    def vectors(self):
        from ..vector import VectorSet

        return self.read(VECTORS_FILE, VectorSet.load)


# files a producer writes without a config.json (results saved by older versions): exact names, checked in order
SIGNATURES = (("sweep.json", "sweep", "ss.sweep"), ("transfer.json", "transfer", "ss.evaluate_transfer"),
              ("linearity.json", "linearity", "ss.linearity_score"),
              ("run_000/summary.json", "lora_discovery", "ss.discover_lora"))


def _method(run: RunData, files: Files) -> str:
    """config.json's method; else the vector file's header; else the result file only one producer writes."""
    method = run.config.get("method")
    if isinstance(method, str) and method:
        return method
    if method is not None:
        files.warn("config.json: method is not a string; it is ignored")
    vs = files.vectors()
    if vs is not None and vs.meta.method:
        run.notes.append(f"config.json names no method; {VECTORS_FILE} says {vs.meta.method!r}")
        return str(vs.meta.method)
    missing = "config.json names no method" if (run.path / "config.json").is_file() else "there is no config.json"
    for name, kind, producer in SIGNATURES:
        if (run.path / name).is_file():
            run.notes.append(f"{missing}; read as a {kind} run because {name} is what {producer} writes")
            return kind
    run.notes.append("no method found (no config.json method, no known result file); showing the files")
    return "generic"


def _load_result(run: RunData, files: Files) -> None:
    """``run.result`` from its type's own ``load``; a note for an unfinished run, a warning for a damaged file."""
    from ..results import RESULT_TYPES, result_type

    if run.method not in RESULT_TYPES:
        if run.method != "generic":
            run.notes.append(f"no report reader for method {run.method!r}; showing the configuration, vectors "
                             "and files")
        return
    final = RESULT_TYPES[run.method][2]
    if final is not None and not (run.path / final).is_file():
        run.notes.append(f"no {final} yet: the run has not finished (or was stopped); showing its checkpoint")
        return
    try:
        run.result = result_type(run.method).load(run.path)
    except READ_ERRORS as exc:
        files.warn(f"the {run.method} result could not be read ({type(exc).__name__}: {' '.join(str(exc).split())}); "
                   "showing the files that could be read")


def load_run(run_dir: str | Path) -> RunData:
    """A run directory's typed result (``run.result``) and samples, losses and figures (example: module docstring)."""
    from .views import VIEWS

    path = Path(run_dir)
    if not path.is_dir():
        raise InvalidArgumentError(f"run directory {path} does not exist; pass the directory a run command wrote")
    run = RunData(path=path)
    files = Files(run)
    config = files.read("config.json", read_json)
    if config is not None and not isinstance(config, dict):
        files.warn("config.json is not a JSON object; it is left out")
    run.config = config if isinstance(config, dict) else {}
    run.method = _method(run, files)
    _load_result(run, files)
    VIEWS.get(run.kind, VIEWS["generic"])(run, files)
    found = sorted(path.glob("*.png")) + sorted(path.glob("*/**/*.png"))
    run.images = {p.relative_to(path).as_posix(): p for p in found if p.is_file()}
    return run
