"""Behaviour and coherence metrics for generated text.

Behaviour metrics are ``text -> float`` callables (built in: regex counts, target-string presence; user metrics
loaded from ``module:function``). Coherence metrics judge whether steered text is still language: perplexity of
the response under the *unsteered* model, distinct-n, repeated n-grams and empty responses. Model-based scoring
(perplexity, mean log-prob of given completions) is batched with per-row vectors through ``steer()``.
"""

from __future__ import annotations

import importlib
import math
import re
from collections.abc import Callable, Sequence

import torch

from ..errors import InvalidArgumentError
from ..generate import forward_kwargs, tokenize
from ..inputs import prompt_lengths
from ..steer import steer
from ..vector import SteeringVector

TextMetric = Callable[[str], float]
_WORD = re.compile(r"\w+|[^\w\s]")


# -- text metrics ---------------------------------------------------------------------------------------------
def regex_count(pattern: str) -> TextMetric:
    """Metric counting matches of ``pattern`` in a response (``regex_count(r"\\?")`` counts question marks).

    Example:
        >>> regex_count(r"\\?")("Why? How?")
        2.0
    """
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise InvalidArgumentError(f"metric regex {pattern!r} does not compile: {exc}") from None

    def metric(text: str) -> float:
        return float(len(compiled.findall(text)))

    metric.__name__ = f"count:{pattern}"
    return metric


def target_rate(target: str, *, case_sensitive: bool = False) -> TextMetric:
    """Metric that is 1.0 when ``target`` occurs in the response, else 0.0 (its mean is the target-string rate).

    Example:
        >>> target_rate("paris")("The capital is Paris.")
        1.0
    """
    if not target:
        raise InvalidArgumentError("target string must be non-empty")
    needle = target if case_sensitive else target.lower()

    def metric(text: str) -> float:
        return float(needle in (text if case_sensitive else text.lower()))

    metric.__name__ = f"contains:{target}"
    return metric


def load_callable(spec: str) -> TextMetric:
    """Import ``module:function`` (e.g. ``mypkg.metrics:politeness``) and return the function."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise InvalidArgumentError(f"metric {spec!r}: write user metrics as module:function")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise InvalidArgumentError(f"metric {spec!r}: cannot import {module_name!r} ({exc}); is it on PYTHONPATH?") from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise InvalidArgumentError(f"metric {spec!r}: {module_name} has no callable {attr!r}")
    return fn


def parse_metric(spec: str) -> tuple[str, TextMetric]:
    """``count:REGEX`` | ``contains:TEXT`` | ``module:function`` -> (name, metric)."""
    for prefix, make in (("count:", regex_count), ("contains:", target_rate)):
        if spec.startswith(prefix):
            return spec, make(spec.removeprefix(prefix))
    return spec, load_callable(spec)


def words(text: str) -> list[str]:
    """Lower-cased word and punctuation tokens (the unit of distinct-n and repetition)."""
    return _WORD.findall(text.lower())


def _ngrams(text: str, n: int) -> list[tuple]:
    toks = words(text)
    return [tuple(toks[i:i + n]) for i in range(len(toks) - n + 1)]


def distinct_n(text: str, n: int = 2) -> float:
    """Unique n-grams / all n-grams within one response; NaN when it has fewer than n tokens."""
    grams = _ngrams(text, n)
    return len(set(grams)) / len(grams) if grams else math.nan


def repetition_rate(text: str, n: int = 3) -> float:
    """Fraction of n-grams that already occurred earlier in the same response (0 for fresh text, →1 for loops)."""
    grams = _ngrams(text, n)
    return (len(grams) - len(set(grams))) / len(grams) if grams else 0.0  # repeats: occurrences beyond the first


def is_empty(text: str) -> float:
    return float(not text.strip())


def nanmean(values: Sequence[float]) -> float:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return sum(finite) / len(finite) if finite else math.nan


# -- model-based scoring --------------------------------------------------------------------------------------
@torch.no_grad()
def response_logprobs(model, prompts: Sequence[str], responses: Sequence[str], *,
                      vectors: SteeringVector | Sequence[SteeringVector | None] | None = None,
                      scales: float | Sequence[float] = 1.0, chat: bool = True, positions: str | int = "all",
                      batch_size: int = 16) -> list[tuple[float, int]]:
    """(sum of token log-probs, number of tokens) of each response given its prompt, optionally steered per row.

    The response is tokenised on its own and appended to the prompt's tokens, as generation produced it.

    Example:
        >>> [(lp, n)] = response_logprobs(m, ["Capital of France?"], ["Paris."])
        >>> math.exp(-lp / n)   # perplexity
    """
    if len(prompts) != len(responses):
        raise InvalidArgumentError(f"got {len(prompts)} prompts but {len(responses)} responses")
    n = len(prompts)
    row_vectors = list(vectors) if isinstance(vectors, (list, tuple)) else [vectors] * n
    row_scales = [float(s) for s in scales] if isinstance(scales, (list, tuple)) else [float(scales)] * n
    tok = model.tokenizer
    pad = tok.pad_token_id or 0  # None: no pad token
    out: list[tuple[float, int]] = []
    for start in range(0, n, batch_size):
        end = start + batch_size
        seqs, plens = [], []
        for prompt, response in zip(prompts[start:end], responses[start:end]):
            p_ids = tokenize(model, [prompt], chat=chat)[0][0].tolist()
            r_ids = tok(response, add_special_tokens=False)["input_ids"] if response else []
            seqs.append(p_ids + r_ids)
            plens.append(len(p_ids))
        width = max(len(s) for s in seqs)  # left padding, as everywhere in steerscope
        ids = torch.tensor([[pad] * (width - len(s)) + s for s in seqs], device=model.device)
        mask = torch.tensor([[0] * (width - len(s)) + [1] * len(s) for s in seqs], device=model.device)
        vecs = row_vectors[start:end]
        # prompt lengths, so positions="generated" works
        with prompt_lengths(torch.tensor(plens, device=model.device)), steer(model, vecs, row_scales[start:end],
                                                                             positions=positions):
            logits = model.hf(**forward_kwargs(ids, mask)).logits
        logits = logits[:, :-1].float()  # (B, T-1, V) predicts tokens 1..T-1
        lp = logits.gather(-1, ids[:, 1:, None])[..., 0] - logits.logsumexp(-1)  # (B, T-1)
        for r, s in enumerate(seqs):
            k = len(s) - plens[r]  # response tokens sit at the end of the row
            out.append((float(lp[r, -k:].sum()) if k else 0.0, k))
    return out


def perplexities(model, prompts: Sequence[str], responses: Sequence[str], **kwargs) -> list[float]:
    """Perplexity of each response under ``model`` (unsteered unless ``vectors`` is given); NaN for empty ones."""
    return [math.exp(-lp / k) if k else math.nan for lp, k in response_logprobs(model, prompts, responses, **kwargs)]


def mean_logprobs(model, prompts: Sequence[str], completions: Sequence[str], **kwargs) -> list[float]:
    """Mean token log-prob of each given completion (the 'log-prob of given completions' behaviour metric)."""
    return [lp / k if k else math.nan for lp, k in response_logprobs(model, prompts, completions, **kwargs)]
