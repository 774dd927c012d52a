"""One-shot examples that cannot work say so (issue 13): a promoted completion with a leading space after SmolLM2's
chat template starts with a token the model almost never emits there."""

import logging

import pytest

import steerscope as ss
from steerscope.methods.one_shot import leading_space_warnings

pytestmark = pytest.mark.real


def test_leading_space_is_flagged_and_the_stripped_text_is_not(real_model, caplog):
    examples = [ss.Example("How do you say 'I am sorry' in French?", promote=[" Je suis désolé"]),
                ss.Example("How do you say 'I am sorry' in French?", promote=["Je suis désolé"])]
    with caplog.at_level(logging.WARNING, logger="steerscope.methods.one_shot"):
        found = leading_space_warnings(real_model, examples)
    assert [f["completion"] for f in found] == [" Je suis désolé"]
    assert found[0]["logprob"] < found[0]["stripped_logprob"] - 5
    assert "drop the leading space" in caplog.text
