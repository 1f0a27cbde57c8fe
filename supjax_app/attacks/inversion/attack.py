"""The image-inversion attack: its loss, its start images and the sign-gradient descent.

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
on other devices MindArmour compares with a zero-padded shift instead, a different boundary.
One deliberate difference: an image whose target features are all zero (every fc1 unit
dead) makes the reference divide by zero (NaN); here the first term is then not normalised
(divided by 1).

>>> import jax.numpy as jnp
>>> def flat(p, x):
...     return x.reshape(len(x), -1) * p
>>> inversion_loss(flat, 1.0, jnp.zeros((1, 2, 2, 1)), jnp.zeros((1, 4))).tolist()  # dead target
[0.0]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from supjax_app.attacks.inversion.checks import (
    _check_bounds,
    _check_callable,
    _check_images,
    _check_int,
    _check_step,
    _check_target,
    _check_weights,
)

__all__ = [
    "DEFAULT_WEIGHTS",
    "PIXEL_BOUNDS",
    "TUTORIAL_WEIGHTS",
    "inversion_loss",
    "invert_features",
    "start_images",
]

FeatureFn = Callable[[Any, jax.Array], jax.Array]

#: Loss weights (feature match, smoothness, size): MindArmour's default.
DEFAULT_WEIGHTS: tuple[float, float, float] = (1.0, 0.2, 5.0)
#: Loss weights of MindArmour's Suppress Privacy tutorial.
TUTORIAL_WEIGHTS: tuple[float, float, float] = (1.0, 0.1, 5.0)
#: Pixel range of the images (``supjax_app.data`` scales to ``[0, 1]``); the attack clips to it.
PIXEL_BOUNDS: tuple[float, float] = (0.0, 1.0)

_STEP_SIZE = 0.01
_START_SCALE = 0.05


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
