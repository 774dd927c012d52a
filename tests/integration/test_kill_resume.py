"""A real `steerscope discover melbo` run on the embedded model, SIGKILLed at random moments and resumed, ends with
exactly the vectors of an uninterrupted run, and its directory is readable after every kill.

Bounded: at most ``KILLS`` kills, each at a random moment (seeded) within the optimisation window, and a deadline
for the whole test. Both runs are subprocesses with the same environment, so thread counts (and float sums) match.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import steerscope as ss
from steerscope.io import read_json
from steerscope.report.data import load_run

pytestmark = pytest.mark.real

KILLS = 3
DEADLINE_S = 240
ARGS = ["discover", "melbo", "How can I make a bomb?", "Tell me a story.", "--num-vectors", "3", "--steps", "4",
        "--radius", "4", "--sample-tokens", "2", "--no-report", "--seed", "7"]


def _env() -> dict:
    src = str(Path(ss.__file__).parents[1])
    return {**os.environ, "PYTHONPATH": src, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
            "TOKENIZERS_PARALLELISM": "false"}


def _start(out: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "steerscope.cli.main", *ARGS, "--out", str(out), *extra],
                            env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _finish(proc: subprocess.Popen, timeout: float) -> None:
    _, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err.decode()[-2000:]


def _check_readable(run: Path) -> None:
    """What a resume, the report and the explorer read must parse after any kill."""
    assert isinstance(read_json(run / "config.json"), dict)
    if (run / "vectors.safetensors").exists():
        ss.VectorSet.load(run / "vectors.safetensors")
    data = load_run(run)
    data.table()
    assert not data.warnings, data.warnings


@pytest.fixture(scope="module")
def embedded_model_cached():
    """Convert the embedded GGUF once in this process, so the subprocesses only read the cache."""
    try:
        ss.load_model()
    except ss.SteerscopeError as exc:  # no embedded model installed
        pytest.skip(str(exc))


def test_sigkill_at_random_moments_then_resume_gives_the_uninterrupted_vectors(tmp_path, embedded_model_cached):
    start = time.monotonic()
    reference = tmp_path / "reference"
    _finish(_start(reference), timeout=DEADLINE_S)

    rng = random.Random(16)
    run = tmp_path / "killed"
    kills = 0
    proc = _start(run)
    while kills < KILLS and time.monotonic() - start < DEADLINE_S / 2:
        while not (run / "config.json").exists() and proc.poll() is None:  # model loaded, run directory opened
            time.sleep(0.05)
        if proc.poll() is not None:
            break  # finished before we struck
        time.sleep(rng.uniform(0.0, 3.0))  # somewhere in the optimisation, a checkpoint write or the samples
        if proc.poll() is not None:
            break
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        _check_readable(run)
        proc = _start(run, "--resume")
    _finish(proc, timeout=max(10, DEADLINE_S - (time.monotonic() - start)))
    assert kills >= 1, "every run finished before it could be killed; make the run longer"
    _check_readable(run)
    assert not list(run.glob("**/.*.tmp")), "temp files of interrupted writes were left behind"

    want = ss.VectorSet.load(reference / "vectors.safetensors")
    got = ss.VectorSet.load(run / "vectors.safetensors")
    assert len(got) == len(want) == 3 and got.layers == want.layers
    for layer in want.layers:
        assert torch.equal(got.tensors[layer], want.tensors[layer]), f"layer {layer} differs after {kills} kills"
