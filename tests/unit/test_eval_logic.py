"""Evaluation logic without a model: coherence window, Hungarian score, log-odds summariser, judge cache, parsing."""

import itertools
import math
from collections import Counter

import numpy as np
import pytest

from steerscope.errors import InvalidArgumentError
from steerscope.evaluate.judge_tasks import parse_choice, wilson_interval
from steerscope.evaluate.judges import JudgeCache, _ask_with_attempts
from steerscope.evaluate.keywords import KeywordSummarizer, log_odds_z, terms
from steerscope.evaluate.linearity import matched_similarity
from steerscope.evaluate.metrics import distinct_n, parse_metric, regex_count, repetition_rate, target_rate
from steerscope.evaluate.window import DEFAULT_TOLERANCE, best_in_window, coherence_window, resolve_tolerance


def rows(ppl_by_scale, rep=None, empty=None, metric=None):
    return [{"scale": s, "perplexity": p, "repetition_rate": (rep or {}).get(s, 0.0),
             "empty_rate": (empty or {}).get(s, 0.0), "m": (metric or {}).get(s, 0.0)}
            for s, p in ppl_by_scale.items()]


# -- coherence window -----------------------------------------------------------------------------------------
def test_window_is_the_coherent_run_around_zero():
    r = rows({-8: 90, -4: 5, -2: 3, 0: 2, 2: 4, 4: 7, 8: 3})  # 8 looks fine again but 4 broke the run
    assert coherence_window(r, resolve_tolerance(2.0)) == (-4, 2)
    assert coherence_window(r, resolve_tolerance(0.0)) == (0, 0)  # nothing may be worse than the baseline
    assert coherence_window(r, resolve_tolerance(100.0)) == (-8, 8)


def test_window_respects_repetition_empty_and_nan():
    r = rows({-2: 2, -1: 2, 0: 2, 1: 2, 2: 2}, rep={-2: 0.5}, empty={2: 0.9})
    assert coherence_window(r, DEFAULT_TOLERANCE) == (-1, 1)
    r = rows({-1: math.nan, 0: 2, 1: 2})  # NaN perplexity (every response empty) is never coherent
    assert coherence_window(r, DEFAULT_TOLERANCE) == (0, 1)
    with pytest.raises(InvalidArgumentError, match="scale 0"):
        coherence_window(rows({1: 2, 2: 2}), DEFAULT_TOLERANCE)


def test_best_scale_is_inside_the_window():
    r = rows({-4: 90, -2: 3, 0: 2, 2: 3, 4: 90}, metric={-4: 9, -2: 1, 0: 0, 2: 2, 4: 10})
    window = coherence_window(r, DEFAULT_TOLERANCE)
    assert window == (-2, 2)
    assert best_in_window(r, window, "m") == 2
    assert best_in_window(r, window, "m", maximize=False) == 0
    assert best_in_window(r, window, None) is None


def test_tolerance_validation():
    assert resolve_tolerance(0.5)["perplexity"] == 0.5
    assert resolve_tolerance({"empty_rate": 0.0})["empty_rate"] == 0.0
    with pytest.raises(InvalidArgumentError):
        resolve_tolerance({"fluency": 1})
    with pytest.raises(InvalidArgumentError):
        resolve_tolerance(-1.0)


# -- Hungarian score ------------------------------------------------------------------------------------------
def test_hungarian_on_hand_made_matrices():
    score, pairs = matched_similarity(np.array([[0.1, 0.9], [0.8, 0.2]]))
    assert pairs == [(0, 1), (1, 0)] and score == pytest.approx(0.85)
    assert matched_similarity(np.eye(4))[0] == pytest.approx(1.0)
    # greedy would take 0.9 then be forced into 0.0; the optimum is 0.8 + 0.8
    score, pairs = matched_similarity(np.array([[0.9, 0.8], [0.8, 0.0]]))
    assert sorted(pairs) == [(0, 1), (1, 0)] and score == pytest.approx(0.8)


def test_hungarian_equals_brute_force():
    rng = np.random.default_rng(0)
    for _ in range(20):
        s = rng.uniform(-1, 1, size=(5, 5))
        best = max(np.mean([s[i, p[i]] for i in range(5)]) for p in itertools.permutations(range(5)))
        assert matched_similarity(s)[0] == pytest.approx(best)


def test_hungarian_skips_missing_summaries():
    s = np.array([[0.5, np.nan, 0.2], [np.nan, np.nan, np.nan], [0.1, np.nan, 0.7]])
    score, pairs = matched_similarity(s)
    assert sorted(pairs) == [(0, 0), (2, 2)] and score == pytest.approx(0.6)
    assert math.isnan(matched_similarity(np.full((2, 2), np.nan))[0])


# -- log-odds summariser --------------------------------------------------------------------------------------
BASE = ["The weather today is sunny and warm.", "I think the weather will be nice.",
        "It is a nice day for a walk in the park.", "The park is quiet today."]
PIRATE = ["Arr, the ship sails today, matey!", "The pirate ship is in the park, arr.",
          "Arr matey, the weather is fine for a pirate.", "A pirate ship, arr!"]


def test_log_odds_ranks_shifted_words_first():
    z = log_odds_z(Counter(t for x in PIRATE for t in terms(x, (1,))), Counter(t for x in BASE for t in terms(x, (1,))))
    top = sorted(z, key=z.get, reverse=True)[:4]
    assert set(top) == {"arr", "pirate", "ship", "matey"}
    assert z["weather"] < 0 and z["nice"] < 0  # typical of the baseline
    assert abs(z["the"]) < z["arr"]  # shared function words are not distinctive


def test_informative_prior_shrinks_rare_words():
    base = Counter({"x": 50, "y": 50})
    z = log_odds_z(Counter({"x": 50, "y": 50, "rare": 1, "common": 20}), base)
    assert z["common"] > z["rare"] > 0  # same direction, more evidence -> larger z
    weak = log_odds_z(Counter({"x": 50, "y": 50, "rare": 1}), base, prior_scale=10.0)
    assert weak["rare"] < z["rare"]  # a stronger prior shrinks harder


def test_keyword_summary():
    (summary,) = KeywordSummarizer(top_k=4)([PIRATE * 2], BASE * 2)
    assert set(summary.split(", ")) == {"arr", "pirate", "ship", "matey"}
    assert KeywordSummarizer()([BASE], BASE) == ["no distinctive words"]
    assert KeywordSummarizer()([PIRATE], BASE) != ["no distinctive words"]
    assert KeywordSummarizer(min_z=5.0)([PIRATE], BASE) == ["no distinctive words"]  # too little evidence


# -- judge cache and parsing ----------------------------------------------------------------------------------
def test_cache_hits_make_no_second_request(tmp_path):
    calls = []

    def ask(request, attempt):
        calls.append((request["q"], attempt))
        return f"answer {request['q']}"

    cache = JudgeCache(tmp_path)
    assert _ask_with_attempts({"q": 1}, 3, ask, cache, None) == "answer 1"
    assert _ask_with_attempts({"q": 1}, 3, ask, JudgeCache(tmp_path), None) == "answer 1"
    assert calls == [(1, 0)]
    # malformed: every attempt asked once, then missing; the re-run is served from the cache
    assert _ask_with_attempts({"q": 2}, 3, ask, cache, lambda a: False) is None
    assert _ask_with_attempts({"q": 2}, 3, ask, cache, lambda a: False) is None
    assert calls == [(1, 0), (2, 0), (2, 1), (2, 2)]


def test_parse_choice_and_wilson():
    assert parse_choice('{"answer": "B"}') == "B"
    assert parse_choice("A") == "A" and parse_choice("Response B is better") == "B"
    assert parse_choice("Both are fine") is None and parse_choice("") is None
    lo, hi = wilson_interval(8, 10)
    assert 0.4 < lo < 0.8 < hi < 1.0
    assert wilson_interval(0, 10)[0] == 0.0 and all(math.isnan(x) for x in wilson_interval(0, 0))


# -- text metrics ---------------------------------------------------------------------------------------------
def test_text_metrics():
    assert regex_count(r"\?")("Why? How?") == 2.0
    assert target_rate("paris")("The capital is Paris.") == 1.0
    assert parse_metric("count:!")[1]("hi!!") == 2.0
    assert parse_metric("math:sqrt")[1](4.0) == 2.0  # module:function
    with pytest.raises(InvalidArgumentError, match="module:function"):
        parse_metric("nocolon")
    with pytest.raises(InvalidArgumentError, match="cannot import"):
        parse_metric("no_such_module_xyz:f")
    assert repetition_rate("the cat sat on the mat") == 0.0
    assert repetition_rate("la la la la la la la la") > 0.6
    assert distinct_n("a b c d", 2) == 1.0 and distinct_n("a b a b a b", 2) < 0.5
