"""Parameter dtypes: float32, float64 (x64), bfloat16 and float16 keep their dtype, and
suppressed weights stay exactly zero in each."""

import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from supjax import LayerRule, SuppressSchedule, find_suppress_state, suppress
from supjax.layer_operation import exact_operation

RUN = textwrap.dedent(
    """
    import jax, jax.numpy as jnp, numpy as np, optax, sys
    from supjax import LayerRule, SuppressSchedule, find_suppress_state, suppress
    dtype = jnp.dtype(sys.argv[1])
    params = {"w": (jax.random.normal(jax.random.PRNGKey(0), (30, 20)) * 0.3).astype(dtype),
              "b": jnp.zeros(20, dtype)}
    # eps=1e-3: the default 1e-8 underflows to 0 in float16 and Adam itself turns NaN
    tx = optax.chain(optax.adam(1e-2, eps=1e-3), suppress([LayerRule("w", is_lower_clip=True, min_num=10)],
                     SuppressSchedule.from_steps(2, 21, 10, sparse_end=0.9)))
    state = tx.init(params)

    @jax.jit
    def step(params, state, t):
        grads = jax.tree.map(lambda p: (jnp.sin(p * 3.0 + t) * 0.1).astype(p.dtype), params)
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    for t in range(30):
        params, state = step(params, state, jnp.asarray(t, dtype))
        s = find_suppress_state(state)
        w = np.asarray(params["w"].astype(jnp.float32))
        assert params["w"].dtype == dtype and params["b"].dtype == dtype, params["w"].dtype
        assert np.all(w[~np.asarray(s.keep_masks[0])] == 0.0), t
    s = find_suppress_state(state)
    assert int(s.nonfinite_skips[0]) == 0
    print(int(s.suppressed[0]), int(np.sum(np.asarray(params["w"]) == 0)))
    """
)


def _run(dtype: str, x64: bool = False) -> tuple[int, int]:
    env = dict(os.environ, JAX_ENABLE_X64="1" if x64 else "0", JAX_PLATFORMS="cpu")
    out = subprocess.run([sys.executable, "-c", RUN, dtype], env=env, capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    count, zeros = map(int, out.stdout.split()[-2:])
    return count, zeros


@pytest.mark.parametrize("dtype,x64", [("float32", False), ("float64", True), ("bfloat16", False), ("float16", False)])
def test_training_keeps_dtype_and_exact_zeros(dtype, x64):
    count, zeros = _run(dtype, x64)
    assert count == int(600 * 0.9)  # sparse_end reached exactly
    assert zeros >= count


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_low_precision_threshold_and_ties_like_float64(dtype):
    # values that tie once rounded to the low-precision dtype: ties are broken by index order
    w32 = np.array([0.1001, 0.1002, -0.1003, 0.3, 0.5, -0.1004, 0.7, 0.0], np.float32)
    w = jnp.asarray(w32).astype(dtype)
    a64 = np.abs(np.asarray(w.astype(jnp.float32), np.float64))
    stop = 3
    out = exact_operation(w, jnp.ones(8, bool), jnp.int32(stop), jax.random.PRNGKey(0), LayerRule("w"), False)
    expected_thd = np.sort(a64)[stop - 1]
    assert float(out.threshold.astype(jnp.float32)) == expected_thd
    order = np.lexsort((np.arange(8), a64))[:stop]  # smallest magnitudes, ties in index order
    expected_keep = np.ones(8, bool)
    expected_keep[order] = False
    np.testing.assert_array_equal(np.asarray(out.keep), expected_keep)
    assert out.delta.dtype == dtype
