"""``steerscope`` command line: parse, call public functions, print. No logic lives here.

Each command module exposes ``register(commands, groups)``: ``commands`` is the top-level subparsers object and
``groups`` maps a group name (discover, extract, eval, export, vector) to its subparsers. A command sets
``func=handler`` on its parser; the handler takes the parsed namespace and returns an exit code.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import warnings

from ..errors import SteerscopeError
from .common import Parser

# one module per owner so commands can be built side by side
COMMAND_MODULES = ["info", "generate", "vector", "demo", "discover", "discover_lora", "optimize", "eval_transfer",
                   "extract", "evaluate", "export", "report", "explore", "serve"]
GROUPS = {
    "discover": "find behaviours without labels (melbo, ortho, lora)",
    "extract": "vectors from contrasts or LoRA adapters",
    "eval": "evaluate vectors (sweep, transfer, linearity, kl)",
    "export": "ship vectors (lora, gguf)",
    "vector": "inspect vector files",
}


def _help_of(parser: argparse.ArgumentParser):
    """A command function that prints ``parser``'s help and returns exit code 2 (what to run was not given)."""

    def show_help(args) -> int:
        parser.print_help()
        return 2

    return show_help


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="steerscope", description="Find, optimise, extract, evaluate and ship steering vectors.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    parser.set_defaults(func=_help_of(parser))  # no command: the help, exit code 2
    # subcommand parsers are Parsers too: argparse makes them of the parent's class
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    groups = {}
    for name, help_text in GROUPS.items():
        group_parser = commands.add_parser(name, help=help_text)
        groups[name] = group_parser.add_subparsers(dest="subcommand", metavar="SUBCOMMAND")
        group_parser.set_defaults(func=_help_of(group_parser))  # a group without its subcommand: its help
    for module_name in COMMAND_MODULES:  # an import error surfaces: a command never disappears silently
        importlib.import_module(f"steerscope.cli.{module_name}").register(commands, groups)
    return parser


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    """Warnings on the command line are one line too (no source file and line)."""
    return f"steerscope: warning: {' '.join(str(message).split())}\n"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or a bad argument (already reported in one line): return its code
        return exc.code if isinstance(exc.code, int) else 2
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    warnings.formatwarning = _one_line_warning
    try:
        return int(args.func(args) or 0)
    except SteerscopeError as exc:
        sys.stderr.write(f"steerscope: error: {' '.join(str(exc).split())}\n")
        return 2
    except OSError as exc:  # an unwritable/vanished path found after parsing: still one line, exit 2
        where = f" {exc.filename}" if exc.filename else ""
        sys.stderr.write(f"steerscope: error: cannot access{where}: {exc.strerror or exc}; check the path and its "
                         "permissions\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("steerscope: interrupted (checkpointed runs continue with --resume)\n")
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
