"""The CLI checks arguments and paths before it loads a model: one line on stderr, exit code 2, no traceback."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import steerscope as ss
from steerscope.cli import common
from steerscope.cli.main import main
from steerscope.errors import VectorFileError


class ModelLoaded(Exception):
    """Raised by the patched model loader: the command got past validation."""


@pytest.fixture(autouse=True)
def no_model(monkeypatch):
    def refuse(args):
        raise ModelLoaded

    monkeypatch.setattr(common, "load_model_from_args", refuse)


@pytest.fixture
def files(tmp_path):
    v = ss.SteeringVector({3: torch.randn(8)}).save(tmp_path / "v.safetensors")
    ss.VectorSet({3: torch.randn(3, 8)}).save(tmp_path / "set.safetensors")
    (tmp_path / "afile").write_text("x")
    (tmp_path / "latin1.txt").write_bytes(b"caf\xe9 au lait\n")
    (tmp_path / "nan.jsonl").write_text('{"prompt": NaN}\n')
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text("{}")
    return tmp_path, v


def _run(argv, capsys):
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:
        code = exc.code
    err = capsys.readouterr().err
    return code, err


BAD = [  # (argv with {d} for the temp dir, a word the message must contain)
    (["discover", "melbo", "hi", "--out", "/proc/steerscope-x"], "not writable"),
    (["discover", "melbo", "hi", "--out", "{d}/afile/sub"], "is a file"),
    (["discover", "melbo", "hi", "--out", "{d}/afile"], "not a directory"),
    (["discover", "melbo", "hi", "--steps", "0", "--out", "{d}/o"], "at least 1"),
    (["discover", "ortho", "{d}/set.safetensors:0", "hi", "--steps", "0", "--out", "{d}/o"], "at least 1"),
    (["discover", "melbo", "hi", "--out", "{d}/run"], "already holds a run"),
    (["discover", "melbo", "--prompts-file", "{d}/missing.txt", "--out", "{d}/o"], "does not exist"),
    (["discover", "melbo", "--prompts-file", "{d}/latin1.txt", "--out", "{d}/o"], "not UTF-8"),
    (["discover", "melbo", "--prompts-file", "{d}/nan.jsonl", "--out", "{d}/o"], "non-empty string"),
    (["discover", "ortho", "{d}/missing.safetensors", "hi", "--out", "{d}/o"], "does not exist"),
    (["export", "gguf", "{d}/v.safetensors", "--out", "/proc/steerscope-x.gguf"], "not writable"),
    (["export", "gguf", "{d}/v.safetensors", "--out", "{d}/afile/v.gguf"], "is a file"),
    (["export", "gguf", "{d}/v.safetensors", "--out", "{d}"], "is a directory"),
    (["export", "import-gguf", "{d}/missing.gguf", "--out", "{d}/x.safetensors"], "does not exist"),
    (["optimize", "--prompt", "p", "--promote", "x", "--layer", "1", "--out", "/proc/steerscope-x.safetensors"],
     "not writable"),
    (["optimize", "--examples", "{d}/missing.jsonl", "--layer", "1"], "does not exist"),
    (["generate", "hi", "--positions", "last:0"], "last:0"),
    (["generate", "bad \udcff prompt"], "not valid Unicode"),
    (["discover", "melbo", "hi", "--radius", "0", "--out", "{d}/o"], "greater than 0"),
    (["discover", "lora", "--temperature", "0", "--out", "{d}/o"], "greater than 0"),
    (["generate", "hi", "--temperature", "-1", "--sample"], "0 or more"),
    (["generate", "hi", "--vector", "{d}/v.safetensors:abc"], "not a vector index"),
    (["generate", "hi", "--vector", "{d}/missing.safetensors:2"], "does not exist"),
    (["eval", "sweep", "{d}/v.safetensors", "--prompts", "hi", "--scales", "0:1e300:1e-300"], "more than"),
    (["eval", "sweep", "{d}/v.safetensors", "--prompts", "hi", "--positions", "last:0"], "last:0"),
    (["eval", "sweep", "{d}/v.safetensors", "--prompts", "hi", "--out", "/proc/steerscope-x"], "not writable"),
    (["eval", "kl", "{d}/v.safetensors", "--prompts", "hi", "--score-positions", "last:0"], "K >= 1"),
    (["eval", "kl", "{d}/v.safetensors", "--prompts", "hi", "--positions", "last:0"], "last:0"),
    (["eval", "transfer", "{d}/v.safetensors", "--targets", "x", "--out", "{d}/afile/o"], "is a file"),
    (["extract", "lora", "{d}/no-adapter", "--out", "{d}/v2.safetensors"], "does not exist"),
    (["extract", "contrastive", "{d}/missing.jsonl", "--out", "{d}/v2.safetensors"], "does not exist"),
    (["report", "{d}/missing-run"], "does not exist"),
    (["vector", "show", "{d}/set.safetensors:abc"], "not a vector index"),
]


@pytest.mark.parametrize(("argv", "expect"), BAD, ids=[" ".join(a[:2]) + f" {i}" for i, (a, _) in enumerate(BAD)])
def test_bad_input_fails_before_the_model_loads(argv, expect, files, capsys):
    tmp, _ = files
    code, err = _run([a.replace("{d}", str(tmp)) for a in argv], capsys)
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("steerscope: error:") and "Traceback" not in err, err
    assert expect in err, err


def test_good_input_reaches_the_model_and_temperature_zero_is_greedy(files, capsys):
    tmp, _ = files
    for argv in (["generate", "hi", "--sample", "--temperature", "0", "--vector", f"{tmp}/set.safetensors:1"],
                 ["discover", "melbo", "hi", "--out", f"{tmp}/new", "--steps", "1"],
                 ["discover", "melbo", "hi", "--out", f"{tmp}/run", "--resume"],
                 ["export", "lora", f"{tmp}/v.safetensors", "--out", f"{tmp}/adapter"]):
        with pytest.raises(ModelLoaded):
            main(argv)
    args = type("A", (), {"do_sample": True, "temperature": 0.0})()
    assert common.sampling(args) is False
    args.temperature = 0.7
    assert common.sampling(args) is True


def test_os_errors_after_parsing_are_one_line(monkeypatch, files, capsys):
    from steerscope.export import gguf

    tmp, _ = files

    def deny(*a, **k):
        raise PermissionError(13, "Permission denied", str(tmp / "x.gguf"))

    monkeypatch.setattr(gguf, "export_gguf", deny)
    code, err = _run(["export", "gguf", f"{tmp}/v.safetensors", "--out", f"{tmp}/x.gguf"], capsys)
    assert code == 2 and err.count("\n") == 1 and "Permission denied" in err


def test_messages_say_what_is_wrong(files):
    tmp, v = files
    with pytest.raises(VectorFileError, match="'abc' is not a vector index"):
        ss.load_vector(f"{v}:abc")
    with pytest.raises(VectorFileError, match="does not exist"):
        ss.load_vector(f"{tmp}/nope.safetensors:abc")


def test_written_files_have_normal_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        path = ss.SteeringVector({1: torch.ones(4)}).save(tmp_path / "v.safetensors")
        from steerscope.io import write_json

        other = write_json(tmp_path / "c.json", {"a": 1})
    finally:
        os.umask(old)
    for p in (path, other):
        assert stat.S_IMODE(p.stat().st_mode) == 0o644


def test_help_does_not_import_torch():
    src = Path(ss.__file__).parents[1]
    code = ("import sys\nfrom steerscope.cli.main import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "heavy = [m for m in ('torch', 'transformers', 'numpy') if m in sys.modules]\n"
            "assert not heavy, heavy\n")
    env = {**os.environ, "PYTHONPATH": str(src)}
    out = subprocess.run([sys.executable, "-c", code], check=False, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "discover" in out.stdout
