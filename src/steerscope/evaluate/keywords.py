"""Offline summariser: the words and phrases most distinctive of a batch of texts against a baseline.

Distinctiveness is the z-scored log-odds ratio with an informative Dirichlet prior (Monroe, Colaresi & Quinn 2008,
"Fightin' Words", eqs. 16-22). For a term w with count y_w in the batch (n tokens) and x_w in the baseline
(m tokens), and prior pseudo-counts a_w = a0 * (y_w + x_w) / (n + m):

    delta_w = log((y_w + a_w) / (n + a0 - y_w - a_w)) - log((x_w + a_w) / (m + a0 - x_w - a_w))
    var_w   ~ 1 / (y_w + a_w) + 1 / (x_w + a_w)
    z_w     = delta_w / sqrt(var_w)

The prior is informative (proportional to how common the term is overall), so rare terms are shrunk towards zero
and a word seen once is not "distinctive"; z weighs the evidence, so frequent shifted words rank first.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

_TOKEN = re.compile(r"[^\W_]+(?:'[^\W_]+)?")


def terms(text: str, ngrams: Sequence[int] = (1, 2)) -> list[str]:
    """Lower-cased word n-grams of ``text`` (words: letters/digits with inner apostrophes)."""
    toks = _TOKEN.findall(text.lower())
    return [" ".join(toks[i:i + n]) for n in ngrams for i in range(len(toks) - n + 1)]


def log_odds_z(batch: Counter, baseline: Counter, prior_scale: float = 1.0) -> dict[str, float]:
    """z-scored log-odds of every term in either corpus (positive: more typical of ``batch``).

    ``prior_scale`` sets a0 = prior_scale * (n + m): the prior carries as much weight as the data at 1.0.

    Example:
        >>> z = log_odds_z(Counter({"ship": 9, "the": 10}), Counter({"the": 10, "cat": 3}))
        >>> max(z, key=z.get)
        'ship'
    """
    n, m = batch.total(), baseline.total()
    total = n + m
    if total == 0:
        return {}
    a0 = prior_scale * total
    z: dict[str, float] = {}
    for w in set(batch) | set(baseline):
        y, x = batch.get(w, 0), baseline.get(w, 0)
        a = a0 * (y + x) / total
        delta = math.log((y + a) / (n + a0 - y - a)) - math.log((x + a) / (m + a0 - x - a))
        z[w] = delta / math.sqrt(1.0 / (y + a) + 1.0 / (x + a))
    return z


@dataclass
class KeywordSummarizer:
    """Summarise each batch as its ``top_k`` most distinctive terms vs the baseline, comma-separated.

    Only terms with z >= ``min_z`` (default 1.0: weak evidence is left out rather than padding the summary with
    noise) seen at least ``min_count`` times in the batch qualify (relaxed to 1 if none do); a term whose
    words all occur in terms already chosen is skipped so the summary is not repetitive; ties go to shorter terms.

    Example:
        >>> KeywordSummarizer(top_k=3)([["Arr, the ship! Arr matey"] * 3], ["The weather is nice today."] * 3)
        ['arr, matey, ship']
    """

    top_k: int = 10
    prior_scale: float = 1.0
    ngrams: tuple[int, ...] = (1, 2)
    min_count: int = 2
    min_z: float = 1.0
    name: str = "keywords"

    def keywords(self, texts: Sequence[str], baseline: Sequence[str]) -> list[tuple[str, float]]:
        """[(term, z)] best first, only terms clearly more typical of ``texts`` (z >= ``min_z``)."""
        batch, base = (Counter(t for text in group for t in terms(text, self.ngrams)) for group in (texts, baseline))
        z = log_odds_z(batch, base, self.prior_scale)
        for floor in (self.min_count, 1):
            ranked = sorted(((w, s) for w, s in z.items() if s >= self.min_z and batch[w] >= floor),
                            key=lambda ws: (-round(ws[1], 9), len(ws[0].split()), ws[0]))  # ties: shorter first
            if ranked:
                break
        chosen: list[tuple[str, float]] = []
        covered: set[str] = set()
        for w, s in ranked:
            words = w.split()
            if covered.issuperset(words):
                continue
            chosen.append((w, s))
            covered.update(words)
            if len(chosen) == self.top_k:
                break
        return chosen

    def __call__(self, batches: Sequence[Sequence[str]], baseline: Sequence[str]) -> list[str | None]:
        return [", ".join(w for w, _ in self.keywords(texts, baseline)) or "no distinctive words" for texts in batches]
