"""Argument checks shared by the application's data sets, attacks and command lines.

Each check returns the value as a plain Python number or raises, naming the argument.
(The library's own checks are in :mod:`supjax._checks`, reached through :mod:`supjax.engine`.)

>>> check_fraction(0.25, "test_fraction"), check_seed(7)
(0.25, 7)
"""

from __future__ import annotations

import argparse
import numbers
from typing import Any

__all__ = [
    "check_fraction",
    "check_seed",
    "float_arg",
    "int_arg",
]


def check_fraction(value: Any, arg: str) -> float:
    """Return ``value`` as a ``float`` if it is a real number strictly between 0 and 1.

    >>> check_fraction(0.5, "test_fraction")
    0.5
    >>> check_fraction(1.0, "attack_test_fraction")
    Traceback (most recent call last):
    ...
    ValueError: attack_test_fraction must be a float in the open interval (0, 1), got 1.0
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 < value < 1.0:
        raise ValueError(f"{arg} must be a float in the open interval (0, 1), got {value!r}")
    return float(value)


def check_seed(seed: Any, arg: str = "seed") -> int:
    """Return ``seed`` as an ``int`` if it is a non-negative integer (not a ``bool``).

    >>> import numpy as np
    >>> check_seed(np.int64(3))
    3
    >>> check_seed(1.0)
    Traceback (most recent call last):
    ...
    TypeError: seed must be a non-negative int, got float
    >>> check_seed(-1, "shadow_seed")
    Traceback (most recent call last):
    ...
    ValueError: shadow_seed must be a non-negative int, got -1
    """
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"{arg} must be a non-negative int, got {type(seed).__name__}")
    if seed < 0:
        raise ValueError(f"{arg} must be a non-negative int, got {seed}")
    return int(seed)


def int_arg(text: str) -> int:
    """``argparse`` type: an integer, or a usage error naming what was expected.

    >>> int_arg("3")
    3
    """
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def float_arg(text: str) -> float:
    """``argparse`` type: a number, or a usage error naming what was expected.

    >>> float_arg("0.5")
    0.5
    """
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
