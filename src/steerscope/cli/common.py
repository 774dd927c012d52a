"""Argument helpers shared by commands: model loading, vector specs, validated numbers."""

from __future__ import annotations

import argparse
import logging
import math
import os
import pkgutil
import re
import sys
from collections.abc import Callable
from pathlib import Path

from ..configs import config_from_args, finite_float, integer
from ..errors import InvalidArgumentError, SteerscopeError

MINUS = "\u2212"
NEGATIVE_SPEC = re.compile(r"-\d[\d.eE+-]*[:,][\d.:,eE+-]*")


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (exit code 2) instead of usage dumps, and options added on first use.

    ``defer(fn)`` postpones adding a command's options until that command is parsed or its help shown: the flags
    generated from a config need the method's module (and torch), which ``steerscope --help`` must not import."""

    def error(self, message: str):
        sys.stderr.write(f"steerscope: error: {message} (see `{self.prog} --help`)\n")
        raise SystemExit(2)

    def defer(self, build: Callable[[argparse.ArgumentParser], None]) -> None:
        self._pending = build

    def build(self) -> Parser:
        """Add the deferred options now (tests call it to inspect every command)."""
        pending = self.__dict__.pop("_pending", None)
        if pending is not None:
            pending(self)
        return self

    def parse_known_args(self, args=None, namespace=None):
        self.build()
        args = sys.argv[1:] if args is None else list(args)
        # argparse reads a value starting with "-" as an option unless it is a plain negative number; a range or list
        # spec (--scales -8:8:1, -1,0,1) is passed on with a Unicode minus, which the number types read as "-"
        args = [MINUS + a[1:] if isinstance(a, str) and NEGATIVE_SPEC.fullmatch(a) else a for a in args]
        return super().parse_known_args(args, namespace)

    def format_help(self) -> str:
        self.build()
        return super().format_help()


def add_model_arg(parser: argparse.ArgumentParser) -> None:
    """--model plus the loading flags, mirroring ``load_model``'s keywords, on every command that loads a model."""
    parser.add_argument("--model", help="Hub id (cached), local dir or .gguf; default: embedded SmolLM2")
    add_load_args(parser)


def add_load_args(parser: argparse.ArgumentParser) -> None:
    """How to load the model: device, dtype, sharding, quantization, attention kernel (``load_model``'s keywords)."""
    group = parser.add_argument_group("model loading")
    group.add_argument("--device", help="cpu, cuda, cuda:N or mps (default: cuda when available)")
    group.add_argument("--dtype", choices=["float32", "bfloat16", "float16", "fp32", "bf16", "fp16"],
                       help="default: float32 on CPU, bfloat16 on GPU")
    group.add_argument("--device-map",
                       help="shard the model with accelerate: auto, balanced, sequential (overrides --device)")
    group.add_argument("--quantization", choices=["4bit", "8bit"],
                       help="load weights quantized with bitsandbytes (CPU or CUDA)")
    group.add_argument("--attn-implementation", help="eager, sdpa, flash_attention_2, ...")


def _checked(parse: Callable[[str], float], text: str, ok: Callable[[float], bool], says: str):
    """``parse(text)``, failing with ``says`` unless ``ok`` accepts it."""
    value = parse(text)
    if not ok(value):
        raise argparse.ArgumentTypeError(f"{text!r} {says}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a finite number greater than 0."""
    return _checked(finite_float, text, lambda v: v > 0, "must be greater than 0")


def non_negative_float(text: str) -> float:
    return _checked(finite_float, text, lambda v: v >= 0, "must be 0 or more")


def positive_int(text: str) -> int:
    return _checked(integer, text, lambda v: v >= 1, "must be at least 1")


def non_negative_int(text: str) -> int:
    return _checked(integer, text, lambda v: v >= 0, "must be 0 or more")


_MAX_LIST = 10_000


def float_list(text: str) -> list[float]:
    """``-8:8:1`` (start:stop:step, inclusive) or ``0,2,4``."""
    text = text.replace(MINUS, "-")
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

    keywords = ("device", "dtype", "device_map", "quantization", "attn_implementation")  # add_load_args's flags
    return load_model(getattr(args, "model", None), **{k: getattr(args, k, None) for k in keywords})


def read_prompts(prompts: list[str] | None, prompts_file: str | None) -> list[str]:
    """Prompts from the command line and/or a .txt (one per line) or .jsonl (``{"prompt": ...}``) file."""
    from ..data import load_prompts, read_text_file

    out = list(prompts or [])
    if prompts_file:
        path = Path(prompts_file)
        if not path.is_file():
            raise InvalidArgumentError(f"prompts file {path} does not exist")
        out.extend(load_prompts(path) if path.suffix == ".jsonl"
                   else [line for line in read_text_file(path, "prompts file").splitlines() if line.strip()])
    if not out or any(not p.strip() for p in out):
        raise InvalidArgumentError("give at least one non-empty prompt")
    for n, prompt in enumerate(out, 1):  # a tokenizer cannot encode lone surrogates (from a broken file or shell)
        try:
            prompt.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidArgumentError(f"prompt {n} holds characters that are not valid Unicode text (a lone "
                                       "surrogate); fix its encoding") from None
    return out


def add_prompt_args(parser: argparse.ArgumentParser, *, positional: bool = True, help: str = "prompts") -> None:
    """Prompts: positional ``PROMPT...`` (where no other list is positional), ``--prompts TEXT...`` and
    ``--prompts-file FILE``; all given are used, in that order."""
    if positional:
        parser.add_argument("prompts", nargs="*", metavar="PROMPT", help=help)
    parser.add_argument("--prompts", nargs="+", metavar="TEXT", dest="more_prompts" if positional else "prompts",
                        help="more prompts (the same as positional ones)" if positional else None)
    parser.add_argument("--prompts-file", type=input_file, metavar="FILE",
                        help=".txt (one per line) or .jsonl with a 'prompt' key")


def prompts_from_args(args, *, default_none: bool = False) -> list[str] | None:
    """The prompts of ``add_prompt_args``; None when none were given and the function has its own default."""
    given = [*(args.prompts or []), *(getattr(args, "more_prompts", None) or [])]  # no more_prompts: none positional
    if default_none and not given and not args.prompts_file:
        return None
    return read_prompts(given, args.prompts_file)


def prompts_file(text: str) -> list[str]:
    """argparse type: a prompts file (.txt or .jsonl), read while parsing, so a bad file fails before a model loads."""
    input_file(text)
    try:
        return read_prompts(None, text)
    except SteerscopeError as exc:
        raise argparse.ArgumentTypeError(f"{text}: {' '.join(str(exc).split())}") from None


def say_where(out_dir, *, explore: bool = False) -> None:
    """Where a run command wrote its results, and its report when the run layer wrote one."""
    if not out_dir:
        return
    report = Path(out_dir) / "report.html"
    print(f"written to {out_dir}/" + (f"\nreport: {report}" if report.is_file() else ""))
    if explore:
        print(f"explore: steerscope explore {out_dir}")


# -- paths: checked while parsing, so a typo or an unwritable output fails before any model is loaded ----------------

def _check_writable(text: str, want_dir: bool) -> str:
    """Fail unless ``text`` can be created (or overwritten) as a directory or a file."""
    import tempfile
    what = "directory" if want_dir else "file"
    if not text or "\0" in text:
        raise argparse.ArgumentTypeError(f"{text!r} is not a usable path")
    path = Path(text)
    if path.exists() and path.is_dir() != want_dir:
        raise argparse.ArgumentTypeError(
            f"{text} exists and is not a directory; choose another output {what}" if want_dir
            else f"{text} is a directory; give a file name for the output {what}")
    base = (path if want_dir else path.parent).absolute()
    while not base.exists() and base != base.parent:  # the closest ancestor that exists
        base = base.parent
    if not base.is_dir():
        raise argparse.ArgumentTypeError(f"cannot create {text}: {base} is a file, not a directory")
    try:  # os.access says yes to root everywhere (even /proc); creating a file is the real test
        fd, probe = tempfile.mkstemp(prefix=".steerscope-probe-", dir=base)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise argparse.ArgumentTypeError(f"cannot write the output {what} {text}: {base} is not writable "
                                         f"({exc.strerror or exc})") from None
    return text


def output_dir(text: str) -> str:
    """argparse type: a directory that exists or can be created, and is writable."""
    return _check_writable(text, want_dir=True)


def output_file(text: str) -> str:
    """argparse type: a file path whose directory exists or can be created, and is writable."""
    return _check_writable(text, want_dir=False)


def _existing(text: str, what: str) -> Path:
    """``text`` as a path, failing unless it exists and is a ``what`` ("file" or "directory")."""
    path = Path(text)
    if "\0" in text or not path.exists():
        raise argparse.ArgumentTypeError(f"{what} {text} does not exist; check the path")
    if not (path.is_file() if what == "file" else path.is_dir()):
        raise argparse.ArgumentTypeError(f"{text} is not a {what}")
    return path


def input_file(text: str) -> str:
    """argparse type: an existing, readable file."""
    if not os.access(_existing(text, "file"), os.R_OK):
        raise argparse.ArgumentTypeError(f"file {text} is not readable")
    return text


def input_dir(text: str) -> str:
    """argparse type: an existing directory."""
    _existing(text, "directory")
    return text


VECTOR_HELP = "vector file, or FILE:INDEX for one vector of a set"


def vector_spec(text: str) -> str:
    """argparse type: ``FILE[:INDEX]``: an existing vector file, or a result directory holding one (read later)."""
    head, sep, tail = text.rpartition(":")
    if sep and tail.lstrip("-").isdigit():
        if not Path(head).is_dir():
            input_file(head)
        return text
    if Path(text).is_file() or Path(text).is_dir():
        return text
    if sep and head and Path(head).is_file():
        raise argparse.ArgumentTypeError(f"{text}: {tail!r} is not a vector index; use {head}:INDEX with an integer "
                                         f"INDEX (e.g. {head}:0)")
    input_file(text)
    return text


def library_type(target: str) -> Callable[[str], str]:
    """An argparse type that checks a value with the library's own parser ``target`` (``"module:function"``,
    imported on first use), so the CLI and the Python API accept the same values with the same message."""

    def check(text: str) -> str:
        try:
            pkgutil.resolve_name(target)(text)
        except SteerscopeError as exc:
            raise argparse.ArgumentTypeError(" ".join(str(exc).split())) from None
        return text

    check.__name__ = target.rpartition(".")[2].rpartition(":")[2]
    return check


# steered positions: all | prompt | generated | from:K | last:K (K >= 1), as ``steer(positions=)`` takes them
positions_spec = library_type("steerscope.steer:Positions.parse")


def sampling(args) -> bool:
    """Whether to sample: ``--do-sample`` with ``--temperature 0`` means greedy decoding (its limit), not an error."""
    if args.do_sample and args.temperature == 0:
        logging.getLogger(__name__).warning("--temperature 0: decoding greedily")
        return False
    return args.do_sample


def config_and_model(args, **overrides):
    """A generated command's config (``args.config_class``, from ``flags.config_parser``; progress bar on), then its
    model. Everything checkable without the model fails first: the config's own checks, and an ``--out`` that
    already holds a run (unless ``--resume``) on the commands that can resume."""
    config = config_from_args(args.config_class, args, progress=True, **overrides)
    out = getattr(args, "out_dir", None)
    if out and not getattr(args, "resume", True) and (Path(out) / "config.json").is_file():
        raise InvalidArgumentError(f"{out} already holds a run; pass --resume to continue it or choose another --out")
    return config, load_model_from_args(args)
