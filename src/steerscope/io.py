"""Atomic file writes for run directories: JSON, CSV, JSONL and figures. A crash never leaves half a file."""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Iterable
from pathlib import Path

from .vector import atomic_write

__all__ = [
    "atomic_write",
    "json_safe",
    "read_csv",
    "read_json",
    "read_jsonl",
    "save_figure",
    "write_csv",
    "write_json",
    "write_jsonl",
]


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


def write_json(path: str | os.PathLike, data) -> Path:
    text = json.dumps(json_safe(data), indent=2, sort_keys=True) + "\n"
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def read_json(path: str | os.PathLike):
    return json.loads(Path(path).read_text())


def write_csv(path: str | os.PathLike, rows: list[dict], fieldnames: list[str] | None = None) -> Path:
    """Rows of dicts; missing values (None/NaN) are written as empty cells."""
    fieldnames = fieldnames or list(dict.fromkeys(k for row in rows for k in row))

    def write(tmp: str) -> None:
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fieldnames, extrasaction="ignore")
            writer.writeheader()
            for row in rows:
                writer.writerow({k: ("" if json_safe(row.get(k)) is None else json_safe(row.get(k))) for k in fieldnames})

    return atomic_write(path, write)


def read_csv(path: str | os.PathLike) -> list[dict]:
    """Rows as dicts; numeric cells become floats, empty cells None."""

    def convert(cell: str):
        if cell == "":
            return None
        try:
            return float(cell)
        except ValueError:
            return cell

    with open(path, newline="") as f:
        return [{k: convert(v) for k, v in row.items()} for row in csv.DictReader(f)]


def write_jsonl(path: str | os.PathLike, rows: Iterable[dict]) -> Path:
    text = "".join(json.dumps(json_safe(r), sort_keys=True) + "\n" for r in rows)
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def save_figure(fig, path: str | os.PathLike, dpi: int = 110) -> Path:
    """Save a matplotlib figure atomically as PNG and close it."""
    import matplotlib.pyplot as plt

    try:
        return atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png"))
    finally:
        plt.close(fig)


def use_agg() -> None:
    """Headless plotting backend (call before importing pyplot in library code)."""
    import matplotlib

    matplotlib.use("Agg")
