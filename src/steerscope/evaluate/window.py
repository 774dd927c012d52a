"""The coherence window: the widest interval of scales around 0 where text stays as coherent as the baseline.

Pure logic on per-scale rows (no model), so it can be unit-tested and re-applied to a saved ``sweep.json`` with a
different tolerance.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from ..errors import InvalidArgumentError

# Why these defaults (measured on SmolLM2-135M, see docs/evaluation.md): greedy unsteered responses have a
# perplexity of ~2.3 under the model; still-fluent steered text stays below ~1.5x that, text that starts to break
# is at ~5x and gibberish at 20-500x. Repetition and empty answers are absolute rates (their baseline is ~0).
DEFAULT_TOLERANCE: dict[str, float] = {
    "perplexity": 2.0,  # relative: coherent while perplexity <= baseline * (1 + 2.0)
    "repetition_rate": 0.2,  # absolute: coherent while repetition_rate <= baseline + 0.2
    "empty_rate": 0.2,  # absolute: coherent while empty_rate <= baseline + 0.2
}


def resolve_tolerance(tolerance: float | Mapping[str, float] | None) -> dict[str, float]:
    """A float sets the relative perplexity tolerance; a dict overrides any of ``DEFAULT_TOLERANCE``'s keys."""
    if isinstance(tolerance, (int, float)):
        tolerance = {"perplexity": float(tolerance)}
    out = dict(DEFAULT_TOLERANCE)
    for key, value in (tolerance or {}).items():
        if key not in DEFAULT_TOLERANCE:
            raise InvalidArgumentError(f"unknown tolerance {key!r}; use {', '.join(DEFAULT_TOLERANCE)}")
        if not math.isfinite(float(value)) or float(value) < 0:
            raise InvalidArgumentError(f"tolerance {key} must be a finite number >= 0, got {value}")
        out[key] = float(value)
    return out


def is_coherent(row: Mapping, baseline: Mapping, tolerance: Mapping[str, float]) -> bool:
    """Whether one scale's coherence measures are within ``tolerance`` of the baseline's (NaN counts as not)."""
    ppl, base_ppl = row.get("perplexity"), baseline.get("perplexity")
    if ppl is None or not math.isfinite(ppl):
        return False
    if base_ppl is not None and math.isfinite(base_ppl) and ppl > base_ppl * (1.0 + tolerance["perplexity"]):
        return False
    for key in ("repetition_rate", "empty_rate"):
        value, base = row.get(key), baseline.get(key) or 0.0
        if value is None or not math.isfinite(value) or value > base + tolerance[key] + 1e-12:
            return False
    return True


def coherence_window(rows: list[Mapping], tolerance: Mapping[str, float]) -> tuple[float, float]:
    """(low, high): the widest run of consecutive coherent scales (sorted) that contains scale 0.

    ``rows`` need ``scale`` and the coherence measures; the row at scale 0 is the baseline. Scales beyond the
    first incoherent one on each side are outside the window even if they look coherent again.

    Example:
        >>> coherence_window([{"scale": s, "perplexity": p, "repetition_rate": 0, "empty_rate": 0}
        ...                   for s, p in [(-2, 50), (-1, 3), (0, 2), (1, 2.5), (2, 9)]], DEFAULT_TOLERANCE)
        (-1, 1)
    """
    ordered = sorted(rows, key=lambda r: r["scale"])
    scales = [r["scale"] for r in ordered]
    if 0 not in scales:  # 0.0 == 0
        raise InvalidArgumentError("the sweep needs a row at scale 0 (the baseline) to define the window")
    zero = scales.index(0)
    baseline = ordered[zero]
    lo = hi = zero
    while lo > 0 and is_coherent(ordered[lo - 1], baseline, tolerance):
        lo -= 1
    while hi + 1 < len(ordered) and is_coherent(ordered[hi + 1], baseline, tolerance):
        hi += 1
    return scales[lo], scales[hi]


def best_in_window(rows: list[Mapping], window: tuple[float, float], objective: str | None,
                   maximize: bool = True) -> float | None:
    """Scale inside ``window`` with the best ``objective`` value (ties: the smaller |scale|); None if undefined."""
    if objective is None:
        return None
    inside = [r for r in rows if window[0] <= r["scale"] <= window[1]
              and r.get(objective) is not None and math.isfinite(r[objective])]
    if not inside:
        return None
    sign = 1.0 if maximize else -1.0
    return max(inside, key=lambda r: (sign * r[objective], -abs(r["scale"])))["scale"]
