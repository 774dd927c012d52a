"""Argument helpers shared by commands: model loading, vector specs, validated numbers."""

from __future__ import annotations

import argparse
import math


def add_model_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=None, help="Hub id (cached), local dir or .gguf; default: embedded SmolLM2")


def finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


_MAX_LIST = 10_000


def float_list(text: str) -> list[float]:
    """``-8:8:1`` (start:stop:step, inclusive) or ``0,2,4``."""
    try:
        if ":" in text:
            start, stop, step = (float(x) for x in text.split(":"))
            if step <= 0 or stop < start:
                raise ValueError
            count = (stop - start) / step + 1e-9
            if not math.isfinite(count) or count > _MAX_LIST:
                raise argparse.ArgumentTypeError(f"{text!r} gives more than {_MAX_LIST} values; use a larger step")
            return [round(start + i * step, 10) for i in range(math.floor(count) + 1)]
        values = [float(x) for x in text.split(",") if x.strip()]
    except (ValueError, OverflowError):
        raise argparse.ArgumentTypeError(f"{text!r}: use start:stop:step (e.g. -8:8:1) or a list like 0,2,4") from None
    if not values or not all(math.isfinite(v) for v in values):
        raise argparse.ArgumentTypeError(f"{text!r} has no finite numbers")
    return values


def load_model_from_args(args):
    from ..models.load import load_model

    return load_model(getattr(args, "model", None))


def read_prompts(prompts: list[str] | None, prompts_file: str | None) -> list[str]:
    """Prompts from the command line and/or a .txt (one per line) or .jsonl (``{"prompt": ...}``) file."""
    from pathlib import Path

    from ..data import load_prompts, read_text_file
    from ..errors import InvalidArgumentError

    out = list(prompts or [])
    if prompts_file:
        path = Path(prompts_file)
        if not path.is_file():
            raise InvalidArgumentError(f"prompts file {path} does not exist")
        if path.suffix == ".jsonl":
            out.extend(load_prompts(path))
        else:
            out.extend(line for line in read_text_file(path, "prompts file").splitlines() if line.strip())
    if not out or any(not p.strip() for p in out):
        raise InvalidArgumentError("give at least one non-empty prompt")
    _check_encodable(out)
    return out


def _check_encodable(prompts: list[str]) -> None:
    """Refuse text a tokenizer cannot encode (lone surrogates from a broken file or shell)."""
    from ..errors import InvalidArgumentError

    for n, prompt in enumerate(prompts, 1):
        try:
            prompt.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidArgumentError(f"prompt {n} holds characters that are not valid Unicode text (a lone "
                                       "surrogate); fix its encoding") from None


def add_report_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-report", action="store_true", help="do not write report.html at the end")


def finish_report(args, out_dir) -> None:
    """Write OUT/report.html at the end of a run command unless --no-report; say where it is."""
    if getattr(args, "no_report", False) or not out_dir:
        return
    from ..report import write_report_if_available

    path = write_report_if_available(out_dir)
    if path is not None:
        print(f"report: {path}")
