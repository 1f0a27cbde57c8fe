"""Per-example membership signals of the audit's models, and who trained on what.

An audit trains ``N`` models on random halves of a pool of ``P`` examples:
:func:`make_keep_matrix` draws ``keep`` ``(N, P)`` (``keep[m, i]`` is True when example
``i`` is in model ``m``'s training set). From each model's logits ``(N, P, C)`` on the
pool, :func:`true_class_margin` gives LiRA's statistic (the input of the attacks of
:mod:`supjax_app.attacks.lira`) and :func:`loss_threshold` the global baseline's score,
both in float64 so that confident models do not tie.

>>> import numpy as np
>>> keep = make_keep_matrix(2, 3, seed=0)
>>> keep.shape, keep.sum(axis=0).tolist()
((2, 3), [1, 1, 1])
>>> logits = np.zeros((2, 3, 2)) + 2.0 * keep[..., None] * np.array([1.0, 0.0])
>>> bool((true_class_margin(logits, np.zeros(3, int))[keep] == 2.0).all())
True
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
from scipy.special import log_expit, logsumexp

__all__ = ["loss_threshold", "make_keep_matrix", "true_class_margin"]


def _check_real(values: Any, arg: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"{arg} must be a real-valued (int or float) array, got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{arg} must be finite (no NaN or inf)")
    return arr


def _check_int(value: Any, arg: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{arg} must be an int >= {minimum}, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{arg} must be an int >= {minimum}, got {value}")
    return int(value)


def true_class_margin(logits: Any, labels: Any) -> np.ndarray:
    """LiRA's statistic ``z_y - logsumexp_{j != y} z_j`` in float64, shape ``logits.shape[:-1]``.

    ``logits`` has shape ``(..., P, C)`` (e.g. ``(N, P, C)`` for ``N`` models), ``labels``
    shape ``(P,)``. This equals ``log(p_y / (1 - p_y))`` for ``p = softmax(z)``, the
    logit-scaled confidence, computed from logits cast to float64 first so that confident
    models do not saturate into ties.

    >>> import numpy as np
    >>> true_class_margin(np.array([[60.0, 0.0, 0.0], [70.0, 0.0, 0.0]]), np.array([0, 0])).round(4)
    array([59.3069, 69.3069])
    """
    z = _check_real(logits, "logits")
    if z.ndim < 2 or z.shape[-1] < 2:
        raise ValueError(f"logits must have shape (..., P, C) with C >= 2 classes, got shape {z.shape}")
    num_classes = z.shape[-1]
    y = np.asarray(labels)
    if y.dtype.kind not in "iu":
        raise TypeError(f"labels must be an integer array, got dtype {y.dtype}")
    if y.shape != z.shape[-2:-1]:
        raise ValueError(f"labels must have shape ({z.shape[-2]},) to match logits {z.shape}, got {y.shape}")
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(f"labels must lie in 0..{num_classes - 1}, got values in {y.min()}..{y.max()}")
    is_true = np.arange(num_classes) == y[:, None]  # (P, C)
    z_true = np.where(is_true, z, 0.0).sum(axis=-1)
    z_rest = logsumexp(np.where(is_true, -np.inf, z), axis=-1)
    return z_true - z_rest


def loss_threshold(logits: Any, labels: Any) -> np.ndarray:
    """The global loss-threshold attack: negative cross-entropy in float64, shape ``logits.shape[:-1]``.

    Takes the arguments of :func:`true_class_margin` (logits ``(N, P, C)`` give ``(N, P)``
    scores). The cross-entropy ``-log p_y`` is computed exactly as ``log1p(exp(-margin))``
    from the float64 margin, so confident models keep distinct finite scores. The score
    does not use the shadows: one threshold for every example.

    >>> import numpy as np
    >>> loss_threshold(np.array([[0.0, 0.0], [100.0, 0.0]]), np.array([0, 0])).tolist()
    [-0.6931471805599453, -3.720075976020836e-44]
    """
    return log_expit(true_class_margin(logits, labels))


def make_keep_matrix(n_models: int, pool_size: int, seed: int) -> np.ndarray:
    """``(n_models, pool_size)`` bool: each example is IN for a uniformly random half of the models.

    Columns are independent. For even ``n_models`` every column has exactly
    ``n_models // 2`` True; for odd ``n_models`` a fair coin per column picks
    ``floor(n_models / 2)`` or ``ceil(n_models / 2)``, so every model is IN for an
    example with probability exactly 1/2.

    >>> make_keep_matrix(4, 5, seed=0).sum(axis=0).tolist()
    [2, 2, 2, 2, 2]
    >>> bool((make_keep_matrix(5, 1000, seed=0).sum(axis=0) >= 2).all())
    True
    """
    n_models = _check_int(n_models, "n_models", 2)
    pool_size = _check_int(pool_size, "pool_size", 1)
    seed = _check_int(seed, "seed", 0)
    rng = np.random.default_rng(seed)
    rank = np.argsort(rng.random((n_models, pool_size)), axis=0)  # a random permutation per column
    n_in = np.full(pool_size, n_models // 2)
    if n_models % 2:
        n_in += rng.integers(0, 2, size=pool_size)
    return rank < n_in

