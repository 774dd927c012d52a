"""The model-running commands' flags are generated from the configs (issue 14): one flag per field, the same default
as Python, so the CLI and the library cannot drift apart. No model is loaded here."""

from __future__ import annotations

import argparse
import dataclasses
import importlib
from pathlib import Path

import pytest
import torch

import steerscope as ss
from steerscope.cli import common
from steerscope.cli.main import COMMAND_MODULES, build_parser, main
from steerscope.configs import config_defaults, config_from_args

CONVERTED = {
    ("discover", "melbo"), ("discover", "ortho"), ("discover", "lora"), ("optimize",), ("extract", "contrastive"),
    ("extract", "lora"), ("eval", "sweep"), ("eval", "transfer"), ("eval", "linearity"), ("eval", "kl"),
    ("export", "lora"), ("sweep",),
}
# fields a command leaves out on purpose: the progress bar is always on; a tensor (init) and a 2-D result (reduction)
# have no command-line form
ALLOWED_SKIPS = {"progress", "init", "reduction"}


def _commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                sub.build()
                yield (*path, name), sub
                yield from _commands(sub, (*path, name))


def generated():
    return {path: p for path, p in _commands(build_parser()) if p.get_default("config_class") is not None}


def test_every_model_running_command_is_generated():
    assert set(generated()) == CONVERTED


@pytest.mark.parametrize("path", sorted(CONVERTED), ids=" ".join)
def test_one_flag_per_field_with_the_python_default(path):
    p = generated()[path]
    cls, skipped = p.get_default("config_class"), set(p.get_default("config_skip"))
    assert skipped <= ALLOWED_SKIPS
    defaults = config_defaults(cls)
    for f in dataclasses.fields(cls):
        actions = [a for a in p._actions if a.dest == f.name and a.option_strings]
        if f.name in skipped:
            assert not actions, f"{path}: skipped field {f.name} has a flag"
            continue
        assert len(actions) == 1, f"{path}: {f.name} has {len(actions)} flags"
        action = actions[0]
        if f.name in defaults:
            assert action.default == defaults[f.name], f"{path}: --{f.name} default {action.default!r}"
        else:
            assert action.required, f"{path}: {f.name} has no default, so its flag is required"
        assert f.name.replace("_", "-") in " ".join(action.option_strings) or f.name in (
            "out_dir", "heldout_prompts", "calibration_prompts")
    names = {a.dest for a in p._actions}
    assert "out" in names or "out_dir" in names or path == ("eval", "kl")
    # the defaults a bare command line gives are exactly the Python defaults
    namespace = argparse.Namespace(**{a.dest: a.default for a in p._actions if a.dest in defaults})
    cfg = config_from_args(cls, namespace, **{f.name: 1 for f in dataclasses.fields(cls) if f.name not in defaults})
    assert {k: v for k, v in cfg.as_kwargs().items() if k in defaults} == defaults


def test_every_command_module_imports():
    cli = Path(common.__file__).parent
    modules = {p.stem for p in cli.glob("*.py")} - {"__init__", "main", "common", "flags"}
    assert modules == set(COMMAND_MODULES)
    for name in COMMAND_MODULES:
        importlib.import_module(f"steerscope.cli.{name}")


@pytest.fixture
def vector(tmp_path):
    return ss.SteeringVector({1: torch.randn(8)}).save(tmp_path / "v.safetensors")


def test_types_lists_and_optional_values(vector, tmp_path):
    p = generated()
    v = str(vector)
    args = p[("eval", "sweep")].parse_args([v, "hi", "--scales", "-8:8:8", "12", "--metrics", "count:a"])
    cfg = config_from_args(ss.SweepConfig, args)
    assert cfg.scales == (-8.0, 0.0, 8.0, 12.0) and cfg.metrics == "count:a"  # one spec: the str form
    args = p[("eval", "kl")].parse_args([v, "--scale", "4"])
    assert args.scale == 4.0
    args = p[("eval", "kl")].parse_args([v, "--scale", "1", "2"])
    assert args.scale == [1.0, 2.0]
    args = p[("discover", "lora")].parse_args(["--stop-kl", "none", "--out", str(tmp_path / "o"), "--resume", "--no-chat"])
    assert (args.stop_kl, args.resume, args.chat) == (None, True, False)
    args = p[("eval", "transfer")].parse_args([v, "--targets", "Sure"])
    assert config_from_args(ss.TransferConfig, args).targets == "Sure"


def test_old_top_level_sweep_still_runs_with_a_note(vector, monkeypatch, capsys):
    class Loaded(Exception):
        pass

    def refuse(args):
        raise Loaded

    monkeypatch.setattr(common, "load_model_from_args", refuse)
    with pytest.raises(Loaded):
        main(["sweep", str(vector), "hi", "--scales", "-1:1:1"])
    assert "eval sweep" in capsys.readouterr().err
    with pytest.raises(Loaded):
        main(["eval", "sweep", str(vector), "hi"])
    assert capsys.readouterr().err == ""


def _shell_examples() -> list[tuple[str, str]]:
    """``steerscope ...`` lines of the README's and docs' shell blocks (placeholders with ``...``/``[`` left out)."""
    import re

    root = Path(__file__).resolve().parents[2]
    out = []
    for path in [root / "README.md", *sorted((root / "docs").glob("*.md"))]:
        lines, fence = [], None
        for line in path.read_text().splitlines():
            if line.startswith("```"):
                fence = None if fence is not None else line[3:].strip()
                continue
            if fence in ("bash", "sh", "console", ""):
                lines.append(line)
        text = "\n".join(lines).replace("\\\n", " ")
        for line in text.splitlines():
            line = re.split(r"\s+#", line.strip().removeprefix("$ "))[0]
            for part in (p.strip() for p in line.split("&&")):
                if part.startswith("steerscope ") and "..." not in part and "[" not in part:
                    out.append((path.name, part))
    return out


def test_shell_examples_in_the_docs_parse(tmp_path, monkeypatch):
    """Every CLI example in README.md and docs/*.md parses with today's flags (the files it names are faked)."""
    import re
    import shlex

    monkeypatch.chdir(tmp_path)
    examples = _shell_examples()
    assert len(examples) > 20
    for name, line in examples:
        argv = shlex.split(line)[1:]
        for prev, tok in zip(["", *argv], argv):
            base = re.sub(r":\d+$", "", tok)
            if prev == "--out" or tok.startswith(("-", "http")):
                continue
            if re.search(r"\.(safetensors|txt|jsonl|gguf)$", base):
                Path(base).parent.mkdir(parents=True, exist_ok=True)
                Path(base).write_text("hello\n")
            elif "adapter" in base or (base.startswith("runs/") and "." not in base):
                Path(base).mkdir(parents=True, exist_ok=True)
        try:
            build_parser().parse_args(argv)
        except SystemExit as exc:
            pytest.fail(f"{name}: `{line}` does not parse (exit {exc.code})")
