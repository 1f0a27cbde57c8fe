"""Image-inversion attack on a feature extractor, and its metrics (the audit of issue 11).

The attack of MindArmour's ``ImageInversionAttack`` (Mahendran and Vedaldi, 2014,
https://arxiv.org/abs/1412.0035), which MindArmour's Suppress Privacy tutorial uses on the
ReLU output of LeNet5's fc1: knowing only the features ``t = f(image)``, start from uniform
noise times 0.05 and take ``iters`` steps ``x <- clip(x - 0.01 * sign(grad loss(x)))`` with,
per image (``x`` of shape ``(H, W, C)``),

``loss = w0 * MSE(f(x), t) / MSE(t, 0)
+ w1 * (sum over adjacent rows and over adjacent columns of their MSE) + w2 * MSE(x, 0)``.

As in the reference, every image is attacked on its own (its loss and its sign step only
depend on that image); here all images run at once (``vmap``), jitted, ``lax.fori_loop``
over the iterations. The rows and columns term is the reference's CPU formula (each
adjacent pair's MSE averaged over its ``W * C`` or ``H * C`` values, images ``(H, W, C)``);
on other devices MindArmour compares with a zero-padded shift instead, a different boundary. The metrics are the
reference's ``evaluate``: relative L2 distance ``||x - y|| / (||x|| + 1e-14)``, SSIM with a
7x7 uniform window, ``K = (0.01, 0.03)``, MindArmour's fixed data range 2 and a 3-pixel crop
(each channel, then their mean), and the softmax confidence of an independent evaluator on
the true label. One deliberate difference: an image whose target features are all zero
(every fc1 unit dead) makes the reference divide by zero (NaN); there the first term is not
normalised (divided by 1) and :class:`InversionResult` flags it in ``dead_targets``.

:func:`run_inversion` runs the paired protocol over several models per arm (dense,
suppressed, ...); :func:`write_inversion_outputs` and :func:`inversion_markdown` report it.

>>> import jax.numpy as jnp
>>> x = jnp.linspace(0.0, 1.0, 64).reshape(1, 8, 8, 1)
>>> float(relative_l2(x, x)[0]), float(ssim(x, x)[0])
(0.0, 1.0)
"""

from __future__ import annotations

import numbers
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache, partial
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

__all__ = [
    "DEFAULT_WEIGHTS",
    "GROUPS",
    "METRICS",
    "PIXEL_BOUNDS",
    "SSIM_DATA_RANGE",
    "TUTORIAL_WEIGHTS",
    "Interval",
    "InversionResult",
    "InversionScores",
    "bootstrap_interval",
    "evaluate_inversion",
    "inversion_loss",
    "inversion_markdown",
    "invert_features",
    "relative_l2",
    "run_inversion",
    "ssim",
    "start_images",
    "true_label_confidence",
    "write_inversion_outputs",
]

FeatureFn = Callable[[Any, jax.Array], jax.Array]
Evaluator = Callable[[jax.Array], Any]

#: Loss weights (feature match, smoothness, size): MindArmour's default.
DEFAULT_WEIGHTS: tuple[float, float, float] = (1.0, 0.2, 5.0)
#: Loss weights of MindArmour's Suppress Privacy tutorial.
TUTORIAL_WEIGHTS: tuple[float, float, float] = (1.0, 0.1, 5.0)
#: Pixel range of the images (``supjax_app.data`` scales to ``[0, 1]``); the attack clips to it.
PIXEL_BOUNDS: tuple[float, float] = (0.0, 1.0)
#: MindArmour's ``compute_ssim`` fixes the data range at 2 whatever the pixel range.
SSIM_DATA_RANGE: float = 2.0
#: Metric names, in report order: relative L2 distance, SSIM, evaluator confidence.
METRICS: tuple[str, ...] = ("l2", "ssim", "confidence")
#: Image groups of :func:`run_inversion`.
GROUPS: tuple[str, ...] = ("members", "nonmembers")

_STEP_SIZE = 0.01
_START_SCALE = 0.05
_SSIM_WIN = 7
_SSIM_K = (0.01, 0.03)
_L2_EPS = 1e-14
_LEVEL = 0.95
_BOOT_SALT = 0xB007


# --------------------------------------------------------------------------
# Validation (all before anything is traced)
# --------------------------------------------------------------------------


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


# --------------------------------------------------------------------------
# The attack
# --------------------------------------------------------------------------


def _image_loss(
    feature_fn: FeatureFn, params: Any, x: jax.Array, target: jax.Array, weights: jax.Array
) -> jax.Array:
    """The reference's loss for one image ``x`` ``(H, W, C)`` and its target features ``(D,)``."""
    height, width, channels = x.shape
    out = feature_fn(params, x[None])[0]
    scale = jnp.mean(target**2)
    scale = jnp.where(scale > 0, scale, jnp.ones_like(scale))  # all-zero target: no normalisation
    match = jnp.mean((out - target) ** 2) / scale
    rows = jnp.sum((x[1:] - x[:-1]) ** 2) / (width * channels)
    cols = jnp.sum((x[:, 1:] - x[:, :-1]) ** 2) / (height * channels)
    size = jnp.mean(x**2)
    return weights[0] * match + weights[1] * (rows + cols) + weights[2] * size


@partial(jax.jit, static_argnames=("feature_fn",))
def _loss_batch(
    feature_fn: FeatureFn, params: Any, x: jax.Array, target: jax.Array, weights: jax.Array
) -> jax.Array:
    return jax.vmap(lambda xi, ti: _image_loss(feature_fn, params, xi, ti, weights))(x, target)


@partial(jax.jit, static_argnames=("feature_fn", "iters"))
def _invert(
    feature_fn: FeatureFn,
    iters: int,
    params: Any,
    target: jax.Array,
    x0: jax.Array,
    weights: jax.Array,
    bounds: jax.Array,
    step_size: jax.Array,
) -> jax.Array:
    grad = jax.vmap(jax.grad(lambda xi, ti: _image_loss(feature_fn, params, xi, ti, weights)))

    def step(_: int, x: jax.Array) -> jax.Array:
        return jnp.clip(x - step_size * jnp.sign(grad(x, target)), bounds[0], bounds[1])

    return lax.fori_loop(0, iters, step, x0)


@partial(jax.jit, static_argnames=("feature_fn",))
def _features(feature_fn: FeatureFn, params: Any, x: jax.Array) -> jax.Array:
    return feature_fn(params, x)


def inversion_loss(
    feature_fn: FeatureFn,
    params: Any,
    x: Any,
    target: Any,
    weights: Sequence[float] = DEFAULT_WEIGHTS,
) -> jax.Array:
    """The attack's loss of every image of ``x`` ``(N, H, W, C)`` against ``target`` ``(N, D)``: ``(N,)``.

    ``feature_fn(params, images)`` maps a batch of images to features, each image on its own.

    >>> import jax.numpy as jnp
    >>> def flat(p, x):
    ...     return x.reshape(len(x), -1) * p
    >>> x = jnp.zeros((2, 3, 3, 1))
    >>> inversion_loss(flat, 1.0, x, jnp.ones((2, 9))).tolist()  # only the feature term: MSE 1 / 1
    [1.0, 1.0]
    """
    _check_callable(feature_fn, "feature_fn")
    x = _check_images(x, "x", 1)
    target = _check_target(target, x.shape[0])
    w = jnp.asarray(_check_weights(weights), jnp.float32)
    return _loss_batch(feature_fn, params, jnp.asarray(x), jnp.asarray(target), w)


def start_images(key: jax.Array, shape: Sequence[int]) -> jax.Array:
    """The attack's start: uniform noise on ``[0, 1)`` times 0.05, of ``shape`` ``(N, H, W, C)``.

    >>> import jax
    >>> x = start_images(jax.random.PRNGKey(0), (2, 8, 8, 1))
    >>> x.shape, bool((x >= 0).all() and (x < 0.05).all())
    ((2, 8, 8, 1), True)
    """
    return jax.random.uniform(key, tuple(shape), jnp.float32) * jnp.float32(_START_SCALE)


def invert_features(
    feature_fn: FeatureFn,
    params: Any,
    target: Any,
    x0: Any,
    *,
    iters: int = 100,
    weights: Sequence[float] = DEFAULT_WEIGHTS,
    bounds: Sequence[float] = PIXEL_BOUNDS,
    step_size: float = _STEP_SIZE,
) -> jax.Array:
    """Reconstruct images from their features ``target`` ``(N, D)``, starting at ``x0`` ``(N, H, W, C)``.

    ``iters`` steps ``x <- clip(x - step_size * sign(grad), *bounds)`` of :func:`inversion_loss`,
    every image on its own, all at once; jitted once per ``feature_fn`` (hashed by identity:
    reuse the same function object), ``iters`` and shapes.

    >>> import jax, jax.numpy as jnp
    >>> def flat(p, x):
    ...     return x.reshape(len(x), -1) * p
    >>> x0 = start_images(jax.random.PRNGKey(0), (1, 3, 3, 1))
    >>> x = invert_features(flat, 1.0, jnp.full((1, 9), 0.5), x0, iters=60)
    >>> t = jnp.full((1, 9), 0.5)
    >>> bool(inversion_loss(flat, 1.0, x, t) < inversion_loss(flat, 1.0, x0, t))
    True
    """
    _check_callable(feature_fn, "feature_fn")
    x0 = _check_images(x0, "x0", 1)
    target = _check_target(target, x0.shape[0])
    iters = _check_int(iters, "iters", 1)
    w = jnp.asarray(_check_weights(weights), jnp.float32)
    b = jnp.asarray(_check_bounds(bounds), jnp.float32)
    step = jnp.float32(_check_step(step_size))
    return _invert(feature_fn, iters, params, jnp.asarray(target), jnp.asarray(x0), w, b, step)


# --------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------


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


# --------------------------------------------------------------------------
# Bootstrap
# --------------------------------------------------------------------------


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


# --------------------------------------------------------------------------
# Paired protocol
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class InversionResult:
    """What :func:`run_inversion` measured. ``A`` arms, ``M`` models per arm, ``K`` images per model
    (members first). Arrays: ``indices``, ``member``, ``labels`` ``(M, K)`` (pool index, membership,
    label); ``originals`` ``(M, K, H, W, C)``; ``reconstructions`` ``(A, M, K, H, W, C)``;
    ``values[metric]`` ``(A, M, K)``; ``logits`` ``(A, M, K, classes)`` and ``original_logits``
    ``(M, K, classes)`` of the evaluator; ``dead_targets`` ``(A, M, K)`` (all-zero features).
    ``summary[arm][group][metric]`` and ``paired[arm][group][metric]`` (arm - reference per
    (model, image) pair; zero for the reference itself) are :class:`Interval`.

    >>> r = _demo_result()
    >>> r.arms, r.reconstructions.shape, r.paired["dense"]["members"]["ssim"]
    (('dense', 'suppressed'), (2, 2, 4, 8, 8, 1), Interval(mean=0.0, low=0.0, high=0.0))
    """

    arms: tuple[str, ...]
    reference: str
    indices: np.ndarray
    member: np.ndarray
    labels: np.ndarray
    originals: np.ndarray
    reconstructions: np.ndarray
    values: dict[str, np.ndarray]
    logits: np.ndarray
    original_logits: np.ndarray
    dead_targets: np.ndarray
    summary: dict[str, dict[str, dict[str, Interval]]]
    paired: dict[str, dict[str, dict[str, Interval]]]
    original_confidence: dict[str, Interval]
    settings: dict[str, Any] = field(default_factory=dict)


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


def _choose(keep: np.ndarray, n_members: int, n_nonmembers: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Pool indices ``(M, K)`` (members first) and their membership, seeded per model index."""
    rows = []
    for m, row in enumerate(keep):
        inside, outside = np.flatnonzero(row), np.flatnonzero(~row)
        if inside.size < n_members or outside.size < n_nonmembers:
            raise ValueError(
                f"keep row {m} has {inside.size} members and {outside.size} non-members; "
                f"n_members must be <= {inside.size} and n_nonmembers <= {outside.size}"
            )
        rng = np.random.default_rng([seed, m])
        chosen_in = np.sort(rng.choice(inside, n_members, replace=False))
        chosen_out = np.sort(rng.choice(outside, n_nonmembers, replace=False))
        rows.append(np.concatenate([chosen_in, chosen_out]))
    member = np.zeros((keep.shape[0], n_members + n_nonmembers), dtype=bool)
    member[:, :n_members] = True
    return np.stack(rows), member


def _group_stats(
    values: dict[str, np.ndarray], arms: tuple[str, ...], ref: int, member: np.ndarray, n_boot: int, seed: int
) -> tuple[dict, dict]:
    summary: dict[str, dict[str, dict[str, Interval]]] = {}
    paired: dict[str, dict[str, dict[str, Interval]]] = {}
    for a, name in enumerate(arms):
        summary[name], paired[name] = {}, {}
        for group, mask in zip(GROUPS, (member, ~member)):
            summary[name][group] = {
                k: bootstrap_interval(v[a][mask], n_boot=n_boot, seed=seed) for k, v in values.items()
            }
            paired[name][group] = {
                k: bootstrap_interval(v[a][mask] - v[ref][mask], n_boot=n_boot, seed=seed)
                for k, v in values.items()
            }
    return summary, paired


def run_inversion(
    feature_fn: FeatureFn,
    arms: Mapping[str, Sequence[Any]],
    images: Any,
    labels: Any,
    keep: Any,
    evaluator: Evaluator,
    *,
    n_members: int = 30,
    n_nonmembers: int = 30,
    iters: int = 100,
    weights: Sequence[float] = DEFAULT_WEIGHTS,
    bounds: Sequence[float] = PIXEL_BOUNDS,
    reference: str = "dense",
    seed: int = 0,
    n_boot: int = 1000,
) -> InversionResult:
    """The paired inversion audit: the same images, from the same start, under every arm.

    ``arms`` maps an arm name to its ``M`` target-model params (model ``m`` of every arm was
    trained on the same examples); ``keep`` ``(M, P)`` says which of the pool's ``P`` images
    (``images`` ``(P, H, W, C)`` within ``bounds``, ``labels`` ``(P,)``) model ``m`` trained
    on. For each ``m``, ``n_members`` members and ``n_nonmembers`` non-members are drawn
    (seeded by ``seed`` and ``m``), their features ``feature_fn(params, x)`` under each arm's
    model ``m`` are inverted from one shared start, and relative L2, SSIM and the confidence of
    ``evaluator`` (``images -> logits``, trained on data disjoint from the pool) are measured.

    >>> import jax, numpy as np
    >>> def feats(p, x):
    ...     return jax.nn.relu(x.reshape(len(x), -1) @ p)
    >>> rng = np.random.default_rng(0)
    >>> arms = {"dense": [rng.normal(size=(64, 5)).astype("f4")], "other": [rng.normal(size=(64, 5)).astype("f4")]}
    >>> images, labels = rng.random((10, 8, 8, 1), dtype="f4"), np.arange(10) % 2
    >>> keep = (np.arange(10) < 5)[None]
    >>> r = run_inversion(feats, arms, images, labels, keep, lambda x: x.reshape(len(x), -1)[:, :2],
    ...                   n_members=2, n_nonmembers=2, iters=3, n_boot=50)
    >>> bool(keep[0, r.indices[0, :2]].all() and not keep[0, r.indices[0, 2:]].any())
    True
    >>> r.values["l2"].shape, r.paired["dense"]["nonmembers"]["l2"].mean
    ((2, 1, 4), 0.0)
    """
    _check_callable(feature_fn, "feature_fn")
    names, n_models = _check_arms(arms, reference)
    bounds = _check_bounds(bounds)
    pool = _check_images(images, "images", _SSIM_WIN)
    if pool.min() < bounds[0] or pool.max() > bounds[1]:
        raise ValueError(f"images must lie within bounds {bounds}, got values in [{pool.min()}, {pool.max()}]")
    pool_labels = _check_labels(labels, "labels", pool.shape[0])
    member_of = _check_keep(keep, n_models, pool.shape[0])
    _check_callable(evaluator, "evaluator")
    n_members = _check_int(n_members, "n_members", 1)
    n_nonmembers = _check_int(n_nonmembers, "n_nonmembers", 1)
    iters = _check_int(iters, "iters", 1)
    weights = _check_weights(weights)
    seed = _check_int(seed, "seed", 0)
    n_boot = _check_int(n_boot, "n_boot", 1)
    indices, member = _choose(member_of, n_members, n_nonmembers, seed)

    originals = pool[indices]  # (M, K, H, W, C)
    chosen_labels = pool_labels[indices]
    n_arms, k = len(names), indices.shape[1]
    recon = np.empty((n_arms, *originals.shape), np.float32)
    dead = np.empty((n_arms, n_models, k), bool)
    w, b = jnp.asarray(weights, jnp.float32), jnp.asarray(bounds, jnp.float32)
    step = jnp.float32(_STEP_SIZE)
    key = jax.random.PRNGKey(seed)
    for m in range(n_models):
        x = jnp.asarray(originals[m])
        x0 = start_images(jax.random.fold_in(key, m), x.shape)
        for a, name in enumerate(names):
            params = arms[name][m]
            target = _features(feature_fn, params, x)
            dead[a, m] = np.asarray(jnp.all(target == 0, axis=1))
            recon[a, m] = np.asarray(_invert(feature_fn, iters, params, target, x0, w, b, step))

    flat_x = jnp.asarray(originals.reshape(-1, *originals.shape[2:]))
    flat_labels = chosen_labels.reshape(-1)
    values: dict[str, list[np.ndarray]] = {name: [] for name in METRICS}
    logits = []
    for a in range(n_arms):
        flat_y = jnp.asarray(recon[a].reshape(flat_x.shape))
        arm_logits = _check_logits(evaluator(flat_y), flat_labels, "evaluator output")
        logits.append(arm_logits.reshape(n_models, k, -1))
        values["l2"].append(np.asarray(_relative_l2(flat_x, flat_y)).reshape(n_models, k))
        values["ssim"].append(np.asarray(_ssim(flat_x, flat_y, jnp.float32(SSIM_DATA_RANGE))).reshape(n_models, k))
        confidence = true_label_confidence(arm_logits, flat_labels)
        values["confidence"].append(np.asarray(confidence).reshape(n_models, k))
    stacked = {name: np.stack(v) for name, v in values.items()}
    original_logits = _check_logits(evaluator(flat_x), flat_labels, "evaluator output")
    original_conf = np.asarray(true_label_confidence(original_logits, flat_labels)).reshape(n_models, k)
    summary, paired = _group_stats(stacked, names, names.index(reference), member, n_boot, seed)
    settings = {
        "iters": iters,
        "weights": weights,
        "bounds": bounds,
        "seed": seed,
        "n_boot": n_boot,
        "step_size": _STEP_SIZE,
        "start_scale": _START_SCALE,
        "ssim_data_range": SSIM_DATA_RANGE,
        "n_members": n_members,
        "n_nonmembers": n_nonmembers,
    }
    return InversionResult(
        arms=names,
        reference=reference,
        indices=indices,
        member=member,
        labels=chosen_labels,
        originals=originals,
        reconstructions=recon,
        values=stacked,
        logits=np.stack(logits),
        original_logits=original_logits.reshape(n_models, k, -1),
        dead_targets=dead,
        summary=summary,
        paired=paired,
        original_confidence={
            group: bootstrap_interval(original_conf[mask], n_boot=n_boot, seed=seed)
            for group, mask in zip(GROUPS, (member, ~member))
        },
        settings=settings,
    )


def _demo_features(params: Any, x: jax.Array) -> jax.Array:
    return jax.nn.relu(x.reshape(x.shape[0], -1) @ params)


@lru_cache(maxsize=1)
def _demo_result() -> InversionResult:
    """A tiny :class:`InversionResult` for the examples (2 arms x 2 models, 8x8 images)."""
    rng = np.random.default_rng(0)
    arms = {
        name: [rng.normal(size=(64, 6)).astype(np.float32) for _ in range(2)] for name in ("dense", "suppressed")
    }
    images = rng.random((12, 8, 8, 1), dtype=np.float32)
    keep = np.stack([np.arange(12) < 6, np.arange(12) % 2 == 0])
    return run_inversion(
        _demo_features,
        arms,
        images,
        np.arange(12) % 3,
        keep,
        lambda x: x.reshape(x.shape[0], -1)[:, :3],
        n_members=2,
        n_nonmembers=2,
        iters=3,
        n_boot=50,
    )


# --------------------------------------------------------------------------
# Outputs
# --------------------------------------------------------------------------

_SHOW_PER_GROUP = 6


def _npz_arrays(result: InversionResult) -> dict[str, np.ndarray]:
    s = result.settings
    arrays = {
        "arms": np.array(result.arms),
        "reference": np.array(result.reference),
        "indices": result.indices,
        "member": result.member,
        "labels": result.labels,
        "originals": result.originals,
        "reconstructions": result.reconstructions,
        "logits": result.logits,
        "original_logits": result.original_logits,
        "dead_targets": result.dead_targets,
        **{name: result.values[name] for name in METRICS},
    }
    for name in ("iters", "seed", "n_boot", "step_size", "start_scale", "ssim_data_range"):
        arrays[name] = np.array(s[name])
    arrays["weights"] = np.array(s["weights"], dtype=np.float64)
    arrays["bounds"] = np.array(s["bounds"], dtype=np.float64)
    return arrays


def _plot(result: InversionResult, path: Path, model: int = 0) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    member = result.member[model]
    cols = np.concatenate([np.flatnonzero(member)[:_SHOW_PER_GROUP], np.flatnonzero(~member)[:_SHOW_PER_GROUP]])
    rows = [("original", result.originals[model])] + [
        (name, result.reconstructions[a, model]) for a, name in enumerate(result.arms)
    ]
    low, high = result.settings["bounds"]
    fig = Figure(figsize=(1.1 * len(cols) + 0.8, 1.15 * len(rows) + 0.4))
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(rows), len(cols), squeeze=False)
    for r, (name, imgs) in enumerate(rows):
        for c, idx in enumerate(cols):
            ax = axes[r, c]
            img = np.clip(imgs[idx], low, high)
            if img.shape[-1] == 1:
                ax.imshow(img[..., 0], cmap="gray", vmin=low, vmax=high)
            else:
                ax.imshow((img - low) / (high - low))
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                group = "member" if member[idx] else "non-member"
                ax.set_title(f"{group}\n#{result.indices[model, idx]}", fontsize=7)
            if c == 0:
                ax.set_ylabel(name, fontsize=8)
    fig.suptitle(f"Image inversion from fc1 features, model {model}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def write_inversion_outputs(result: InversionResult, out_dir: str | os.PathLike) -> tuple[Path, Path]:
    """Write ``inversion.npz`` (arrays to recompute every metric) and ``inversion.png``; return their paths.

    The npz holds no pickled objects: ``np.load(path)`` reads it. ``inversion.png`` shows,
    for model 0, up to 6 members and 6 non-members and their reconstruction under each arm.

    >>> import tempfile, numpy as np
    >>> npz, png = write_inversion_outputs(_demo_result(), tempfile.mkdtemp())
    >>> sorted(np.load(npz))[:4], png.name
    (['arms', 'bounds', 'confidence', 'dead_targets'], 'inversion.png')
    """
    if not isinstance(result, InversionResult):
        raise TypeError(f"result must be an InversionResult, got {type(result).__name__}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    npz = out / "inversion.npz"
    np.savez_compressed(npz, **_npz_arrays(result))
    return npz, _plot(result, out / "inversion.png")


def _fmt(i: Interval, signed: bool = False) -> str:
    f = "{:+.3f}" if signed else "{:.3f}"
    return f"{f.format(i.mean)} [{f.format(i.low)}, {f.format(i.high)}]"


def inversion_markdown(result: InversionResult) -> str:
    """A compact Markdown report: arm x members/non-members (L2, SSIM, confidence, 95 % bootstrap
    intervals) and each arm's paired difference to the reference arm.

    >>> print(inversion_markdown(_demo_result()).splitlines()[4][:22])
    | dense | members | 0.
    """
    if not isinstance(result, InversionResult):
        raise TypeError(f"result must be an InversionResult, got {type(result).__name__}")
    s = result.settings
    n_models = result.indices.shape[0]
    group_names = {"members": "members", "nonmembers": "non-members"}
    lines = [
        f"Image inversion of fc1 features: {n_models} model(s) per arm x {s['n_members']} members + "
        f"{s['n_nonmembers']} non-members, {s['iters']} iterations, loss weights {tuple(s['weights'])}; "
        "mean [95 % bootstrap interval over (model, image)].",
        "",
        "| arm | images | relative L2 (lower: closer) | SSIM (higher: closer) | evaluator confidence |",
        "|---|---|---|---|---|",
    ]
    for name in result.arms:
        for group in GROUPS:
            cells = " | ".join(_fmt(result.summary[name][group][k]) for k in METRICS)
            lines.append(f"| {name} | {group_names[group]} | {cells} |")
    others = [name for name in result.arms if name != result.reference]
    if others:
        lines += [
            "",
            f"| arm - {result.reference} (paired) | images | relative L2 | SSIM | evaluator confidence |",
            "|---|---|---|---|---|",
        ]
        for name in others:
            for group in GROUPS:
                cells = " | ".join(_fmt(result.paired[name][group][k], signed=True) for k in METRICS)
                lines.append(f"| {name} | {group_names[group]} | {cells} |")
    conf = result.original_confidence
    lines += [
        "",
        f"Evaluator confidence on the original images: members {_fmt(conf['members'])}, "
        f"non-members {_fmt(conf['nonmembers'])}.",
    ]
    dead = int(result.dead_targets.sum())
    if dead:
        lines.append(f"{dead} (arm, model, image) targets had all-zero features (feature term not normalised).")
    return "\n".join(lines) + "\n"
