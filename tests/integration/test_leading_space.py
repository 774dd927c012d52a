"""The leading-space check of one-shot examples on a tiny model: which completions it looks at, and the threshold."""

import logging

from tiny import tiny_model

import steerscope as ss
from steerscope.methods.one_shot import leading_space_warnings


def test_only_spaced_completions_are_checked_and_the_threshold_applies(caplog):
    m = tiny_model("llama")
    examples = [ss.Example("the cat", promote=[" sat", "ran"], suppress=[" x"])]
    assert leading_space_warnings(m, examples, chat=False, threshold=1e9) == []
    with caplog.at_level(logging.WARNING, logger="steerscope.methods.one_shot"):
        found = leading_space_warnings(m, examples, chat=False, threshold=-1e9)
    assert [f["completion"] for f in found] == [" sat", " x"]
    assert all(f["first_token"] == " " for f in found) and "leading space" in caplog.text
