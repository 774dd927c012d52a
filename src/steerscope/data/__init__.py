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


def read_text_file(path: Path, what: str = "file") -> str:
    """A UTF-8 text file's contents; a missing, unreadable or non-UTF-8 file is an ``InvalidArgumentError``."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidArgumentError(f"{what} {path} is not UTF-8 text (bad byte at offset {exc.start}); "
                                   "save it as UTF-8") from None
    except FileNotFoundError:
        raise InvalidArgumentError(f"{what} {path} does not exist; check the path") from None
    except (OSError, ValueError) as exc:
        raise InvalidArgumentError(f"cannot read {what} {path} ({exc})") from None


def _rows(path: Path) -> list:
    rows = []
    for n, line in enumerate(read_text_file(path, "data file").splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise InvalidArgumentError(f"{path}:{n}: not valid JSON ({exc})") from None
            except RecursionError:
                raise InvalidArgumentError(f"{path}:{n}: JSON nested too deeply to read") from None
            except ValueError as exc:
                raise InvalidArgumentError(f"{path}:{n}: unreadable JSON value ({exc})") from None
    return rows


def _resolve(name_or_path: str | Path) -> Path:
    path = Path(name_or_path)
    try:
        found = path.is_file()
    except (OSError, ValueError):
        found = False
    return path if found else data_path(str(name_or_path))


def load_prompts(name_or_path: str | Path) -> list[str]:
    """The ``prompt`` field of every row of a shipped set (by name) or of any jsonl file (by path).

    Every row must be a JSON object whose ``prompt`` is a non-empty string (not a number, null or NaN).

    Example:
        >>> load_prompts("honesty_heldout")[:1]
        ['...']
    """
    path = _resolve(name_or_path)
    prompts = []
    for n, row in enumerate(_rows(path), 1):
        if not isinstance(row, dict) or "prompt" not in row:
            raise InvalidArgumentError(f"{path}: row {n}: every line must be a JSON object with a \"prompt\" key")
        prompt = row["prompt"]
        if not isinstance(prompt, str) or not prompt.strip():
            shown = json.dumps(prompt)[:40] if not isinstance(prompt, float) else repr(prompt)
            raise InvalidArgumentError(f"{path}: row {n}: \"prompt\" must be a non-empty string, got {shown}")
        prompts.append(prompt)
    if not prompts:
        raise InvalidArgumentError(f"{path} holds no prompts; add lines like {{\"prompt\": \"...\"}}")
    return prompts


def load_pairs(name_or_path: str | Path) -> list[dict]:
    """Contrastive pairs: rows with ``positive`` and ``negative`` (and an optional shared ``prompt``)."""
    path = _resolve(name_or_path)
    rows = _rows(path)
    for n, row in enumerate(rows, 1):
        if not isinstance(row, dict) or not isinstance(row.get("positive"), str) or not isinstance(
                row.get("negative"), str):
            raise InvalidArgumentError(f"{path}: pair {n} needs string fields \"positive\" and \"negative\"")
        if row.get("prompt") is not None and not isinstance(row["prompt"], str):
            raise InvalidArgumentError(f"{path}: pair {n}: \"prompt\" must be a string when given")
    if not rows:
        raise InvalidArgumentError(f"{path} holds no pairs")
    return rows
