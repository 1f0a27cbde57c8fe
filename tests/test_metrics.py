"""``sparsity_metrics`` inside jit, and the host report built on it."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import supjax
from supjax import LayerRule, SuppressSchedule, find_suppress_state, sparsity_metrics, suppress

RULES = [LayerRule("a"), LayerRule("w")]
SCHEDULE = SuppressSchedule.from_steps(1, 6, 3, sparse_end=0.5)


def _state(params):
    return suppress(RULES, SCHEDULE).init(params)


def test_counts_by_hand():
    # |w| <= 1e-7 counts as zero: 0, 1e-8 and -1e-7 do, 2e-7 and 0.3 do not
    params = {"a": jnp.array([0.0, 1e-8, -1e-7, 2e-7, 0.3]), "w": jnp.array([[0.0, 0.5], [0.0, 0.0]])}
    state = _state(params)._replace(
        keep_masks=(jnp.array([False, False, True, False, True]), jnp.array([[False, True], [True, True]])),
        suppressed=jnp.array([3, 1], jnp.int32), sparsity=jnp.float32(0.25),
        leaked=jnp.array([1, 0], jnp.int32), nonfinite_skips=jnp.array([0, 2], jnp.int32))
    m = jax.jit(functools.partial(sparsity_metrics, layers=RULES))(params, state)
    assert m.size.tolist() == [5, 4] and m.weight_zeros.tolist() == [3, 3] and m.mask_zeros.tolist() == [3, 1]
    assert m.suppressed.tolist() == [3, 1] and m.leaked.tolist() == [1, 0] and m.nonfinite_skips.tolist() == [0, 2]
    assert float(m.target) == 0.25
    rows = supjax.sparsity_report(params, state, RULES)
    assert [(r.weight_sparsity, r.mask_sparsity, r.leaked, r.nonfinite_skips) for r in rows] == [
        (3 / 5, 3 / 5, 1, 0), (3 / 4, 1 / 4, 0, 2)]
    scalars = jax.jit(lambda p, s: sparsity_metrics(p, s, RULES).scalars(["a", "w"]))(params, state)
    assert {k: float(v) for k, v in scalars.items()} == {  # float32 fractions
        "sparsity/a/weights": float(np.float32(0.6)), "sparsity/a/mask": float(np.float32(0.6)),
        "sparsity/a/leaked": 1.0, "sparsity/w/weights": 0.75, "sparsity/w/mask": 0.25,
        "sparsity/w/leaked": 0.0, "sparsity/target": 0.25}


def test_half_precision_weights_compare_in_float32():
    # float16 holds 1e-7 as the subnormal 1.19e-7: compared in float16 the weight 1.19e-7 would
    # count as zero; compared in float32 (1.19e-7 > 1e-7) it does not, and 5.96e-8 does
    params = {"a": jnp.array([5.96e-8, 1.19e-7, 1.0, 0.0, 0.0], jnp.float16), "w": jnp.ones((2, 2))}
    assert float(params["a"][1]) == float(jnp.float16(1e-7)) > 1e-7
    m = sparsity_metrics(params, _state(params), RULES)
    assert m.weight_zeros.tolist() == [3, 0]


def test_metrics_in_a_jitted_train_step_equal_the_host_report():
    tx = optax.chain(optax.adam(0.05), suppress(RULES, SCHEDULE))
    rng = np.random.default_rng(0)
    params = {"a": jnp.asarray(rng.normal(size=10).astype(np.float32)),
              "w": jnp.asarray(rng.normal(size=(4, 5)).astype(np.float32))}
    opt_state = tx.init(params)

    @jax.jit
    def step(params, opt_state, grads):
        updates, opt_state = tx.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        return params, opt_state, sparsity_metrics(params, find_suppress_state(opt_state), RULES)

    for i in range(5):
        grads = jax.tree.map(lambda x: jnp.asarray(rng.normal(size=x.shape).astype(np.float32)), params)
        params, opt_state, m = step(params, opt_state, grads)
    rows = supjax.sparsity_report(params, find_suppress_state(opt_state), RULES)
    # two operations: s = 0.4375, int(10 s) = 4 and int(20 s) = 8 suppressed, all exactly 0
    assert m.mask_zeros.tolist() == [4, 8] and m.weight_zeros.tolist() == [4, 8]
    assert [r.mask_sparsity for r in rows] == [0.4, 0.4] and [r.weight_sparsity for r in rows] == [0.4, 0.4]
    assert [r.target_sparsity for r in rows] == [float(m.target)] * 2 == [0.4375] * 2
    assert [r.suppressed for r in rows] == m.suppressed.tolist() and [r.leaked for r in rows] == [0, 0]


def test_vmapped_metrics_and_a_wrong_rule_set():
    params = {"a": jnp.zeros((3, 5)), "w": jnp.ones((3, 2, 2))}
    state = jax.vmap(_state)(params)
    m = jax.vmap(functools.partial(sparsity_metrics, layers=RULES))(params, state)
    assert m.weight_zeros.tolist() == [[5, 0]] * 3 and m.target.shape == (3,)
    with pytest.raises(ValueError, match="layers select 1 parameters but the state holds 2 masks"):
        sparsity_metrics({"a": jnp.zeros(5), "w": jnp.ones((2, 2))}, _state({"a": jnp.zeros(5), "w": jnp.ones((2, 2))}),
                         [LayerRule("a")])
