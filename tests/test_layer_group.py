"""Layers laid end to end (``fuse_layers=True``, the default) give the per-layer results bit for bit.

Checked on the operation (random layers, rules, masks, stops, ties, NaN), on whole training
runs through ``suppress`` and ``suppress_gradients``, on the segmented selections against
NumPy, and on what it is for: the compiled operation does not grow with the number of layers.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from supjax import LayerRule, SuppressSchedule, find_suppress_state, suppress, suppress_gradients
from supjax.engine import plan_layers, suppress_operation
from supjax.kth_smallest import first_in_order
from supjax.layers import SelectedLayer
from supjax.operation import group_layers
from supjax.segments import Segments, segment_first_ties, segment_kth_smallest_bits


def _bits(x) -> np.ndarray:
    """Bit patterns, so that -0.0 and 0.0 (and NaN payloads) count as different."""
    a = np.asarray(x)
    return a.view(f"uint{a.dtype.itemsize * 8}") if a.dtype.kind == "f" else a


def _assert_same(a, b) -> None:
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(_bits(x), _bits(y))


@st.composite
def _operation_case(draw):
    n_layers = draw(st.integers(2, 6))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    shapes, rules, weights, keeps, stops = [], [], [], [], []
    for i in range(n_layers):
        shape = tuple(int(d) for d in rng.integers(1, 40, size=rng.integers(1, 4)))
        n = int(np.prod(shape))
        rules.append(LayerRule(f"l{i}", is_add_noise=bool(rng.random() < 0.4),
                               is_lower_clip=bool(rng.random() < 0.4), min_num=int(rng.integers(-1, 3)),
                               upper_bound=float(rng.choice([0.05, 0.3, 1.2]))))
        w = rng.normal(size=shape) * rng.choice([0.004, 0.3, 1.5])
        if rng.random() < 0.5:  # few distinct magnitudes: the threshold sits on ties
            w = np.round(w, int(rng.integers(1, 3)))
        if rng.random() < 0.1:
            w.flat[rng.integers(n)] = np.nan
        keep = rng.random(shape) > rng.random() * 0.5
        w = np.where(keep | (rng.random(shape) < 0.2), w, 0.0)  # masked weights mostly at 0
        shapes.append(shape)
        weights.append(jnp.asarray(w, np.float32))
        keeps.append(jnp.asarray(keep))
        stops.append(int(rng.integers(-1, n + 3)))
    large = int(rng.integers(1, 300)) if rng.random() < 0.5 else None
    selected = [SelectedLayer(f"l{i}", i + int(rng.random() < 0.5), int(np.prod(s)), r)
                for i, (s, r) in enumerate(zip(shapes, rules))]
    plans = plan_layers(selected, large_layer_size=large)
    counts = jnp.asarray([int((~np.asarray(k)).sum()) for k in keeps], jnp.int32)
    return plans, weights, keeps, counts, jnp.asarray(stops, jnp.int32), jax.random.PRNGKey(int(rng.integers(1000)))


@settings(max_examples=10, deadline=None)  # two compiles per example
@given(_operation_case())
def test_grouped_operation_equals_per_layer(case):
    plans, weights, keeps, counts, stops, key = case
    assert len(group_layers(plans, weights).members) == 1  # one float32 group: really fused
    fused = jax.jit(lambda *a: suppress_operation(plans, *a, fuse_layers=True))(weights, keeps, counts, stops, key)
    alone = jax.jit(lambda *a: suppress_operation(plans, *a, fuse_layers=False))(weights, keeps, counts, stops, key)
    _assert_same(fused, alone)


def test_mixed_dtypes_and_parity_keep_their_own_groups():
    plans = plan_layers([SelectedLayer(n, i, 6, LayerRule(n)) for i, n in enumerate("abc")])
    w = [jnp.ones((2, 3)), jnp.ones(6, jnp.bfloat16), jnp.ones(6)]
    assert group_layers(plans, w).members == ((0, 2), (1,))
    assert group_layers(plans, w, reference_parity=True).members == ((0,), (1,), (2,))
    ref = plan_layers([SelectedLayer(n, i, 6, LayerRule(n)) for i, n in enumerate("abc")],
                      reference_parity=True, large_layer_size=2)
    assert [p.method for p in ref] == ["exact", "large_reference", "large_reference"]
    assert group_layers(ref, w).members == ((0,), (1,), (2,))  # MindArmour's large path runs alone


def _train(make, fuse: bool, steps: int = 24):
    rng = np.random.default_rng(0)
    params = {"a": jnp.asarray(rng.normal(size=(6, 5)), jnp.float32),
              "b": jnp.asarray(rng.normal(size=(40,)) * 0.01, jnp.float32),
              "c": jnp.asarray(np.round(rng.normal(size=(7, 3)), 1), jnp.float32)}
    rules = [LayerRule("a", is_add_noise=True, upper_bound=0.5), LayerRule("b", is_lower_clip=True),
             LayerRule("c", min_num=2)]
    tx = make(rules, fuse)
    state = tx.init(params)

    @jax.jit
    def step(params, state, g):
        updates, state = tx.update(g, state, params)
        return optax.apply_updates(params, updates), state

    for i in range(steps):
        g = jax.tree.map(lambda p: jnp.asarray(np.random.default_rng(i).normal(size=p.shape), p.dtype), params)
        params, state = step(params, state, g)
    return params, state


@pytest.mark.parametrize("form", ["suppress_adam", "suppress_gradients_sgd"])
def test_training_runs_are_bitwise_equal(form):
    schedule = SuppressSchedule.from_steps(2, 20, 3, sparse_end=0.8)
    if form == "suppress_adam":
        def make(rules, fuse):
            return optax.chain(optax.adam(0.05), suppress(rules, schedule, seed=4, fuse_layers=fuse))
    else:
        def make(rules, fuse):
            return optax.chain(suppress_gradients(rules, schedule, 0.1, seed=4, fuse_layers=fuse), optax.sgd(0.1))
    fused, alone = _train(make, True), _train(make, False)
    _assert_same(fused, alone)
    sup = find_suppress_state(fused[1])
    assert int(sup.operations) == 3 and sup.leaked.tolist() == [0, 0, 0]
    # suppress_gradients lands within ~1e-16 of 0 (the rounding of (w - target) / lr * lr)
    assert all(float(jnp.mean(jnp.abs(fused[0][k]) <= 1e-7)) > 0.5 for k in "abc")


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(1, 300), min_size=1, max_size=5), st.integers(0, 2**32 - 1))
def test_segment_kth_smallest_matches_numpy(sizes, seed):
    rng = np.random.default_rng(seed)
    seg = Segments(tuple((n,) for n in sizes))
    layers = [np.abs(np.round(rng.normal(size=n), int(rng.integers(0, 3)))).astype(np.float32) for n in sizes]
    k = np.asarray([int(rng.integers(-2, n + 3)) for n in sizes], np.int32)
    bits = seg.concat([jnp.asarray(x) for x in layers]).view(jnp.uint32)
    got = np.asarray(segment_kth_smallest_bits(bits, seg, jnp.asarray(k), 31)).view(np.float32)
    want = [np.partition(x, int(np.clip(kk, 1, len(x))) - 1)[int(np.clip(kk, 1, len(x))) - 1] for x, kk in zip(layers, k)]
    np.testing.assert_array_equal(got, np.asarray(want, np.float32))


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(1, 200), min_size=1, max_size=5), st.integers(0, 2**32 - 1))
def test_segment_first_ties_matches_per_layer(sizes, seed):
    """Each segment keeps its first stop - count(before) ties, as first_in_order on each layer."""
    rng = np.random.default_rng(seed)
    seg = Segments(tuple((n,) for n in sizes))
    before = [rng.random(n) < rng.random() for n in sizes]
    ties = [(rng.random(n) < rng.random()) & ~b for n, b in zip(sizes, before)]
    stop = [int(rng.integers(1, n + 1)) for n in sizes]
    got = segment_first_ties(seg.concat([jnp.asarray(b) for b in before]), seg.concat([jnp.asarray(t) for t in ties]),
                             seg, jnp.asarray(stop))
    want = np.concatenate([np.asarray(first_in_order(jnp.asarray(t), s - int(b.sum())))
                           for b, t, s in zip(before, ties, stop)])
    np.testing.assert_array_equal(np.asarray(got), want)


def _operation_hlo_ops(n_layers: int, fuse: bool) -> int:
    shapes = [(30 + i, 20) for i in range(n_layers)]
    plans = plan_layers([SelectedLayer(f"l{i}", i + 1, 20 * (30 + i), LayerRule(f"l{i}", is_lower_clip=True))
                         for i in range(n_layers)])
    args = ([jnp.ones(s) for s in shapes], [jnp.ones(s, bool) for s in shapes], jnp.zeros(n_layers, jnp.int32),
            jnp.ones(n_layers, jnp.int32), jax.random.PRNGKey(0))
    f = jax.jit(lambda *a: suppress_operation(plans, *a, fuse_layers=fuse))
    return sum(1 for line in f.lower(*args).as_text().splitlines() if " = " in line)


def test_fused_operation_grows_little_with_layers():
    """What fusing is for: one set of selection and rule kernels whatever the number of
    layers. A layer added to a fused group adds only its place in the vector (a slice, a
    pad, a broadcast per per-layer value: under a third of what the per-layer operation adds,
    a whole operation)."""
    fused = {n: _operation_hlo_ops(n, True) for n in (2, 8)}
    alone = {n: _operation_hlo_ops(n, False) for n in (2, 8)}
    assert alone[8] > 3 * alone[2], alone
    assert fused[8] - fused[2] < (alone[8] - alone[2]) / 3, (fused, alone)
    assert fused[8] < alone[8] / 2, (fused, alone)
