"""Generated flags: one per config field, with the shared vocabulary's validators and flag names.

``config_parser`` makes a subcommand whose options come from a config class (``configs.add_config_flags``). The
names and defaults are the function's own; what the CLI adds is only how a string is checked while parsing (so a
typo fails before a model loads) and three spellings of the shell: ``out_dir`` → ``--out``, and the prompt lists
``heldout_prompts`` / ``calibration_prompts`` are read from files (``--heldout-file``, ``--calibration-file``).
"""

from __future__ import annotations

import argparse
import pkgutil
from collections.abc import Callable
from dataclasses import fields
from typing import Any

from ..configs import Config, add_config_flags, signature_config
from .common import (
    add_model_arg,
    add_prompt_args,
    float_list,
    non_negative_float,
    output_dir,
    positions_spec,
    positive_float,
    positive_int,
    prompts_file,
    vector_spec,
)

# fields the CLI never shows: a progress bar is always on in a terminal
SKIP = ("progress",)
# the shared vocabulary's flag names and other add_argument keywords
RENAME = {"out_dir": "out", "heldout_prompts": "heldout_file", "calibration_prompts": "calibration_file"}
OPTIONS = {"heldout_prompts": {"metavar": "FILE"}, "calibration_prompts": {"metavar": "FILE"},
           "out_dir": {"metavar": "DIR"}, "prompt_baseline": {"metavar": "SYSTEM_PROMPT"}}
# how each shared-vocabulary word is checked while parsing (a command may override one)
TYPES: dict[str, Callable[[str], Any]] = {
    "out_dir": output_dir, "heldout_prompts": prompts_file, "calibration_prompts": prompts_file,
    "positions": positions_spec, "batch_size": positive_int, "max_new_tokens": positive_int,
    "temperature": non_negative_float, "scales": float_list, "steps": positive_int,
    "num_vectors": positive_int, "block_size": positive_int, "lr": positive_float, "sample_tokens": positive_int,
}
CHOICES = {"operator": ["add", "ablate", "clamp"], "site": ["resid_post", "resid_pre", "mlp_out", "attn_out"]}


def config_parser(subparsers, name: str, target: str, *, func: Callable[[argparse.Namespace], int], help: str,
                  vector: str | None = None, prompts: str | None = None, skip: tuple[str, ...] = (),
                  types: dict[str, Callable[[str], Any]] | None = None, choices: dict[str, list] | None = None,
                  required: tuple[str, ...] = (), options: dict[str, dict[str, Any]] | None = None,
                  before: Callable[[argparse.ArgumentParser], None] | None = None) -> argparse.ArgumentParser:
    """A subcommand with one flag per field of the config of ``target`` (``"module:function"``), run by ``func``.

    Its arguments, in order: what ``before`` adds (positional data, output), a positional ``VECTOR`` (``vector``: its
    help), prompts (``prompts``: their help, see ``add_prompt_args``), the model flags, and the config's flags (a
    command's ``types``, ``choices`` and ``options`` of a field replace the shared ones), added when the command is
    first parsed (``Parser.defer``, which says why)."""
    p = subparsers.add_parser(name, help=help, description=help)
    p.set_defaults(func=func)

    def build(p: argparse.ArgumentParser) -> None:
        if before is not None:
            before(p)
        if vector is not None:
            p.add_argument("vector", metavar="VECTOR", type=vector_spec, help=vector)
        if prompts is not None:
            add_prompt_args(p, help=prompts)
        add_model_arg(p)
        cls = config_of(target)
        names = {f.name for f in fields(cls)}
        skipped = tuple(n for n in (*SKIP, *skip) if n in names)

        def merged(shared: dict, own: dict | None = None) -> dict:
            """The shared entries for the fields this command shows, then the command's own (which win)."""
            return {**{k: v for k, v in shared.items() if k in names and k not in skipped}, **(own or {})}

        group = p.add_argument_group(f"{cls.method_name} settings (the {cls.__name__} fields)")
        add_config_flags(group, cls, skip=skipped, rename=merged(RENAME), types=merged(TYPES, types),
                         choices=merged(CHOICES, choices), required=required, options=merged(OPTIONS, options))
        p.set_defaults(config_class=cls, config_skip=skipped)

    p.defer(build)
    return p


def config_of(target: str) -> type[Config]:
    """The config class of ``"module:function"``: its ``Config``, or one made from its signature."""
    fn = pkgutil.resolve_name(target)
    return getattr(fn, "Config", None) or signature_config(fn, target.partition(":")[2])
