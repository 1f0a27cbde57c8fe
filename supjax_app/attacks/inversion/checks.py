"""Argument checks of the inversion attack: each raises ``TypeError`` or ``ValueError``
naming the argument, before anything is traced.

Private helpers of :mod:`supjax_app.attacks.inversion`'s modules (nothing public here).

>>> _check_bounds((0, 1))
(0.0, 1.0)
>>> _check_images([[[[0.5]]]], "x", 1).shape
(1, 1, 1, 1)
>>> _check_int(0, "iters", 1)
Traceback (most recent call last):
    ...
ValueError: iters must be an int >= 1, got 0
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__: list[str] = []


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _check_int(value: Any, arg: str, minimum: int) -> int:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        raise TypeError(f"{arg} must be an int >= {minimum}, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{arg} must be an int >= {minimum}, got {value}")
    return int(value)


def _check_callable(value: Any, arg: str) -> Any:
    if not callable(value):
        raise TypeError(f"{arg} must be callable, got {type(value).__name__}")
    return value


def _check_weights(weights: Any) -> tuple[float, float, float]:
    if isinstance(weights, (str, bytes)) or not isinstance(weights, Sequence):
        raise TypeError(f"weights must be a sequence of 3 positive numbers, got {type(weights).__name__}")
    if len(weights) != 3 or not all(_is_real(w) for w in weights):
        raise TypeError(f"weights must be a sequence of 3 positive numbers, got {weights!r}")
    if not all(np.isfinite(w) and w > 0 for w in weights):
        raise ValueError(f"weights must be 3 finite numbers > 0, got {tuple(weights)}")
    return tuple(float(w) for w in weights)  # type: ignore[return-value]


def _check_bounds(bounds: Any) -> tuple[float, float]:
    if isinstance(bounds, (str, bytes)) or not isinstance(bounds, Sequence):
        raise TypeError(f"bounds must be a pair (low, high) of numbers, got {type(bounds).__name__}")
    if len(bounds) != 2 or not all(_is_real(b) for b in bounds):
        raise TypeError(f"bounds must be a pair (low, high) of numbers, got {bounds!r}")
    low, high = float(bounds[0]), float(bounds[1])
    if not (np.isfinite(low) and np.isfinite(high) and low < high):
        raise ValueError(f"bounds must be finite with low < high, got {(low, high)}")
    return low, high


def _check_step(step_size: Any) -> float:
    if not _is_real(step_size):
        raise TypeError(f"step_size must be a number > 0, got {type(step_size).__name__}")
    if not (np.isfinite(step_size) and step_size > 0):
        raise ValueError(f"step_size must be a finite number > 0, got {step_size}")
    return float(step_size)


def _check_images(images: Any, arg: str, min_side: int = 2) -> np.ndarray:
    arr = np.asarray(images)
    if arr.dtype.kind != "f":
        raise TypeError(f"{arg} must be a float array of shape (N, H, W, C), got dtype {arr.dtype}")
    if arr.ndim != 4 or arr.shape[0] < 1 or min(arr.shape[1:3]) < min_side or arr.shape[3] < 1:
        raise ValueError(
            f"{arg} must have shape (N, H, W, C) with N >= 1 and H, W >= {min_side}, got {arr.shape}"
        )
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{arg} must be finite (no NaN or inf)")
    return arr.astype(np.float32)


def _check_pair(originals: Any, reconstructions: Any, min_side: int) -> tuple[np.ndarray, np.ndarray]:
    x = _check_images(originals, "originals", min_side)
    y = _check_images(reconstructions, "reconstructions", min_side)
    if x.shape != y.shape:
        raise ValueError(f"reconstructions must have the shape of originals {x.shape}, got {y.shape}")
    return x, y


def _check_labels(labels: Any, arg: str, n: int) -> np.ndarray:
    arr = np.asarray(labels)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{arg} must be an integer array, got dtype {arr.dtype}")
    if arr.shape != (n,):
        raise ValueError(f"{arg} must have shape ({n},), got {arr.shape}")
    if n and arr.min() < 0:
        raise ValueError(f"{arg} must be >= 0, got minimum {arr.min()}")
    return arr.astype(np.int32)


def _check_logits(logits: Any, labels: np.ndarray, arg: str = "logits") -> np.ndarray:
    arr = np.asarray(logits)
    n = labels.shape[0]
    if arr.dtype.kind not in "fiu" or arr.ndim != 2 or arr.shape[0] != n or arr.shape[1] < 2:
        raise ValueError(
            f"{arg} must be real logits of shape ({n}, num_classes >= 2), got {arr.shape} {arr.dtype}"
        )
    if n and labels.max() >= arr.shape[1]:
        raise ValueError(f"labels must be < num_classes = {arr.shape[1]} of the {arg}, got {labels.max()}")
    return arr.astype(np.float32)


def _check_target(target: Any, n: int) -> np.ndarray:
    arr = np.asarray(target)
    if arr.dtype.kind != "f":
        raise TypeError(f"target must be a float array of shape (N, D), got dtype {arr.dtype}")
    if arr.ndim != 2 or arr.shape[0] != n:
        raise ValueError(f"target must have shape ({n}, D), one feature row per image of x0, got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError("target must be finite (no NaN or inf)")
    return arr.astype(np.float32)


def _check_arms(arms: Any, reference: Any) -> tuple[tuple[str, ...], int]:
    if not isinstance(arms, Mapping) or not arms:
        raise TypeError(
            f"arms must be a non-empty mapping arm name -> sequence of params, got {type(arms).__name__}"
        )
    names = tuple(arms)
    if not all(isinstance(name, str) and name for name in names):
        raise TypeError(f"arms must be keyed by non-empty str names, got {names!r}")
    counts = {}
    for name in names:
        models = arms[name]
        if isinstance(models, (str, bytes)) or not isinstance(models, Sequence):
            raise TypeError(
                f"arms[{name!r}] must be a sequence of params (one per model), got {type(models).__name__}"
            )
        counts[name] = len(models)
    if len(set(counts.values())) != 1 or min(counts.values()) < 1:
        raise ValueError(f"every arm must hold the same number >= 1 of models, got {counts}")
    if reference not in arms:
        raise ValueError(f"reference must be one of the arms {list(names)}, got {reference!r}")
    return names, counts[names[0]]


def _check_keep(keep: Any, models: int, pool: int) -> np.ndarray:
    arr = np.asarray(keep)
    if arr.dtype != np.bool_:
        raise TypeError(f"keep must be a bool array, got dtype {arr.dtype}")
    if arr.shape != (models, pool):
        raise ValueError(
            f"keep must have shape (models, pool) = ({models}, {pool}), one row per model index, got {arr.shape}"
        )
    return arr

