"""Judge tasks: summarise how steered responses differ from the baseline; blind pairwise comparison → win rate.

Every task builds chat requests, sends them through any ``Judge`` and parses answers strictly. An answer that does
not parse is retried by the judge and finally recorded as missing (``None``), which never counts as a win or loss.
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..errors import InvalidArgumentError
from .judges import Judge

_LETTER = re.compile(r"^\W*(?:answer\W*)?(?:response\W*)?([AB])\b", re.IGNORECASE)


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "…"


def difference_request(steered: Sequence[str], baseline: Sequence[str], *, max_chars: int = 300) -> list[dict]:
    """Chat request asking how the STEERED responses differ from the BASELINE ones."""
    base, steer = ("\n".join(f"{i + 1}. {_clip(t, max_chars) or '(empty)'}" for i, t in enumerate(texts))
                   for texts in (baseline, steered))
    content = ("Below are responses of a language model under two conditions.\n\n"
               f"BASELINE responses:\n{base}\n\nSTEERED responses:\n{steer}\n\n"
               "In one or two sentences, describe how the STEERED responses differ from the BASELINE responses "
               "(topic, tone, style, language, format). Reply with the description only.")
    return [{"role": "user", "content": content}]


def valid_description(text: str) -> bool:
    return len(text.strip()) >= 3


def describe_differences(judge: Judge, steered_batches: Sequence[Sequence[str]], baseline: Sequence[str], *,
                         max_examples: int = 8, max_chars: int = 300) -> list[str | None]:
    """One short summary per batch of steered responses, each against (up to ``max_examples``) baseline responses.

    Example:
        >>> describe_differences(judge, [steered[:8], steered[8:]], baseline)
        ['The steered responses talk about pirates.', None]      # None: the judge never answered usefully
    """
    requests = [difference_request(list(b)[:max_examples], list(baseline)[:max_examples], max_chars=max_chars)
                for b in steered_batches]
    answers = judge.complete(requests, validate=valid_description)
    return [a.strip() if a is not None else None for a in answers]


def parse_choice(text: str) -> str | None:
    """'A' or 'B' from a judge answer (``{"answer": "B"}``, ``B``, ``Response A.``); None if it does not say."""
    stripped = text.strip()
    with contextlib.suppress(ValueError):
        data = json.loads(stripped)
        answer = str(data.get("answer", "")).strip().upper() if isinstance(data, dict) else None
        if answer in ("A", "B"):
            return answer
    match = _LETTER.match(stripped)
    return match.group(1).upper() if match else None


def pairwise_request(prompt: str, first: str, second: str, behaviour: str, *, max_chars: int = 600) -> list[dict]:
    content = (f"Prompt: {_clip(prompt, max_chars)}\n\nResponse A: {_clip(first, max_chars) or '(empty)'}\n\n"
               f"Response B: {_clip(second, max_chars) or '(empty)'}\n\nWhich response shows more {behaviour}? "
               f"Reply with JSON only: {{\"answer\": \"A\"}} or {{\"answer\": \"B\"}}.")
    return [{"role": "user", "content": content}]


def wilson_interval(wins: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (95% by default); (nan, nan) when n = 0."""
    if n == 0:
        return math.nan, math.nan
    p = wins / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass
class PairwiseResult:
    """Blind pairwise comparison of system ``a`` against system ``b``.

    ``win_rate`` is the share of answered comparisons where ``a`` was judged to show more of the behaviour, with a
    95% Wilson ``ci``; ``n_missing`` comparisons had no valid answer and count for neither. Each record keeps
    which system was shown first (``a_shown_as``) and the raw answer.
    """

    win_rate: float
    ci: tuple[float, float]
    n: int
    n_missing: int
    behaviour: str
    records: list[dict] = field(default_factory=list)


def pairwise_compare(judge: Judge, prompts: Sequence[str], responses_a: Sequence[str], responses_b: Sequence[str],
                     *, behaviour: str, seed: int = 0) -> PairwiseResult:
    """Ask "which response shows more ``behaviour``" for each pair, A/B order randomised (seeded) and recorded.

    Example:
        >>> res = pairwise_compare(judge, prompts, steered, baseline, behaviour="enthusiasm")
        >>> res.win_rate, res.ci        # share of pairs where the steered response won
    """
    if not (len(prompts) == len(responses_a) == len(responses_b)):
        raise InvalidArgumentError("pairwise_compare needs one prompt and two responses per comparison")
    rng = random.Random(seed)
    orders = ["A" if rng.random() < 0.5 else "B" for _ in prompts]  # where system a is shown
    requests = [pairwise_request(p, *((a, b) if o == "A" else (b, a)), behaviour)
                for p, a, b, o in zip(prompts, responses_a, responses_b, orders)]
    answers = judge.complete(requests, validate=lambda t: parse_choice(t) is not None)
    records, wins, n = [], 0, 0
    for prompt, order, answer in zip(prompts, orders, answers):
        choice = parse_choice(answer) if answer is not None else None
        winner = None if choice is None else ("a" if choice == order else "b")
        if winner is not None:
            n += 1
            wins += winner == "a"
        records.append({"prompt": prompt, "a_shown_as": order, "answer": answer, "winner": winner})
    return PairwiseResult(win_rate=wins / n if n else math.nan, ci=wilson_interval(wins, n), n=n,
                          n_missing=len(prompts) - n, behaviour=behaviour, records=records)
