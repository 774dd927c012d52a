"""Bad input, measured: mutated files per loader, bad CLI invocations, `steerscope --help` time.

    PYTHONPATH=src python bench/bench_bad_input.py [--n 1000] [--src OTHER_SRC_DIR --label before]

Each loader gets ``--n`` mutated files (the mutations of ``tests/mutations.py``: byte flips, truncation, header
JSON edits, non-UTF-8 bytes, GGUF tensor/kv count edits; seeds 0..n-1, kinds in turn). Outcomes: a clean
SteerscopeError, loaded identical values, loaded different values without an error, any other exception. For text
files (prompts, run directories), which carry no checksum, "identical" means "loaded valid prompts / a usable run".
Writes ``bench/results/bad_input.json`` (``--src`` runs the same measurement on another source tree, e.g. the
commit before this work, and stores it under ``--label``).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "bad_input.json"
FIXED_TIME = "2026-01-01T00:00:00+00:00"  # the same base files (and so the same mutations) every run


def fuzz(n: int) -> dict:
    import logging

    logging.disable(logging.CRITICAL)  # corrupt files are logged as warnings; thousands of them here
    sys.path.insert(0, str(ROOT / "tests"))
    import torch
    from mutations import GGUF_KINDS, SAFETENSORS_KINDS, TEXT_KINDS, classify, mutate

    import steerscope as ss
    from steerscope.data import load_pairs, load_prompts
    from steerscope.export.gguf import export_gguf, import_gguf
    from steerscope.report.data import load_run

    tmp = Path(tempfile.mkdtemp(prefix="bench-bad-input-"))
    g = torch.Generator().manual_seed(0)
    vector = ss.SteeringVector({2: torch.randn(16, generator=g), 5: torch.randn(16, generator=g)}, model_type="llama",
                               model_name="tiny", method="caa", method_config={"lr": 0.1}, notes="fuzz base",
                               created_at=FIXED_TIME)
    vset = ss.VectorSet({3: torch.randn(4, 16, generator=g)}, method="melbo", model_name="tiny", notes="set",
                        created_at=FIXED_TIME)
    files = {"vector": vector.save(tmp / "v.safetensors").read_bytes(),
             "set": vset.save(tmp / "set.safetensors").read_bytes(),
             "gguf": export_gguf(vector, tmp / "v.gguf").read_bytes()}
    refs = {"vector": ss.SteeringVector.load(tmp / "v.safetensors"), "set": ss.VectorSet.load(tmp / "set.safetensors"),
            "set1": ss.load_vector(f"{tmp}/set.safetensors:1"), "gguf": import_gguf(tmp / "v.gguf")}
    prompts = "".join(f'{{"prompt": "prompt number {i}"}}\n' for i in range(5)).encode()
    pairs = "".join(f'{{"positive": "yes {i}", "negative": "no {i}"}}\n' for i in range(4)).encode()

    def valid_prompts(value, _):
        return isinstance(value, list) and bool(value) and all(
            (isinstance(v, str) and v.strip()) or (isinstance(v, dict) and isinstance(v.get("positive"), str))
            for v in value)

    loaders = {
        "SteeringVector.load / load_vector": ("vector", "safetensors", SAFETENSORS_KINDS, ss.SteeringVector.load,
                                              "vector", None),
        "VectorSet.load": ("set", "safetensors", SAFETENSORS_KINDS, ss.VectorSet.load, "set", None),
        'load_vector("set:1")': ("set", "safetensors", SAFETENSORS_KINDS, lambda p: ss.load_vector(f"{p}:1"), "set1",
                                 None),
        "import_gguf": ("gguf", "gguf", GGUF_KINDS, import_gguf, "gguf", None),
        "load_prompts (.jsonl)": (prompts, "text", TEXT_KINDS, load_prompts, None, valid_prompts),
        "load_pairs (.jsonl)": (pairs, "text", TEXT_KINDS, load_pairs, None, valid_prompts),
    }
    table = {}
    for name, (base, fmt, kinds, load, ref, same) in loaders.items():
        data = files[base] if isinstance(base, str) else base
        counts: Counter = Counter()
        others: Counter = Counter()
        t0 = time.perf_counter()
        for seed in range(n):
            kind = kinds[seed % len(kinds)]
            path = tmp / f"m.{'gguf' if fmt == 'gguf' else 'jsonl' if fmt == 'text' else 'safetensors'}"
            path.write_bytes(mutate(data, kind, random.Random(seed), fmt=fmt))
            outcome = classify(load, path, refs.get(ref), **({"same": same} if same else {}))
            counts[outcome.split(":")[0]] += 1
            if outcome.startswith("other"):
                others[outcome.split(":", 1)[1].split(":")[0].strip()] += 1
        table[name] = {"n": n, "error": counts["error"], "identical": counts["identical"],
                       "different": counts["different"], "other": counts["other"], "other_types": dict(others),
                       "seconds": round(time.perf_counter() - t0, 2)}
        print(f"{name:38s} {table[name]}", flush=True)
    table["load_run (run directory)"] = _fuzz_run_dir(tmp, n, mutate, classify, load_run, vset)
    print(f"{'load_run (run directory)':38s} {table['load_run (run directory)']}", flush=True)
    return table


def _fuzz_run_dir(tmp: Path, n: int, mutate, classify, load_run, vset) -> dict:
    from steerscope.io import write_csv, write_json, write_jsonl

    run = tmp / "run"
    vset.save(run / "vectors.safetensors")
    write_json(run / "config.json", {"method": "melbo", "model_name": "tiny", "d_model": 16})
    write_csv(run / "vectors.csv", [{"index": i, "norm": 1.0 + i} for i in range(4)])
    write_csv(run / "losses.csv", [{"vector": i, "step": s, "loss": 1.0 / (s + 1)} for i in range(4) for s in range(3)])
    write_jsonl(run / "samples.jsonl", [{"vector": v, "prompt": "p", "split": "heldout", "scale": 1.0,
                                         "completion": "t"} for v in (None, 0, 1)])
    names = ["config.json", "vectors.safetensors", "vectors.csv", "losses.csv", "samples.jsonl"]
    originals = {f: (run / f).read_bytes() for f in names}

    def load(path):
        data = load_run(path)
        data.table()
        return data

    counts: Counter = Counter()
    t0 = time.perf_counter()
    for seed in range(n):
        name = names[seed % len(names)]
        fmt = "safetensors" if name.endswith(".safetensors") else "text"
        kinds = ["flip", "truncate", "header", "non_utf8"] if fmt == "safetensors" else ["flip", "truncate",
                                                                                        "json_value", "non_utf8", "deep"]
        (run / name).write_bytes(mutate(originals[name], kinds[(seed // len(names)) % len(kinds)],
                                        random.Random(seed), fmt=fmt))
        counts[classify(load, run, None, same=lambda *_: True).split(":")[0]] += 1
        (run / name).write_bytes(originals[name])
    return {"n": n, "error": counts["error"], "identical": counts["identical"], "different": 0,
            "other": counts["other"], "seconds": round(time.perf_counter() - t0, 2)}


def bad_cli() -> dict:
    """The bad invocations of tests/unit/test_cli_fail_fast.py, in process, with a model loader that refuses."""
    sys.path.insert(0, str(ROOT / "tests" / "unit"))
    import io
    from contextlib import redirect_stderr

    import torch
    from test_cli_fail_fast import BAD, ModelLoaded

    import steerscope as ss
    from steerscope.cli import common
    from steerscope.cli.main import main

    def refuse(args):
        raise ModelLoaded

    common.load_model_from_args = refuse
    tmp = Path(tempfile.mkdtemp(prefix="bench-cli-"))
    ss.SteeringVector({3: torch.randn(8)}).save(tmp / "v.safetensors")
    ss.VectorSet({3: torch.randn(3, 8)}).save(tmp / "set.safetensors")
    (tmp / "afile").write_text("x")
    (tmp / "latin1.txt").write_bytes(b"caf\xe9\n")
    (tmp / "nan.jsonl").write_text('{"prompt": NaN}\n')
    (tmp / "run").mkdir()
    (tmp / "run" / "config.json").write_text("{}")
    outcomes: Counter = Counter()
    slowest = 0.0
    for argv, _ in BAD:
        err = io.StringIO()
        t0 = time.perf_counter()
        try:
            with redirect_stderr(err):
                code = main([a.replace("{d}", str(tmp)) for a in argv])
        except ModelLoaded:
            code = "model loaded"
        except Exception as exc:  # noqa: BLE001 - counted
            code = type(exc).__name__
        slowest = max(slowest, time.perf_counter() - t0)
        text = err.getvalue()
        clean = code == 2 and text.count("\n") == 1 and "Traceback" not in text
        outcomes["one line, exit 2, no model load" if clean else f"other ({code})"] += 1
    return {"n": len(BAD), **outcomes, "slowest_s": round(slowest, 3)}


def timed(cmd: list[str], runs: int = 3) -> float:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, env=env, capture_output=True, check=False, timeout=300)
        times.append(time.perf_counter() - t0)
    return round(statistics.median(times), 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="mutations per loader")
    parser.add_argument("--src", default=None, help="measure this source tree instead (a subprocess)")
    parser.add_argument("--label", default="after", help="key under which the results are stored")
    parser.add_argument("--fuzz-only", action="store_true", help="only the file mutations")
    args = parser.parse_args()
    if args.src:  # re-run this script against another tree: fuzz and --help only
        env = {**os.environ, "PYTHONPATH": str(Path(args.src).resolve()), "OMP_NUM_THREADS": "1"}
        out = subprocess.run([sys.executable, __file__, "--n", str(args.n), "--label", args.label, "--fuzz-only"],
                             env=env, check=True, capture_output=True, text=True)
        print(out.stdout)
        return
    result = {"fuzz": fuzz(args.n)}
    python = sys.executable
    result["help_s"] = timed([python, "-m", "steerscope.cli.main", "--help"])
    print(f"steerscope --help: {result['help_s']} s", flush=True)
    if not args.fuzz_only:
        result["bad_cli"] = bad_cli()
        print("bad CLI invocations:", result["bad_cli"], flush=True)
        with tempfile.TemporaryDirectory() as d:
            result["discover_melbo_steps_0_s"] = timed(
                [python, "-m", "steerscope.cli.main", "discover", "melbo", "hi", "--steps", "0", "--out", d + "/o"], 1)
        print(f"discover melbo --steps 0: {result['discover_melbo_steps_0_s']} s", flush=True)
    stored = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    stored[args.label] = result
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(stored, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
