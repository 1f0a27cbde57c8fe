"""Argument checks that raise what MindArmour 2.0.0's checkers raise.

MindArmour validates its arguments with a handful of helpers (``check_param_type``,
``check_int_positive``, ``check_value_positive``, ``check_value_non_negative``); each
raises ``TypeError`` for a wrong type and ``ValueError`` for a wrong value. The functions
here raise the same exception types for the same inputs, with messages naming the
argument, the rule and the value. Where the reference lets a ``bool`` through as an
``int`` (``grad_idx``, ``min_num``, ``upper_bound``, ``lr``), these reject it with a
``TypeError``: a stricter check, never a looser one.

Where a check is supjax's own (a ``bool``, an ``int`` that is not a ``bool``, a positive
``int``), it is supjax's (:func:`supjax.engine.check_bool`, :func:`supjax.engine.check_int`);
the number checks stay here because MindArmour's differ from supjax's ``check_real`` (they
take infinities and keep an ``int`` an ``int``).
"""

from __future__ import annotations

import numbers
from typing import Any

from supjax import engine
from supjax.engine import check_bool

__all__ = [
    "check_bool",
    "check_instance",
    "check_int",
    "check_int_positive",
    "check_number_non_negative",
    "check_number_positive",
]


def check_instance(name: str, value: Any, valid: type | tuple[type, ...]) -> Any:
    """``value`` if it is an instance of ``valid``, else ``TypeError``.

    >>> check_instance("policy", "local_train", str)
    'local_train'
    """
    if not isinstance(value, valid):
        names = " or ".join(t.__name__ for t in (valid if isinstance(valid, tuple) else (valid,)))
        raise TypeError(f"{name} must be {names}, but got {type(value).__name__} ({value!r})")
    return value


def check_int(name: str, value: Any) -> int:
    """``value`` if it is an ``int`` (not a ``bool``), else ``TypeError``.

    >>> check_int("min_num", -1)
    -1
    """
    return engine.check_int(name, value)


def check_int_positive(name: str, value: Any) -> int:
    """A positive ``int``: ``ValueError`` for a ``bool`` or a value ``<= 0``, ``TypeError`` otherwise.

    MindArmour's ``check_int_positive`` raises ``ValueError`` (not ``TypeError``) for a bool.

    >>> check_int_positive("batch_num", 20)
    20
    """
    if isinstance(value, bool):
        raise ValueError(f"{name} should not be a bool value, but got {value}")
    return engine.check_int(name, value, low=1)


def _check_number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, numbers.Real)):
        raise TypeError(f"{name} must be int or float, but got {type(value).__name__} ({value!r})")
    if value != value:
        raise ValueError(f"{name} must not be NaN")
    return value


def check_number_positive(name: str, value: Any) -> float:
    """An ``int`` or ``float`` greater than 0 (``TypeError`` / ``ValueError``).

    >>> check_number_positive("lr", 0.05)
    0.05
    """
    value = _check_number(name, value)
    if float(value) <= 0.0:
        raise ValueError(f"{name} must be greater than zero, but got {value}")
    return value


def check_number_non_negative(name: str, value: Any) -> float:
    """An ``int`` or ``float`` not below 0 (``TypeError`` / ``ValueError``).

    >>> check_number_non_negative("sparse_start", 0)
    0
    """
    value = _check_number(name, value)
    if float(value) < 0.0:
        raise ValueError(f"{name} must not be less than 0, but got {value}")
    return value
