"""Every loader is total: a mutated file gives a clean SteerscopeError or exactly the original values.

1,000 mutations per loader (byte flips, truncation, header JSON edits with wrong types, huge or non-numeric
numbers, deep nesting and non-objects, non-UTF-8 bytes, GGUF tensor/kv count edits), derandomised so CI sees the
same cases every run. ``bench/bench_bad_input.py`` counts the outcomes for the README.
"""

from __future__ import annotations

import random

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mutations import GGUF_KINDS, SAFETENSORS_KINDS, TEXT_KINDS, classify, mutate

import steerscope as ss
from steerscope.cli.common import read_prompts
from steerscope.data import load_pairs, load_prompts
from steerscope.export.gguf import export_gguf, import_gguf
from steerscope.report.data import load_run
from steerscope.vector import load_vector

FIXED_TIME = "2026-01-01T00:00:00+00:00"  # same base files, so the same mutated files in every run
FUZZ = settings(max_examples=1000, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def _vector():
    g = torch.Generator().manual_seed(0)
    return ss.SteeringVector({2: torch.randn(16, generator=g), 5: torch.randn(16, generator=g)}, model_type="llama",
                             model_name="tiny", method="caa", method_config={"lr": 0.1, "layers": [2, 5]},
                             notes="fuzz base", created_at=FIXED_TIME)


def _set():
    g = torch.Generator().manual_seed(1)
    return ss.VectorSet({3: torch.randn(4, 16, generator=g)}, method="melbo", model_name="tiny",
                        method_config={"steps": 3}, notes="set", created_at=FIXED_TIME)


@pytest.fixture(scope="module")
def bases(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    vector, vset = _vector(), _set()
    paths = {"vector": vector.save(root / "v.safetensors"), "set": vset.save(root / "set.safetensors"),
             "gguf": export_gguf(vector, root / "v.gguf")}
    refs = {"vector": ss.SteeringVector.load(paths["vector"]), "set": ss.VectorSet.load(paths["set"]),
            "set1": load_vector(f"{paths['set']}:1"), "gguf": import_gguf(paths["gguf"])}
    return root, {k: p.read_bytes() for k, p in paths.items()}, refs


LOADERS = {  # name -> (base file, file name, mutation kinds, format, loader, reference)
    "SteeringVector.load": ("vector", "m.safetensors", SAFETENSORS_KINDS, "safetensors", ss.SteeringVector.load,
                            "vector"),
    "load_vector": ("vector", "m.safetensors", SAFETENSORS_KINDS, "safetensors", load_vector, "vector"),
    "VectorSet.load": ("set", "m.safetensors", SAFETENSORS_KINDS, "safetensors", ss.VectorSet.load, "set"),
    "load_vector(set:1)": ("set", "m.safetensors", SAFETENSORS_KINDS, "safetensors",
                           lambda p: load_vector(f"{p}:1"), "set1"),
    "import_gguf": ("gguf", "m.gguf", GGUF_KINDS, "gguf", import_gguf, "gguf"),
}


@pytest.mark.parametrize("name", list(LOADERS))
def test_vector_loaders_are_total(name, bases):
    root, originals, refs = bases
    base, file_name, kinds, fmt, load, ref = LOADERS[name]
    seen: dict[str, int] = {}

    @FUZZ
    @given(kind=st.sampled_from(kinds), seed=st.integers(0, 2**32 - 1))
    def check(kind, seed):
        data = mutate(originals[base], kind, random.Random(seed), fmt=fmt)
        path = root / file_name
        path.write_bytes(data)
        outcome = classify(load, path, refs[ref])
        seen[outcome] = seen.get(outcome, 0) + 1
        assert outcome in ("error", "identical"), f"{name} / {kind} / seed {seed}: {outcome}"

    check()
    assert sum(seen.values()) >= 1000 and seen.get("error", 0) > 500


PROMPTS_JSONL = "".join(f'{{"prompt": "prompt number {i}", "id": {i}}}\n' for i in range(5)).encode()
PAIRS_JSONL = "".join(f'{{"positive": "yes {i}", "negative": "no {i}", "prompt": "q{i}"}}\n'
                      for i in range(4)).encode()
PROMPTS_TXT = b"first prompt\nsecond prompt\n\nthird\n"

TEXT_LOADERS = {
    "load_prompts": ("p.jsonl", PROMPTS_JSONL, load_prompts),
    "read_prompts(.txt)": ("p.txt", PROMPTS_TXT, lambda p: read_prompts(None, str(p))),
    "load_pairs": ("pairs.jsonl", PAIRS_JSONL, load_pairs),
}


def _valid_prompts(value) -> bool:
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):  # pairs
        return all(isinstance(v["positive"], str) and isinstance(v["negative"], str) for v in value)
    return isinstance(value, list) and bool(value) and all(isinstance(v, str) and v.strip() for v in value)


@pytest.mark.parametrize("name", list(TEXT_LOADERS))
def test_prompt_readers_are_total(name, tmp_path_factory):
    """Text files carry no checksum, so an edited prompt is a different prompt; what must hold is that the
    reader returns non-empty strings or raises a SteerscopeError (never NaN → "nan", null → "None", a traceback)."""
    root = tmp_path_factory.mktemp("prompts")
    file_name, original, load = TEXT_LOADERS[name]

    @FUZZ
    @given(kind=st.sampled_from(TEXT_KINDS), seed=st.integers(0, 2**32 - 1))
    def check(kind, seed):
        path = root / file_name
        path.write_bytes(mutate(original, kind, random.Random(seed), fmt="text"))
        outcome = classify(load, path, None, same=lambda value, _: _valid_prompts(value))
        assert outcome in ("error", "identical"), f"{name} / {kind} / seed {seed}: {outcome}"

    check()


def test_prompt_values_must_be_strings(tmp_path):
    for bad in ("NaN", "null", "3", "[\"a\"]", "\"\""):
        path = tmp_path / "p.jsonl"
        path.write_text(f'{{"prompt": "ok"}}\n{{"prompt": {bad}}}\n')
        with pytest.raises(ss.SteerscopeError, match="row 2"):
            load_prompts(path)
    path.write_bytes(b'{"prompt": "caf\xe9"}\n')
    with pytest.raises(ss.SteerscopeError, match="not UTF-8"):
        load_prompts(path)
    path.write_text('{"prompt": ' + "[" * 100_000 + "]" * 100_000 + "}\n")
    with pytest.raises(ss.SteerscopeError, match="nested too deeply"):
        load_prompts(path)


RUN_FILES = ["config.json", "vectors.safetensors", "vectors.csv", "losses.csv", "samples.jsonl", "sweep.json"]


def _run_dir(root):
    from steerscope.io import write_csv, write_json, write_jsonl

    run = root / "run"
    _set().save(run / "vectors.safetensors")
    write_json(run / "config.json", {"method": "melbo", "model_name": "tiny", "d_model": 16, "num_vectors": 4})
    write_csv(run / "vectors.csv", [{"index": i, "norm": 1.0 + i, "objective": 3.0 - i} for i in range(4)])
    write_csv(run / "losses.csv", [{"vector": i, "step": s, "loss": 1.0 / (s + 1)} for i in range(4) for s in range(3)])
    write_jsonl(run / "samples.jsonl", [{"vector": v, "prompt": "p", "split": "heldout", "scale": 1.0,
                                         "completion": "text"} for v in (None, 0, 1)])
    write_json(run / "sweep.json", {"rows": [{"scale": 0.0}], "window": [0, 1]})
    return run


def test_run_directory_reader_is_total(tmp_path_factory):
    """load_run (report and explorer) never raises anything but a SteerscopeError on a mutated run directory,
    and what it returns can be tabulated."""
    root = tmp_path_factory.mktemp("runfuzz")
    run = _run_dir(root)
    originals = {name: (run / name).read_bytes() for name in RUN_FILES}

    def load(_):
        data = load_run(run)
        data.table()
        data.vector_indices()
        return data

    @FUZZ
    @given(file=st.sampled_from(RUN_FILES), kind=st.sampled_from(["flip", "truncate", "json_value", "non_utf8",
                                                                   "deep"]), seed=st.integers(0, 2**32 - 1))
    def check(file, kind, seed):
        fmt = "safetensors" if file.endswith(".safetensors") else "text"
        kind = {"json_value": "header", "deep": "header"}.get(kind, kind) if fmt == "safetensors" else kind
        try:
            (run / file).write_bytes(mutate(originals[file], kind, random.Random(seed), fmt=fmt))
            outcome = classify(load, run, None, same=lambda value, _: True)
        finally:
            (run / file).write_bytes(originals[file])
        assert outcome in ("error", "identical"), f"{file} / {kind} / seed {seed}: {outcome}"

    check()


def test_run_directory_odd_values_are_left_out(tmp_path_factory):
    """Values a mutation found: an integer beyond float range, a negative or fractional index, non-string text."""
    from steerscope.io import write_jsonl

    run = _run_dir(tmp_path_factory.mktemp("odd"))
    rows = [{"vector": bad, "prompt": "p", "completion": "t", "scale": 1.0} for bad in (10**400, -1, 1.5, "abc", [])]
    rows += [{"vector": 0, "prompt": ["not", "text"], "completion": "t"}, {"vector": 1, "prompt": "p", "completion": "t",
                                                                         "scale": 10**400}]
    write_jsonl(run / "samples.jsonl", rows)
    data = load_run(run)
    assert [s["vector"] for s in data.samples] == [1] and data.samples[0]["scale"] is None
    assert [r["index"] for r in data.table()] == [0, 1, 2, 3]
