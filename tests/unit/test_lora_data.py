"""Shipped honesty prompts and contrastive pairs: sizes, a situation-level held-out split, loaders' errors."""

import json

import pytest

from steerscope.data import data_path, load_pairs, load_prompts
from steerscope.errors import InvalidArgumentError


def situations(name):
    return {json.loads(line)["situation"] for line in data_path(name).read_text().splitlines() if line.strip()}


def test_honesty_sets_sizes_and_disjoint_situations():
    train, held = load_prompts("honesty_train"), load_prompts("honesty_heldout")
    assert len(train) == 400 and len(held) == 100
    assert len(set(train)) == 400 and len(set(held)) == 100
    assert not situations("honesty_train") & situations("honesty_heldout")
    assert all(p.strip() for p in train + held)


def test_pairs_file_loads():
    pairs = load_pairs("contrastive_happy_sad")
    assert len(pairs) >= 16
    assert all(p["positive"] != p["negative"] for p in pairs)


def test_loader_errors(tmp_path):
    with pytest.raises(InvalidArgumentError, match="choose one of"):
        load_prompts("no_such_set")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"positive": "a"}\n')
    with pytest.raises(InvalidArgumentError, match="negative"):
        load_pairs(bad)
