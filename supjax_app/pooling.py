"""2x2 max pooling with stride 2 as a reshape and a max, for LeNet5.

``flax.linen.max_pool`` lowers to a ``reduce_window`` whose gradient is a ``select_and_scatter``;
on XLA:CPU that gradient compiles into several kernels of its own (window iotas, a reduce-window
carrying indices, a scatter) and runs slower than elementwise code. Here the windows are a
reshape: the forward pass is a max over two axes, and the gradient goes to the first maximum of
each window in row-major order, as ``select_and_scatter`` sends it, by comparisons only. Values
and gradients are the same as ``nn.max_pool(x, (2, 2), strides=(2, 2))`` bit for bit, ties
included (``tests/test_pooling.py``).

>>> import jax.numpy as jnp
>>> from supjax_app.pooling import max_pool_2x2
>>> max_pool_2x2(jnp.arange(16.0).reshape(1, 4, 4, 1))[0, :, :, 0].tolist()
[[5.0, 7.0], [13.0, 15.0]]
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["max_pool_2x2"]


def _windows(x: jax.Array) -> jax.Array:
    """``(N, H, W, C)`` as ``(N, H//2, 2, W//2, 2, C)`` windows; an odd last row or column is dropped (VALID)."""
    n, h, w, c = x.shape
    return x[:, : h - h % 2, : w - w % 2].reshape(n, h // 2, 2, w // 2, 2, c)


def _check(x: jax.Array) -> None:
    """Raise ``ValueError`` unless ``x`` is ``(N, H, W, C)`` with ``H, W >= 2`` (before any tracing)."""
    if x.ndim != 4:
        raise ValueError(f"max_pool_2x2: x must be (N, H, W, C), got shape {x.shape}")
    if x.shape[1] < 2 or x.shape[2] < 2:
        raise ValueError(f"max_pool_2x2: H and W must be >= 2, got shape {x.shape}")


@jax.custom_vjp
def _pool(x: jax.Array) -> jax.Array:
    return jnp.max(_windows(x), axis=(2, 4))


def _pool_fwd(x: jax.Array) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
    y = _pool(x)
    return y, (x, y)


def _first_max(x: jax.Array, y: jax.Array) -> jax.Array:
    """Per window, True at the first position (row-major) that holds the window's maximum ``y``."""
    hit = _windows(x) == y[:, :, None, :, None, :]
    h00, h01, h10, h11 = hit[:, :, 0, :, 0], hit[:, :, 0, :, 1], hit[:, :, 1, :, 0], hit[:, :, 1, :, 1]
    before_10 = h00 | h01
    top = jnp.stack([h00, h01 & ~h00], axis=3)
    bottom = jnp.stack([h10 & ~before_10, h11 & ~(before_10 | h10)], axis=3)
    return jnp.stack([top, bottom], axis=2)


def _pool_bwd(res: tuple[jax.Array, jax.Array], g: jax.Array) -> tuple[jax.Array]:
    x, y = res
    n, h, w, c = x.shape
    dx = jnp.where(_first_max(x, y), g[:, :, None, :, None, :], jnp.zeros((), g.dtype))
    dx = dx.reshape(n, h - h % 2, w - w % 2, c)
    return (jnp.pad(dx, ((0, 0), (0, h % 2), (0, w % 2), (0, 0))),)


_pool.defvjp(_pool_fwd, _pool_bwd)


def max_pool_2x2(x: jax.Array) -> jax.Array:
    """``nn.max_pool(x, (2, 2), strides=(2, 2))`` (VALID) for ``x`` of shape ``(N, H, W, C)``, with
    the same values and gradients, compiled without ``reduce_window``/``select_and_scatter``.

    >>> import jax, jax.numpy as jnp
    >>> from supjax_app.pooling import max_pool_2x2
    >>> x = jnp.array([[1.0, 3.0], [3.0, 2.0]]).reshape(1, 2, 2, 1)
    >>> jax.grad(lambda x: max_pool_2x2(x).sum())(x)[0, :, :, 0].tolist()  # the first 3 gets it
    [[0.0, 1.0], [0.0, 0.0]]
    """
    x = jnp.asarray(x)
    _check(x)
    return _pool(x)
