"""Read a run directory into a typed result: ``load_run(dir)`` dispatches on ``config.json``'s ``method``.

Each run kind has one reader that knows the exact files and keys its producer writes (``readers.py`` for the
vector-finding methods, ``eval_readers.py`` for the evaluations); nothing is matched by substring. A method
without a reader gets the generic view (config, vectors file, figures, files) and a note saying so. Every file is
optional and every value is checked: an unreadable file or a value of the wrong type becomes a warning on the
page and is left out, never an exception other than a ``SteerscopeError``.

Example:
    >>> run = load_run("runs/melbo-1")
    >>> type(run).__name__, run.objectives[:2]
    ('MelboRun', [39.3, 38.3])
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypedDict

from ..errors import InvalidArgumentError, SteerscopeError
from ..io import read_csv, read_json, read_jsonl

log = logging.getLogger(__name__)

VECTORS_FILE = "vectors.safetensors"


class Sample(TypedDict):
    """One completion in the report's shape. ``vector`` None is the unsteered baseline."""

    vector: int | None
    prompt: str
    split: str
    scale: float | None
    completion: str


@dataclass
class RunData:
    """What every run kind has; the typed subclasses add their own results.

    ``method`` is the reader's kind (``melbo``, ``sweep``, ...; ``generic`` for a method without a reader);
    ``notes`` are shown on the page (how the method was found, a missing reader); ``warnings`` name every file or
    value that could not be read.
    """

    path: Path
    method: str = "generic"
    config: dict = field(default_factory=dict)
    vector_set: Any = None  # VectorSet
    samples: list[Sample] = field(default_factory=list)
    losses: dict[int, list[tuple[float, float]]] = field(default_factory=dict)  # index -> [(step, loss)]
    images: dict[str, Path] = field(default_factory=dict)  # name relative to the run dir -> path
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    item: ClassVar[str] = "vector"  # what one index is (LoRA discovery: an adapter)

    def rows(self) -> dict[int, dict]:
        """Per-index columns of this kind's vector table (each reader fills them from its own files)."""
        return {}

    def vector_indices(self) -> list[int]:
        """Every index mentioned: the vector set, the table rows, the losses or the samples."""
        found = set(self.rows()) | set(self.losses)
        if self.vector_set is not None:
            found |= set(range(len(self.vector_set)))
        found |= {s["vector"] for s in self.samples if s["vector"] is not None}
        return sorted(found)

    def table(self) -> list[dict]:
        """One row per index: ``index``, ``norm`` (the vector file's unless the kind records its own), ``layers``,
        the kind's own columns (``rows()``), then ``final_loss`` when losses exist."""
        norms = self.vector_set.norms().tolist() if self.vector_set is not None else []
        layers = ", ".join(map(str, self.vector_set.layers)) if self.vector_set is not None else None
        own = self.rows()
        out = []
        for i in self.vector_indices():
            row: dict = {"index": i}
            if i < len(norms):
                row["norm"], row["layers"] = float(norms[i]), layers
            row.update({k: v for k, v in own.get(i, {}).items() if v is not None or k not in row})
            if self.losses.get(i) and "final_loss" not in row:
                row["final_loss"] = self.losses[i][-1][1]
            out.append(row)
        return out


# ---- values: each reader says what it expects; anything else is None (and a warning where it matters) ----

def number(value) -> float | None:
    """A finite float, or None (bool, text, NaN, an integer beyond float range)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            value = float(value)
        except OverflowError:
            return None
        return value if math.isfinite(value) else None
    return None


def index(value) -> int | None:
    """A non-negative integer index (CSV cells arrive as floats), or None."""
    value = number(value)
    return int(value) if value is not None and value.is_integer() and value >= 0 else None


def text(value) -> str | None:
    return value if isinstance(value, str) else None


def numbers(value) -> list[float | None] | None:
    """A list of numbers (None where an entry is not one), or None when ``value`` is not a list."""
    return [number(v) for v in value] if isinstance(value, list) else None


class Files:
    """Reads the files of one run directory, turning every failure into a warning on ``run``."""

    def __init__(self, run: RunData) -> None:
        self.run = run

    def warn(self, message: str) -> None:
        if message in self.run.warnings:  # the method lookup and the reader may both meet the same broken file
            return
        self.run.warnings.append(message)
        log.warning("report: %s: %s", self.run.path, message)

    def read(self, name: str, reader: Callable[[Path], Any]):
        path = self.run.path / name
        if not path.is_file():
            return None
        try:
            return reader(path)
        except (OSError, ValueError, KeyError, TypeError, RecursionError, SteerscopeError) as exc:
            self.warn(f"{name} could not be read ({type(exc).__name__}: {exc}); it is left out")
            return None

    def json_object(self, name: str) -> dict | None:
        data = self.read(name, read_json)
        if data is not None and not isinstance(data, dict):
            self.warn(f"{name} is not a JSON object; it is left out")
            return None
        return data

    def csv(self, name: str, columns: dict[str, Callable], optional: tuple[str, ...] = ()) -> list[dict]:
        """Rows of a CSV file with exactly the named columns, each converted by its function; a missing column
        is a warning unless ``optional`` (a setting of the producer can leave it out); its values are None.
        Other columns are ignored."""
        rows = self.read(name, read_csv) or []
        if rows:
            missing = [c for c in columns if c not in rows[0] and c not in optional]
            if missing:
                self.warn(f"{name} has no column {', '.join(missing)}; those values are left out")
        return [{c: convert(row.get(c)) for c, convert in columns.items()} for row in rows]

    def jsonl(self, name: str) -> list[dict]:
        rows = self.read(name, read_jsonl) or []
        good = [r for r in rows if isinstance(r, dict)]
        if len(good) < len(rows):
            self.warn(f"{name}: {len(rows) - len(good)} lines are not JSON objects; they are left out")
        return good

    def vectors(self, name: str = VECTORS_FILE):
        from ..vector import VectorSet

        return self.read(name, VectorSet.load)

    def get(self, obj: dict | None, key: str, convert: Callable, where: str):
        """``convert(obj[key])``; a present value it rejects is a warning."""
        if not isinstance(obj, dict) or obj.get(key) is None:
            return None
        value = convert(obj[key])
        if value is None:
            self.warn(f"{where}: {key} has an unexpected value; it is left out")
        return value


def samples(files: Files, name: str) -> list[Sample]:
    """``samples.jsonl`` as the run commands write it (``steerscope.samples``): ``vector`` (null = baseline),
    ``prompt``, ``split``, ``scale``, ``completion``. Rows with a bad index or non-text are left out."""
    out: list[Sample] = []
    for row in files.jsonl(name):
        vector = row.get("vector")
        if vector is not None and index(vector) is None:
            continue
        prompt, split, completion = text(row.get("prompt")), text(row.get("split", "")), text(row.get("completion"))
        if prompt is None or split is None or completion is None:
            continue
        out.append(Sample(vector=index(vector), prompt=prompt, split=split, scale=number(row.get("scale")),
                          completion=completion))
    return out


def losses(rows: list[dict], key: str = "vector") -> dict[int, list[tuple[float, float]]]:
    """Long-format loss rows (``key``, ``step``, ``loss``) per index; rows without a number are left out."""
    out: dict[int, list[tuple[float, float]]] = {}
    for n, row in enumerate(rows):
        i, loss = index(row.get(key)), number(row.get("loss"))
        if i is not None and loss is not None:
            step = number(row.get("step"))
            out.setdefault(i, []).append((step if step is not None else float(n), loss))
    return {k: sorted(v) for k, v in sorted(out.items())}


def _images(path: Path) -> dict[str, Path]:
    found = sorted(path.glob("*.png")) + sorted(path.glob("*/**/*.png"))
    return {p.relative_to(path).as_posix(): p for p in found if p.is_file()}


# files a producer writes without a config.json (or without a method in it): exact names, checked in order
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
    vs = files.vectors() if (run.path / VECTORS_FILE).is_file() else None
    if vs is not None and vs.meta.method:
        run.notes.append(f"config.json names no method; {VECTORS_FILE} says {vs.meta.method!r}")
        return str(vs.meta.method)
    missing = "config.json names no method" if (run.path / "config.json").is_file() else "there is no config.json"
    for name, kind, producer in SIGNATURES:
        if (run.path / name).is_file():
            run.notes.append(f"{missing}; read as a {kind} run because {name} is what {producer} writes")
            return kind
    return "generic"


def read_generic(run: RunData, files: Files) -> RunData:
    """A method without a reader: the vector file (its header is a format contract) and the files."""
    run.vector_set = files.vectors()
    return run


def load_run(run_dir: str | Path) -> RunData:
    """Read a run directory into the typed result of its method (``MelboRun``, ``SweepRun``, ...).

    Example:
        >>> run = load_run("runs/sweep-1")
        >>> run.window, run.best_scale
        ((-4.0, 4.0), 4.0)
    """
    from .eval_readers import READERS as EVAL_READERS
    from .readers import READERS

    path = Path(run_dir)
    if not path.is_dir():
        raise InvalidArgumentError(f"run directory {path} does not exist; pass the directory a run command wrote")
    files = Files(RunData(path=path))
    files.run.config = files.json_object("config.json") or {}
    method = _method(files.run, files)
    reader = {**READERS, **EVAL_READERS}.get(method)
    cls, read = reader if reader else (RunData, read_generic)
    run = cls(path=path, method=method if reader else "generic", config=files.run.config, notes=files.run.notes,
              warnings=files.run.warnings)
    if reader is None and method != "generic":
        run.notes.append(f"no report reader for method {method!r}; showing the configuration, vectors and files")
    elif reader is None:
        run.notes.append("no method found (no config.json method, no known result file); showing the files")
    read(run, Files(run))
    run.images = _images(path)
    return run
