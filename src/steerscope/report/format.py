"""How values look in the report (used as Jinja2 filters and tests by ``html.py``).

Example:
    >>> fmt(0.123456), fmt(3.0), fmt(None), fmt([1.0, 2.5])
    ('0.1235', '3', '', '1, 2.5')
"""

from __future__ import annotations

from .data import number


def is_number(value) -> bool:
    """A finite int or float (not a bool, not beyond float range): a numeric, sortable table cell."""
    return number(value) is not None


def short_list(value) -> bool:
    """Up to 8 numbers: shown inline as ``1, 2.5``, not as folding JSON."""
    return isinstance(value, (list, tuple)) and len(value) <= 8 and all(is_number(v) for v in value)


def fmt(value) -> str:
    """Numbers to 4 significant digits (integers as integers); None/NaN as an empty cell."""
    if value is None or (isinstance(value, float) and not is_number(value)):
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer() and abs(value) < 1e15):
        return str(int(value))
    if isinstance(value, float):
        return f"{value:.4g}"
    if short_list(value):
        return ", ".join(fmt(v) for v in value)
    return str(value)
