"""Argument checks shared by the public constructors.

Every check raises before anything is traced, naming the argument and the allowed range.
"""

from __future__ import annotations

import numbers
from typing import Any

__all__ = [
    "check_bool",
    "check_int",
    "check_real",
]


def check_int(name: str, value: Any, *, low: int | None = None, high: int | None = None) -> int:
    """Return ``value`` as an ``int`` if it is an integer within ``[low, high]``.

    >>> from supjax.engine import check_int
    >>> check_int("mask_times", 10, low=1)
    10
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} ({value!r})")
    value = int(value)
    _check_range(name, value, low, high, low_open=False, high_open=False)
    return value


def check_real(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """Return ``value`` as a ``float`` if it is a real number within the given range.

    >>> from supjax.engine import check_real
    >>> check_real("lr", 0.05, low=0.0, high=0.5, low_open=True)
    0.05
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} ({value!r})")
    value = float(value)
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"{name} must be finite, got {value}")
    _check_range(name, value, low, high, low_open=low_open, high_open=high_open)
    return value


def check_bool(name: str, value: Any) -> bool:
    """Return ``value`` if it is a ``bool``.

    >>> from supjax.engine import check_bool
    >>> check_bool("is_add_noise", False)
    False
    """
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__} ({value!r})")
    return value


def _check_range(name: str, value: float, low, high, *, low_open: bool, high_open: bool) -> None:
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if too_low or too_high:
        left = "(" if low_open else "["
        right = ")" if high_open else "]"
        lo = "-inf" if low is None else low
        hi = "inf" if high is None else high
        raise ValueError(f"{name} must be in {left}{lo}, {hi}{right}, got {value}")
