"""supjax against MindArmour 2.0.0 (the oracle), noise off, ``reference_parity=True``.

Runs in the MindSpore environment (nox session ``mindspore``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from supjax import LayerRule, SuppressSchedule, find_suppress_state, suppress
from supjax.engine import SelectedLayer, plan_layers, stop_count, suppress_operation
from tests.oracle.reference import reference_operation, reference_schedule

pytestmark = pytest.mark.mindspore


@pytest.mark.parametrize(
    "start,end,batch,times,s0,s1,epochs",
    [(3, 10, 20, 10, 0.0, 0.9, 12), (1, 2, 7, 5, 0.1, 0.95, 3), (2, 4, 5, 30, 0.0, 0.5, 5), (1, 1, 13, 4, 0.3, 0.6, 2)],
)
def test_whole_schedule_matches(start, end, batch, times, s0, s1, epochs):
    expected = reference_schedule(start, end, batch, times, s0, s1, epochs)
    weights = np.random.default_rng(0).normal(size=(10, 10)).astype(np.float32)
    params = {"a0": jnp.ones(3), "w": jnp.asarray(weights)}
    tx = suppress([LayerRule("w")], SuppressSchedule.from_epochs(start, end, batch, times, s0, s1),
                  reference_parity=True)
    state = tx.init(params)
    update = jax.jit(tx.update)
    zeros = jax.tree.map(jnp.zeros_like, params)
    got = []
    for step in range(1, epochs * batch + 1):
        _, state = update(zeros, state, params)  # update `step` runs the step_end of step - 1
        if int(state.operations) > len(got):
            got.append((step - 1, float(state.sparsity), int(state.suppressed[0])))
    # the operation decided after the very last step would be applied by an update never made
    expected = [e for e in expected if e[0] < epochs * batch]
    assert [g[0] for g in got] == [e[0] for e in expected]
    assert [g[1] for g in got] == [float(np.float32(e[1])) for e in expected]
    assert [g[2] for g in got] == [e[2] for e in expected]


def random_layer(rng: np.random.Generator, size: int, ties: bool, zeros: bool, scale: float):
    w = rng.normal(scale=scale, size=size).astype(np.float32)
    if ties:
        w = (np.round(w * 20) / 20).astype(np.float32)
    if zeros:
        w[rng.random(size) < 0.05] = 0.0
    return w


CASES = []
_rng = np.random.default_rng(2026)
for _i, _size in enumerate([10, 37, 100, 400, 1000, 2500, 5000, 10000, 10001, 30000, 200000]):
    for _variant in range(2):
        CASES.append(
            dict(
                size=_size,
                ties=bool((_i + _variant) % 2),
                zeros=bool(_variant),
                scale=float(_rng.choice([0.05, 0.3, 1.0])),
                prev_fraction=float(_rng.choice([0.0, 0.2, 0.5])),
                sparsity=float(_rng.uniform(0.3, 0.95)),
                is_lower_clip=bool(_rng.integers(2)),
                min_num=int(_rng.choice([-1, 0, 10, _size // 2])),
                upper_bound=float(_rng.choice([1.2, 0.35, 0.05])),
                first=bool(_variant and _size <= 30000),
                seed=int(_rng.integers(1 << 30)),
            )
        )


@pytest.mark.parametrize("case", CASES, ids=[f"n{c['size']}-{k}" for k, c in enumerate(CASES)])
def test_one_operation_matches(case):
    rng = np.random.default_rng(case["seed"])
    w = random_layer(rng, case["size"], case["ties"], case["zeros"], case["scale"])
    if case["first"]:
        w[0] = max(abs(w[0]), 0.05)  # keep the give-up check (max |w| < 0.02) out of the way
    prev = rng.random(case["size"]) < case["prev_fraction"]
    w[prev] = 0.0  # suppressed weights sit at zero
    keep = ~prev
    recorded = int(prev.sum())
    ref = reference_operation(w, keep, recorded, case["sparsity"], first=case["first"],
                              is_lower_clip=case["is_lower_clip"], min_num=case["min_num"],
                              upper_bound=case["upper_bound"])
    rule = LayerRule("w", is_lower_clip=case["is_lower_clip"], min_num=max(case["min_num"], -1),
                     upper_bound=case["upper_bound"])
    plans = plan_layers([SelectedLayer("w", 0 if case["first"] else 1, w.size, rule)], reference_parity=True)
    stop = stop_count(w.size, case["min_num"], case["sparsity"])
    assert stop == ref.stop
    res = suppress_operation(plans, [jnp.asarray(w)], [jnp.asarray(keep)], jnp.array([recorded]),
                             jnp.array([stop]), jax.random.PRNGKey(0), reference_parity=True)
    np.testing.assert_array_equal(np.asarray(res.keep[0]), ref.keep)
    np.testing.assert_allclose(np.asarray(w - res.delta[0]), ref.landed, atol=1e-6, rtol=0)
    assert int(res.counts[0]) == ref.count


def test_give_up_matches():
    w = np.linspace(-0.015, 0.019, 50).astype(np.float32)
    ref = reference_operation(w, np.ones(50, bool), 0, 0.5, first=True)
    plans = plan_layers([SelectedLayer("w", 0, 50, LayerRule("w"))], reference_parity=True)
    res = suppress_operation(plans, [jnp.asarray(w)], [jnp.ones(50, bool)], jnp.array([0]),
                             jnp.array([25]), jax.random.PRNGKey(0), reference_parity=True)
    assert not bool(res.applied)
    assert ref.keep.all() and np.asarray(res.keep[0]).all()
    np.testing.assert_array_equal(ref.landed, w)


def test_ties_at_the_upper_bound_overshoot_like_the_reference():
    """SPEC.md section 4: clipped weights tie at 0.35, the threshold reaches 0.35, and the
    prefix rule suppresses more than the stop count; the default takes exactly the stop count."""
    rng = np.random.default_rng(7)
    n = 2400
    w = np.where(rng.random(n) < 0.5, 0.35, -0.35).astype(np.float32)
    prev = np.zeros(n, bool)
    prev[rng.choice(n, 1920, replace=False)] = True
    small = rng.choice(np.flatnonzero(~prev), 100, replace=False)
    w[small] = rng.uniform(-0.3, 0.3, 100).astype(np.float32)
    w[prev] = 0.0
    ref = reference_operation(w, ~prev, 1920, 0.87, first=False, upper_bound=0.35, min_num=50, is_lower_clip=True)
    assert ref.stop == 2088 and ref.count > ref.stop  # the reference overshoots
    rule = LayerRule("w", is_lower_clip=True, min_num=50, upper_bound=0.35)
    args = ([jnp.asarray(w)], [jnp.asarray(~prev)], jnp.array([1920]), jnp.array([ref.stop]), jax.random.PRNGKey(0))
    plans = plan_layers([SelectedLayer("w", 1, n, rule)], reference_parity=True)
    res = suppress_operation(plans, *args, reference_parity=True)
    np.testing.assert_array_equal(np.asarray(res.keep[0]), ref.keep)
    np.testing.assert_allclose(np.asarray(w - res.delta[0]), ref.landed, atol=1e-6, rtol=0)
    assert int(res.counts[0]) == ref.count
    default = suppress_operation(plan_layers([SelectedLayer("w", 1, n, rule)]), *args)
    assert int(default.counts[0]) == ref.stop == int((~np.asarray(default.keep[0])).sum())
