"""Shipped prompt sets (jsonl files next to this module).

Example:
    >>> from steerscope.data import load_prompts, load_pairs
    >>> len(load_prompts("honesty_train")), len(load_prompts("honesty_heldout"))
    (400, 100)
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from ..errors import InvalidArgumentError


def data_path(name: str) -> Path:
    """Path of a shipped file, by stem (``honesty_train``) or file name (``honesty_train.jsonl``)."""
    file = name if name.endswith(".jsonl") else f"{name}.jsonl"
    path = Path(str(resources.files(__name__).joinpath(file)))
    if not path.is_file():
        shipped = sorted(p.stem for p in Path(str(resources.files(__name__))).glob("*.jsonl"))
        raise InvalidArgumentError(f"no shipped data set {name!r}; choose one of {', '.join(shipped)}")
    return path


def _rows(path: Path) -> list[dict]:
    rows = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise InvalidArgumentError(f"{path}:{n}: not valid JSON ({exc})") from None
    return rows


def load_prompts(name_or_path: str | Path) -> list[str]:
    """The ``prompt`` field of every row of a shipped set (by name) or of any jsonl file (by path)."""
    path = Path(name_or_path)
    if not path.is_file():
        path = data_path(str(name_or_path))
    rows = _rows(path)
    try:
        return [str(r["prompt"]) for r in rows]
    except (KeyError, TypeError):
        raise InvalidArgumentError(f"{path}: every line must be a JSON object with a \"prompt\" key") from None


def load_pairs(name_or_path: str | Path) -> list[dict]:
    """Contrastive pairs: rows with ``positive`` and ``negative`` (and an optional shared ``prompt``)."""
    path = Path(name_or_path)
    if not path.is_file():
        path = data_path(str(name_or_path))
    rows = _rows(path)
    for n, row in enumerate(rows, 1):
        if not isinstance(row, dict) or not isinstance(row.get("positive"), str) or not isinstance(
                row.get("negative"), str):
            raise InvalidArgumentError(f"{path}: pair {n} needs string fields \"positive\" and \"negative\"")
    if not rows:
        raise InvalidArgumentError(f"{path} holds no pairs")
    return rows
