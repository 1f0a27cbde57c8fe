"""LeNet5's 2x2 max pooling: the same values and gradients as ``flax.linen.max_pool``, bit for bit.

``supjax_app.pooling.max_pool_2x2`` replaces ``nn.max_pool(x, (2, 2), strides=(2, 2))`` in
LeNet5 because its gradient compiles and runs faster on XLA:CPU (no ``select_and_scatter``);
nothing else may change: ties (the gradient goes to the first maximum of a window, row-major),
odd sizes (the last row or column is dropped), ReLU's zeros, under ``jax.jit`` and eagerly.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from supjax_app.models import lenet5_for
from supjax_app.pooling import max_pool_2x2


def _reference(x: jax.Array) -> jax.Array:
    return nn.max_pool(x, (2, 2), strides=(2, 2))


def _value_and_grad(pool, x: jax.Array, g: jax.Array) -> tuple[np.ndarray, np.ndarray]:
    y, vjp = jax.vjp(pool, x)
    return np.asarray(y).view(np.uint32), np.asarray(vjp(g)[0]).view(np.uint32)


@st.composite
def _case(draw):
    shape = (draw(st.integers(1, 3)), draw(st.integers(2, 11)), draw(st.integers(2, 11)), draw(st.integers(1, 4)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    kind = draw(st.sampled_from(["ties", "relu", "normal"]))
    if kind == "ties":  # few distinct values: most windows hold their maximum twice or more
        x = rng.integers(-2, 3, shape).astype(np.float32)
    elif kind == "relu":  # whole windows of zeros
        x = np.maximum(rng.normal(size=shape), 0).astype(np.float32)
    else:
        x = rng.normal(size=shape).astype(np.float32)
    g = rng.normal(size=(shape[0], shape[1] // 2, shape[2] // 2, shape[3])).astype(np.float32)
    return jnp.asarray(x), jnp.asarray(g)


@settings(max_examples=25, deadline=None)
@given(_case())
def test_same_values_and_gradients_as_flax_max_pool(case):
    x, g = case
    want = _value_and_grad(_reference, x, g)
    got = _value_and_grad(max_pool_2x2, x, g)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])


def test_same_under_jit():
    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.integers(-1, 2, (4, 28, 28, 6)).astype(np.float32))
    g = jnp.asarray(rng.normal(size=(4, 14, 14, 6)).astype(np.float32))

    @jax.jit
    def both(x, g):
        return jax.vjp(_reference, x)[1](g)[0], jax.vjp(max_pool_2x2, x)[1](g)[0]

    want, got = both(x, g)
    np.testing.assert_array_equal(np.asarray(got).view(np.uint32), np.asarray(want).view(np.uint32))


def test_ties_go_to_the_first_maximum_by_hand():
    # One 2x2 window per case; the gradient 1.0 lands on the first (row-major) maximum.
    windows = {(0, 1): [[1.0, 3.0], [3.0, 3.0]], (1, 0): [[0.0, -1.0], [2.0, 2.0]], (0, 0): [[5.0, 5.0], [5.0, 5.0]]}
    for (row, col), window in windows.items():
        x = jnp.asarray(window).reshape(1, 2, 2, 1)
        grad = jax.grad(lambda x: max_pool_2x2(x).sum())(x)[0, :, :, 0]
        want = np.zeros((2, 2), np.float32)
        want[row, col] = 1.0
        np.testing.assert_array_equal(np.asarray(grad), want)


def test_odd_sizes_drop_the_last_row_and_column():
    x = jnp.arange(15.0).reshape(1, 3, 5, 1)
    assert max_pool_2x2(x)[0, :, :, 0].tolist() == [[6.0, 8.0]]
    grad = jax.grad(lambda x: max_pool_2x2(x).sum())(x)[0, :, :, 0]
    assert np.asarray(grad).tolist() == [[0, 0, 0, 0, 0], [0, 1, 0, 1, 0], [0, 0, 0, 0, 0]]


@pytest.mark.parametrize("shape", [(2, 8, 8), (2, 1, 8, 3), (2, 8, 1, 3)])
def test_bad_shapes_are_refused(shape):
    with pytest.raises(ValueError, match="max_pool_2x2"):
        max_pool_2x2(jnp.zeros(shape))


def test_lenet5_gradient_has_no_select_and_scatter():
    # What the change is for: the train step's gradient without XLA's windowed scatter.
    model = lenet5_for((28, 28, 1), 10)
    x = jnp.zeros((2, 28, 28, 1))
    params = model.init(jax.random.PRNGKey(0), x)["params"]
    hlo = jax.jit(jax.grad(lambda p: model.apply({"params": p}, x).sum())).lower(params).as_text()
    assert "select_and_scatter" not in hlo and "reduce_window" not in hlo
