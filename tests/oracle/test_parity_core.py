"""supjax against MindArmour 2.0.0 (the oracle), ``reference_parity=True``.

Runs in the MindSpore environment (nox session ``mindspore``; every test under ``tests/oracle``
carries the ``mindspore`` marker). The one-operation cases compare supjax's masks, counts
and landed weights with MindArmour's own: its ``SuppressCtrl.update_mask`` and one step of
its ``TrainOneStepCell`` with ``nn.SGD`` (:mod:`tests.oracle.reference`); on supjax's side
the same step is ``optax.chain(suppress_gradients(..., reference_parity=True), optax.sgd)``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from supjax import LayerRule, SuppressSchedule, suppress
from supjax.engine import SelectedLayer, plan_layers, stop_count, suppress_operation
from tests.oracle.landing import MAX_CORRECTION_ULPS, check_landing, supjax_step
from tests.oracle.reference import reference_schedule, reference_step

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


def run_case(case: dict) -> float:
    """One case on both sides; checks masks, counts, stop count and landed weights; returns the worst ulps."""
    rng = np.random.default_rng(case["seed"])
    w = random_layer(rng, case["size"], case["ties"], case["zeros"], case["scale"])
    if case["first"]:
        w[0] = max(abs(w[0]), 0.05)  # keep the give-up check (max |w| < 0.02) out of the way
    prev = rng.random(case["size"]) < case["prev_fraction"]
    w[prev] = 0.0  # suppressed weights sit at zero
    keep = ~prev
    recorded = int(prev.sum())
    grad = rng.normal(scale=0.1, size=case["size"]).astype(np.float32)
    options = dict(is_lower_clip=case["is_lower_clip"], min_num=case["min_num"], upper_bound=case["upper_bound"])
    ref = reference_step(w, keep, recorded, case["sparsity"], grad, first=case["first"], **options)
    ours = supjax_step(w, keep, recorded, case["sparsity"], grad, first=case["first"], **options)
    assert ref.stop is not None and ref.stop == stop_count(w.size, case["min_num"], ref.sparsity)
    assert ours.sparsity == np.float32(ref.sparsity)
    np.testing.assert_array_equal(ours.keep, ref.keep)
    assert ours.count == ref.count
    return check_landing(ours.landed, ref)


@pytest.mark.parametrize("case", CASES, ids=[f"n{c['size']}-{k}" for k, c in enumerate(CASES)])
def test_one_operation_matches(case):
    run_case(case)


def test_give_up_matches():
    """First parameter with max |w| < 0.02: MindArmour gives the operation up; the step is plain SGD."""
    w = np.linspace(-0.015, 0.019, 50).astype(np.float32)
    grad = np.random.default_rng(1).normal(scale=0.1, size=50).astype(np.float32)
    ref = reference_step(w, np.ones(50, bool), 0, 0.5, grad, first=True)
    ours = supjax_step(w, np.ones(50, bool), 0, 0.5, grad, first=True)
    assert ref.stop is None and not ref.corrected.any() and ref.count == ours.count == 0
    assert ref.keep.all() and ours.keep.all()
    assert np.array_equal(ours.landed, ref.landed) and not np.array_equal(ref.landed, w)


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
    grad = rng.normal(scale=0.1, size=n).astype(np.float32)
    options = dict(upper_bound=0.35, min_num=50, is_lower_clip=True)
    ref = reference_step(w, ~prev, 1920, 0.87, grad, **options)
    ours = supjax_step(w, ~prev, 1920, 0.87, grad, **options)
    assert ref.stop == stop_count(n, 50, ref.sparsity) == 2088 and ref.count > ref.stop  # the reference overshoots
    np.testing.assert_array_equal(ours.keep, ref.keep)
    assert ours.count == ref.count
    check_landing(ours.landed, ref)
    rule = LayerRule("w", is_lower_clip=True, min_num=50, upper_bound=0.35)
    args = ([jnp.asarray(w)], [jnp.asarray(~prev)], jnp.array([1920]), jnp.array([ref.stop]), jax.random.PRNGKey(0))
    default = suppress_operation(plan_layers([SelectedLayer("w", 1, n, rule)]), *args)
    assert int(default.counts[0]) == ref.stop == int((~np.asarray(default.keep[0])).sum())


def test_correction_bound_is_tight():
    """The ulp bound is reached (case n37-2: clipped weights at 1.8 -> 1.2): it is no looser than needed."""
    assert run_case(CASES[2]) == MAX_CORRECTION_ULPS
