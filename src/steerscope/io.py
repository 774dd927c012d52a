"""Atomic file writes for run directories: JSON, CSV, JSONL and figures. A crash never leaves half a file."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import sys
from collections.abc import Iterable
from pathlib import Path

from .errors import RunFileError
from .vector import atomic_write

__all__ = ["atomic_write", "json_safe", "read_csv", "read_json", "read_jsonl", "save_figure", "write_csv", "write_json",
           "write_jsonl", "write_text"]


def json_safe(value):
    """NaN/inf become None (JSON null), never a sentinel number; tensors and numpy scalars become Python values."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def write_json(path: str | os.PathLike, data) -> Path:
    return write_text(path, json.dumps(json_safe(data), indent=2, sort_keys=True) + "\n")


def _read_text(path: str | os.PathLike, newline: str | None = None) -> str:
    try:
        with open(path, encoding="utf-8", newline=newline) as f:
            return f.read()
    except UnicodeDecodeError as exc:
        raise RunFileError(f"{path} is not UTF-8 text (byte {exc.start}); the file is corrupt") from None
    except (OSError, ValueError) as exc:
        raise RunFileError(f"cannot read {path} ({exc})") from None


def _parse_json(text: str, where: str | os.PathLike):
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise RunFileError(f"{where} is not valid JSON ({exc}); the file is corrupt") from None
    except RecursionError:
        raise RunFileError(f"{where} holds JSON nested too deeply to read; the file is corrupt") from None
    except ValueError as exc:  # e.g. an integer with too many digits
        raise RunFileError(f"{where} holds an unreadable JSON value ({exc}); the file is corrupt") from None


def read_json(path: str | os.PathLike):
    """Parse a JSON file. Any problem (missing, not UTF-8, corrupt, too deep) is a ``RunFileError``."""
    return _parse_json(_read_text(path), path)


def write_csv(path: str | os.PathLike, rows: list[dict], fieldnames: list[str] | None = None) -> Path:
    """Rows of dicts; missing values (None/NaN) are written as empty cells."""
    fieldnames = fieldnames or list(dict.fromkeys(k for row in rows for k in row))

    def write(tmp: str) -> None:
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fieldnames)
            writer.writeheader()
            writer.writerows({k: json_safe(row.get(k)) for k in fieldnames} for row in rows)  # None: an empty cell

    return atomic_write(path, write)


def read_csv(path: str | os.PathLike) -> list[dict]:
    """Rows as dicts; numeric cells become floats, empty cells None. A corrupt file is a ``RunFileError``."""

    def convert(cell: str):
        if cell == "":
            return None
        try:
            return float(cell)
        except ValueError:
            return cell

    text = _read_text(path, newline="")  # outside the try: its RunFileError is a ValueError
    try:
        rows = list(csv.DictReader(io.StringIO(text, newline="")))
    except (csv.Error, ValueError) as exc:
        raise RunFileError(f"{path} is not a readable CSV file ({exc}); the file is corrupt") from None
    # a row longer than the header puts its extra cells in a list under the key None; drop them
    return [{k: convert(v) for k, v in row.items() if isinstance(k, str) and isinstance(v, str)} for row in rows]


def write_jsonl(path: str | os.PathLike, rows: Iterable[dict]) -> Path:
    return write_text(path, "".join(json.dumps(json_safe(r), sort_keys=True) + "\n" for r in rows))


def read_jsonl(path: str | os.PathLike) -> list:
    """One parsed JSON value per non-blank line. A corrupt line is a ``RunFileError`` naming ``path:line``."""
    return [_parse_json(line, f"{path}:{n}") for n, line in enumerate(_read_text(path).splitlines(), 1)
            if line.strip()]


def subplots(*args, **kwargs):
    """``(fig, axes)`` like ``pyplot.subplots`` but on a bare ``matplotlib.figure.Figure``: no pyplot state, no
    backend switch, nothing for the user's own plotting to trip over (``fig.savefig`` renders with Agg).

    Example:
        >>> fig, ax = subplots(figsize=(6, 4)); ax.plot([1, 2]); save_figure(fig, "curve.png")
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=kwargs.pop("figsize", None))
    return fig, fig.subplots(*args, **kwargs)


def save_figure(fig, path: str | os.PathLike, dpi: int = 110) -> Path:
    """Save a matplotlib figure atomically as PNG (and close it if pyplot made it)."""
    try:
        return atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png"))
    finally:
        if "matplotlib.pyplot" in sys.modules:
            sys.modules["matplotlib.pyplot"].close(fig)


def use_agg() -> None:
    """Kept for old callers; does nothing now: figures come from ``subplots`` and never touch the backend."""
