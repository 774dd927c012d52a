"""What every saved result shares: ``config.json`` naming the method and the result format's version.

``Result.save(dir)`` writes ``config.json`` (``method``, ``result_version``, ``steerscope_version`` and the settings,
flat, as every run directory's ``config.json`` is) next to its tables (CSV/JSONL), tensors (safetensors) and plots;
``Result.load(dir)`` checks that the directory holds that method's result before reading it, so a sweep directory is
never read as a transfer, and a malformed file is a ``RunFileError`` saying which file and what is wrong. Each save
declares its files for ``save_files``; each load reads them back with ``open_result``, ``read_table`` and ``from_json``
(the JSON fields, checked against their annotations). ``Checkpoint`` is the run directory a long method commits its
progress to while it runs."""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import logging
import math
import os
import shutil
import tempfile
import typing
import warnings
from pathlib import Path
from typing import Any

from . import __version__
from .configs import SCALAR_TYPES, _jsonable, config_defaults, strip_optional
from .errors import InvalidArgumentError, RunFileError
from .io import read_csv, read_json, read_jsonl, write_csv, write_json, write_jsonl
from .vector import VectorSet, _now

log = logging.getLogger(__name__)

RESULT_VERSION = 1


def result_config(method: str, settings: dict | None = None) -> dict:
    """The ``config.json`` a result writes: method, versions and the settings it ran with."""
    return {**_jsonable(dict(settings or {})), "method": method, "result_version": RESULT_VERSION,
            "steerscope_version": __version__}


def check_result_config(out_dir: Path, method: str) -> None:
    """Refuse a directory whose ``config.json`` names another method (one without config.json is an older result)."""
    path = out_dir / "config.json"
    if not out_dir.is_dir():
        raise RunFileError(f"{out_dir} is not a directory; give the directory a {method} result was saved to")
    if not path.is_file():
        return
    data = read_object(path)
    found = data.get("method")
    if found not in (None, method):
        raise RunFileError(f"{out_dir} holds a {found!r} result, not {method!r}; load it with that result type")
    version = data.get("result_version", RESULT_VERSION)
    if isinstance(version, int) and version > RESULT_VERSION:
        warnings.warn(f"{path} was written by a newer steerscope (result version {version}); reading what this "
                      "version knows", stacklevel=3)


def need(value: Any, kind: type, where: Any) -> Any:
    """``value`` if it is a ``kind``, else a RunFileError naming ``where``."""
    if not isinstance(value, kind):
        raise RunFileError(f"{where}: expected a JSON {kind.__name__}, got {type(value).__name__}")
    return value


def read_object(path: Path) -> dict:
    """The JSON object in ``path``; anything else there is a RunFileError."""
    return need(read_json(path), dict, path)


def save_files(out_dir, files: dict[str, Any], method: str | None = None, settings: dict | None = None) -> Path:
    """Create ``out_dir`` and write ``files`` into it in order, each as its suffix says: ``.json`` a JSON value,
    ``.csv`` / ``.jsonl`` a table of rows, ``.safetensors`` a vector or vector set (its ``save``); a None value is
    not written (a table a result leaves out when empty). With ``method``, ``config.json`` first (``result_config``),
    unless the directory has one (a run directory's fuller one stays)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if method is not None and not (out / "config.json").is_file():
        write_json(out / "config.json", result_config(method, settings))
    writers = {".json": write_json, ".csv": write_csv, ".jsonl": write_jsonl,
               ".safetensors": lambda path, vectors: vectors.save(path)}
    for name, value in files.items():
        if value is not None:
            writers[Path(name).suffix](out / name, value)
    return out


def open_result(out_dir, method: str, summary: str = "summary.json") -> tuple[Path, dict]:
    """(directory, its ``summary`` JSON object) after checking the directory holds ``method``'s result."""
    out = Path(out_dir)
    check_result_config(out, method)
    return out, read_object(out / summary)


def read_table(path: Path) -> list:
    """The rows of a table (``.csv``) or the values of a ``.jsonl`` file a result may leave out: [] when absent."""
    if not path.is_file():
        return []
    return (read_jsonl if path.suffix == ".jsonl" else read_csv)(path)


def from_json(cls: type, data: dict, where: Any, **given: Any) -> Any:
    """``cls(**given, ...)``: the dataclass ``cls`` with every field not ``given`` (those read from other files)
    taken from the JSON object ``data`` (read from ``where``) and checked against its annotation (``json_value``).
    A field absent from ``data`` keeps its default; one without a default is read as null."""
    hints, defaults = typing.get_type_hints(cls), config_defaults(cls)
    return cls(**given, **{f.name: json_value(data.get(f.name), hints[f.name], f"{where}: {f.name}")
                           for f in dataclasses.fields(cls)
                           if f.name not in given and (f.name in data or f.name not in defaults)})


# what a JSON value must be for an annotation (bool is an int in Python, never a number here)
_JSON_TYPES = {**SCALAR_TYPES, list: (list,), tuple: (list,), dict: (dict,)}


def json_value(value: Any, hint: Any, where: Any) -> Any:
    """``value`` (parsed JSON) as the annotation ``hint`` says, element by element, else a RunFileError naming
    ``where``: a number for ``float`` (returned as a float; null, how a NaN is saved, is NaN), a list for ``list``
    and ``tuple`` (a fixed tuple's length checked; returned as a tuple), an object for ``dict``; ``X | None`` also
    takes null. Other annotations (``Any``, classes) take any value."""
    hint, optional = strip_optional(hint)
    if value is None and (optional or hint is float):
        return None if optional else math.nan
    kind, args = typing.get_origin(hint) or hint, typing.get_args(hint)
    if kind not in _JSON_TYPES:
        return value
    if not isinstance(value, _JSON_TYPES[kind]) or (isinstance(value, bool) and kind in (int, float)):
        raise RunFileError(f"{where}: expected a JSON {'list' if kind is tuple else kind.__name__}, "
                           f"got {type(value).__name__}")
    if kind is float:
        try:
            return float(value)
        except OverflowError:
            raise RunFileError(f"{where}: {value} is beyond the range of a float") from None
    if kind is tuple and args:
        if len(value) != len(args):
            raise RunFileError(f"{where}: expected {len(args)} values, got {len(value)}")
        return tuple(json_value(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if kind is list and args:
        return [json_value(v, args[0], f"{where}[{i}]") for i, v in enumerate(value)]
    if kind is dict and args:
        return {k: json_value(v, args[1], f"{where}: {k}") for k, v in value.items()}
    return value


# config.json's "method" -> the result type that reads the directory, and the file its save writes last (a run
# directory without it has not finished: it holds only the run layer's checkpoint; None: every finished unit loads)
RESULT_TYPES = {
    "melbo": ("steerscope.methods.melbo", "MelboResult", "summary.json"),
    "melbo_ortho": ("steerscope.methods.ortho", "OrthoResult", "summary.json"),
    "one_shot": ("steerscope.methods.one_shot_types", "OptimizeResult", "summary.json"),
    "lora_discovery": ("steerscope.methods.lora_discovery", "LoraDiscoveryResult", None),
    "sweep": ("steerscope.evaluate.sweep", "SweepResult", "sweep.json"),
    "transfer": ("steerscope.evaluate.transfer", "TransferResult", "transfer.json"),
    "linearity": ("steerscope.evaluate.linearity", "LinearityResult", "linearity.json"),
}


def result_type(method: str, where: Any = None) -> type:
    """The result class that reads ``method``'s directories (``MelboResult`` for ``"melbo"``); an unknown method is a
    RunFileError (naming ``where``, the config.json that said it)."""
    if method not in RESULT_TYPES:
        raise RunFileError(f"{f'{where}: ' if where else ''}unknown method {method!r}; "
                           f"known: {', '.join(sorted(RESULT_TYPES))}")
    module, name, _ = RESULT_TYPES[method]
    return getattr(importlib.import_module(module), name)


def load_result(out_dir):
    """The typed result saved in ``out_dir`` (``MelboResult``, ``SweepResult``, ...), chosen by config.json's method.

    Example:
        >>> res = ss.load_result("runs/melbo")      # a MelboResult
    """
    path = Path(out_dir) / "config.json"
    if not path.is_file():
        raise RunFileError(f"{out_dir} has no config.json; give a directory a steerscope result was saved to")
    return result_type(read_object(path).get("method"), path).load(out_dir)


class Checkpoint:
    """A run directory a long method commits its progress to and resumes from. The run layer (``runs.py``) opens
    one and hands it to the method (methods never import the run layer); ``NO_CHECKPOINT`` (``path`` None) keeps
    nothing: every write is a no-op, ``restore`` is empty.

    ``open`` writes ``config.json`` (method, settings, model, versions), or on ``resume`` checks that the settings
    named in ``keys`` equal the new call's, so the method continues where it stopped; ``checkpoint`` commits vectors
    + loss curves after every vector/block, ``commit_dir`` a whole unit (e.g. a PEFT adapter) in one rename.
    """

    def __init__(self, path: Path | None, resuming: bool = False):
        self.path, self.resuming = path, resuming

    @classmethod
    def open(cls, out_dir, model, method: str, settings: dict, *, resume: bool = False,
             keys: list[str] | None = None) -> Checkpoint:
        """Create ``out_dir`` with its config.json, or reopen it to resume (``keys``: the settings that must match;
        default all of ``settings``). ``out_dir=None``: a run that writes nothing. Refuses to overwrite a run."""
        if out_dir is None:
            return cls(None)
        config = {"method": method, "model_name": model.name, "model_type": model.model_type,
                  "n_layers": model.n_layers, "d_model": model.d_model, "steerscope_version": __version__,
                  "created_at": _now(), **settings}
        path = Path(out_dir)
        existing = path / "config.json"
        if not existing.is_file():
            write_json(existing, config)  # creates the directory
            return cls(path)
        if not resume:
            raise InvalidArgumentError(f"{path} already holds a run; pass resume=True (--resume) to continue it or "
                                       "choose another output directory")
        old = read_object(existing)
        changed = [k for k in (settings if keys is None else keys) if old.get(k) != config.get(k)]
        if changed:
            raise InvalidArgumentError(f"cannot resume {path}: settings differ from the original run "
                                       f"({', '.join(changed)}); use the same settings or a new output directory")
        log.info("resuming run in %s", path)
        # what a killed process left behind: units commit_dir never renamed (.NAME.XXXX.partial) and temp files of
        # atomic writes (.NAME.XXXX.tmp; never a real file)
        for tmp in path.glob(".*.partial"):
            shutil.rmtree(tmp, ignore_errors=True)
        for tmp in [*path.glob(".*.tmp"), *path.glob("*/.*.tmp")]:
            with contextlib.suppress(OSError):
                tmp.unlink()
                log.info("removed %s, left by an interrupted write", tmp)
        return cls(path, resuming=True)

    def __bool__(self) -> bool:
        return self.path is not None

    def restore(self) -> tuple[list, list[list[float]]]:
        """(vectors as (D,) tensors, loss curves) checkpointed by an interrupted run; empty unless resuming."""
        return load_vector_checkpoint(self.path) if self.resuming else ([], [])

    def checkpoint(self, vectors: VectorSet, losses: list[list[float]]) -> None:
        if self.path:
            save_files(self.path, vector_files(vectors, losses))

    def read_table(self, name: str) -> list[dict] | None:
        """A table (``.csv`` or ``.jsonl``) an interrupted run wrote (None when not resuming or absent)."""
        return read_table(self.path / name) if self.resuming and (self.path / name).is_file() else None

    def write_table(self, name: str, rows: list[dict]) -> None:
        if self.path:
            save_files(self.path, {name: rows})

    def committed(self, name: str) -> Path | None:
        """``name``'s directory when an interrupted run committed it (resume skips that unit)."""
        return self.path / name if self.resuming and (self.path / name).is_dir() else None

    def commit_dir(self, name: str, write) -> Path:
        """``write(tmp)`` fills a hidden temp directory, which then replaces ``name`` in one rename: a crash never
        leaves half a unit (e.g. half an adapter) where resume would trust it."""
        if not self.path:
            raise InvalidArgumentError("this method saves what it makes as it goes (e.g. one PEFT adapter per run): "
                                       "pass out_dir=")
        tmp, target = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".partial", dir=self.path)), self.path / name
        try:
            write(tmp)
            if target.exists():
                shutil.rmtree(target)
            os.replace(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return target


NO_CHECKPOINT = Checkpoint(None)


def vector_files(vectors: VectorSet, losses: list[list[float]]) -> dict[str, Any]:
    """``losses.csv`` then ``vectors.safetensors``, for ``save_files``: the vectors file, written last, is the commit
    point a resume trusts."""
    return {"losses.csv": [{"vector": i, "step": s, "loss": v} for i, h in enumerate(losses) for s, v in enumerate(h)],
            "vectors.safetensors": vectors}


def load_vector_checkpoint(run_dir: Path):
    """(vectors as a list of (D,) tensors, per-vector loss curves) from a run directory; empty if none yet. Loss
    rows of a vector whose checkpoint never completed are dropped."""
    if not (run_dir / "vectors.safetensors").is_file():
        return [], []
    vectors = list(next(iter(VectorSet.load(run_dir / "vectors.safetensors").tensors.values())))
    losses: list[list[float]] = [[] for _ in vectors]
    if not (run_dir / "losses.csv").is_file():
        log.warning("%s has vectors but no losses.csv; resuming without the earlier loss curves", run_dir)
        return vectors, losses
    for n, row in enumerate(read_csv(run_dir / "losses.csv"), 2):
        vector, loss = row.get("vector"), row.get("loss")
        if not isinstance(vector, float) or not vector.is_integer() or not isinstance(loss, (float, type(None))):
            raise RunFileError(f"{run_dir / 'losses.csv'}:{n}: expected numbers in the 'vector' and 'loss' columns; "
                               "the run directory is corrupt (delete losses.csv to resume without loss curves)")
        if 0 <= int(vector) < len(vectors):
            losses[int(vector)].append(math.nan if loss is None else loss)
    return vectors, losses
