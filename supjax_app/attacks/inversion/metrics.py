"""How close a reconstruction is: MindArmour's ``evaluate`` metrics and a bootstrap interval.

The metrics are the reference's ``evaluate``: relative L2 distance
``||x - y|| / (||x|| + 1e-14)``, SSIM with a 7x7 uniform window, ``K = (0.01, 0.03)``,
MindArmour's fixed data range 2 and a 3-pixel crop (each channel, then their mean), and the
softmax confidence of an independent evaluator on the true label. :func:`bootstrap_interval`
puts a percentile bootstrap interval on a mean.

>>> import jax.numpy as jnp
>>> x = jnp.linspace(0.0, 1.0, 64).reshape(1, 8, 8, 1)
>>> float(relative_l2(x, x)[0]), float(ssim(x, x)[0])
(0.0, 1.0)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from supjax_app.attacks.inversion.checks import (
    _check_callable,
    _check_int,
    _check_labels,
    _check_logits,
    _check_pair,
    _is_real,
)

__all__ = [
    "METRICS",
    "SSIM_DATA_RANGE",
    "Interval",
    "InversionScores",
    "bootstrap_interval",
    "evaluate_inversion",
    "relative_l2",
    "ssim",
    "true_label_confidence",
]

Evaluator = Callable[[jax.Array], Any]

#: MindArmour's ``compute_ssim`` fixes the data range at 2 whatever the pixel range.
SSIM_DATA_RANGE: float = 2.0
#: Metric names, in report order: relative L2 distance, SSIM, evaluator confidence.
METRICS: tuple[str, ...] = ("l2", "ssim", "confidence")

_SSIM_WIN = 7
_SSIM_K = (0.01, 0.03)
_L2_EPS = 1e-14
_LEVEL = 0.95
_BOOT_SALT = 0xB007


@jax.jit
def _relative_l2(x: jax.Array, y: jax.Array) -> jax.Array:
    axes = tuple(range(1, x.ndim))
    diff = jnp.sqrt(jnp.sum((x - y) ** 2, axis=axes))
    return diff / (jnp.sqrt(jnp.sum(x**2, axis=axes)) + jnp.float32(_L2_EPS))


def _windows(a: jax.Array) -> jax.Array:
    """Every 7x7 window that fits: ``(N, H, W, C) -> (N, 49, H - 6, W - 6, C)``."""
    h, w = a.shape[1] - _SSIM_WIN + 1, a.shape[2] - _SSIM_WIN + 1
    return jnp.stack([a[:, i : i + h, j : j + w, :] for i in range(_SSIM_WIN) for j in range(_SSIM_WIN)], axis=1)


@jax.jit
def _ssim(x: jax.Array, y: jax.Array, data_range: jax.Array) -> jax.Array:
    # The reference filters the whole image (reflect mode) and crops 3 pixels per side: the
    # windows left are exactly those that fit inside the image, so no padding is needed.
    px, py = _windows(x), _windows(y)
    ux, uy = px.mean(axis=1), py.mean(axis=1)
    n = _SSIM_WIN**2
    cov_norm = n / (n - 1)
    dx, dy = px - ux[:, None], py - uy[:, None]
    vx = cov_norm * jnp.mean(dx * dx, axis=1)
    vy = cov_norm * jnp.mean(dy * dy, axis=1)
    vxy = cov_norm * jnp.mean(dx * dy, axis=1)
    c1 = (_SSIM_K[0] * data_range) ** 2
    c2 = (_SSIM_K[1] * data_range) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux**2 + uy**2 + c1) * (vx + vy + c2))
    return s.mean(axis=(1, 2, 3))  # same window count per channel: mean of the channel means


def relative_l2(originals: Any, reconstructions: Any) -> jax.Array:
    """``||original - reconstruction|| / (||original|| + 1e-14)`` per image, ``(N,)``.

    >>> import jax.numpy as jnp
    >>> relative_l2(jnp.ones((1, 2, 2, 1)), jnp.full((1, 2, 2, 1), 0.5)).tolist()
    [0.5]
    """
    x, y = _check_pair(originals, reconstructions, 1)
    return _relative_l2(jnp.asarray(x), jnp.asarray(y))


def ssim(originals: Any, reconstructions: Any, data_range: float = SSIM_DATA_RANGE) -> jax.Array:
    """MindArmour's ``compute_ssim`` per image ``(N, H, W, C)``, ``H, W >= 7``: ``(N,)``.

    7x7 uniform window, ``K = (0.01, 0.03)``, sample covariances (``49 / 48``), the mean
    over the windows that fit in the image (the reference's 3-pixel crop), then over channels;
    ``data_range`` is 2 in MindArmour whatever the pixel range.

    >>> import jax.numpy as jnp
    >>> a, b = jnp.full((1, 7, 7, 1), 0.5), jnp.full((1, 7, 7, 1), 0.25)
    >>> round(float(ssim(a, b)[0]), 6) == round((2 * .5 * .25 + .02**2) / (.5**2 + .25**2 + .02**2), 6)
    True
    """
    x, y = _check_pair(originals, reconstructions, _SSIM_WIN)
    if not _is_real(data_range) or not (np.isfinite(data_range) and data_range > 0):
        raise ValueError(f"data_range must be a finite number > 0, got {data_range!r}")
    return _ssim(jnp.asarray(x), jnp.asarray(y), jnp.float32(data_range))


def true_label_confidence(logits: Any, labels: Any) -> jax.Array:
    """Softmax probability of the true label per row of ``logits`` ``(N, K)``: ``(N,)``.

    >>> import jax.numpy as jnp
    >>> true_label_confidence(jnp.array([[0.0, jnp.log(3.0)]]), jnp.array([1])).round(4).tolist()
    [0.75]
    """
    arr = np.asarray(logits)
    if arr.ndim != 2:
        raise ValueError(f"logits must be 2-D (N, num_classes), got shape {arr.shape}")
    lab = _check_labels(labels, "labels", arr.shape[0])
    arr = _check_logits(arr, lab)
    probs = jax.nn.softmax(jnp.asarray(arr), axis=1)
    return jnp.take_along_axis(probs, jnp.asarray(lab)[:, None], axis=1)[:, 0]


class InversionScores(NamedTuple):
    """Per-image metrics of :func:`evaluate_inversion` (``confidence`` is None without an evaluator).

    >>> import numpy as np
    >>> InversionScores(np.array([0.5, 1.0]), np.array([0.25, 0.75]), None).means()
    (0.75, 0.5, None)
    """

    l2: np.ndarray
    ssim: np.ndarray
    confidence: np.ndarray | None

    def means(self) -> tuple[float, float, float | None]:
        """The reference's ``evaluate`` result: mean L2, mean SSIM, mean confidence (or None)."""
        conf = None if self.confidence is None else float(np.mean(self.confidence))
        return float(np.mean(self.l2)), float(np.mean(self.ssim)), conf


def evaluate_inversion(
    originals: Any,
    reconstructions: Any,
    labels: Any = None,
    evaluator: Evaluator | None = None,
) -> InversionScores:
    """The reference's ``evaluate``, per image: relative L2, SSIM and (with both ``labels`` and
    ``evaluator``, a callable ``images -> logits``) the evaluator's confidence on the true label.

    >>> import numpy as np
    >>> x = np.linspace(0, 1, 128, dtype=np.float32).reshape(2, 8, 8, 1)
    >>> s = evaluate_inversion(x, x, np.array([0, 1]), lambda im: np.zeros((len(im), 2)))
    >>> s.means()
    (0.0, 1.0, 0.5)
    """
    x, y = _check_pair(originals, reconstructions, _SSIM_WIN)
    conf = None
    if labels is not None and evaluator is not None:
        lab = _check_labels(labels, "labels", x.shape[0])
        _check_callable(evaluator, "evaluator")
        conf = np.asarray(true_label_confidence(evaluator(jnp.asarray(y)), lab))
    return InversionScores(
        np.asarray(_relative_l2(jnp.asarray(x), jnp.asarray(y))),
        np.asarray(_ssim(jnp.asarray(x), jnp.asarray(y), jnp.float32(SSIM_DATA_RANGE))),
        conf,
    )


class Interval(NamedTuple):
    """A mean and its bootstrap interval.

    >>> Interval(0.5, 0.4, 0.6).mean
    0.5
    """

    mean: float
    low: float
    high: float


def bootstrap_interval(values: Any, *, n_boot: int = 1000, seed: int = 0, level: float = _LEVEL) -> Interval:
    """Mean of ``values`` (flattened) and its percentile bootstrap interval at ``level``.

    The resampling indices depend only on ``seed``, ``n_boot`` and the number of values, so
    two calls on paired values of the same size resample the same pairs.

    >>> bootstrap_interval([0.0, 0.0, 0.0])
    Interval(mean=0.0, low=0.0, high=0.0)
    >>> i = bootstrap_interval(list(range(10)), seed=1)
    >>> i.mean, i.low < 4.5 < i.high
    (4.5, True)
    """
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    n_boot = _check_int(n_boot, "n_boot", 1)
    if arr.size == 0:
        raise ValueError("values must not be empty")
    if not _is_real(level) or not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    rng = np.random.default_rng([_check_int(seed, "seed", 0), _BOOT_SALT])
    means = arr[rng.integers(0, arr.size, (n_boot, arr.size))].mean(axis=1)
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(means, [tail, 100 - tail])
    return Interval(float(arr.mean()), float(low), float(high))
