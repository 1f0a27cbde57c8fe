"""Each per-layer rule on small layers whose outcome is worked out by hand."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from supjax.layers import LayerRule, SelectedLayer
from supjax.operation import plan_layers, suppress_operation
from supjax.layer_operation import (
    ceil_in_dtype,
    exact_operation,
    floor_in_dtype,
    large_operation,
    large_operation_reference,
)

KEY = jax.random.PRNGKey(0)


def exact(w, stop, keep=None, parity=False, **rule):
    w = jnp.asarray(w, jnp.float32)
    keep = jnp.ones(w.shape, bool) if keep is None else jnp.asarray(keep)
    out = exact_operation(w, keep, jnp.int32(stop), KEY, LayerRule("w", **rule), parity)
    return np.asarray(out.keep), np.asarray(w - out.delta), int(out.count), float(out.threshold)


def test_ties_default_takes_exactly_stop_in_index_order():
    keep, landed, count, thd = exact([0.1, -0.1, 0.1, 0.5, 0.2], stop=2)
    assert thd == pytest.approx(0.1)
    assert keep.tolist() == [False, False, True, True, True]
    assert count == 2
    # the untaken tie is pulled to sign * min(thd, 0.005)
    np.testing.assert_allclose(landed, [0.0, 0.0, 0.005, 0.5, 0.2], atol=1e-7)


def test_parity_prefix_rule_overshoots_on_ties():
    # index 4 is already suppressed (weight 0); thd = 3rd smallest = 0.1
    w = [0.1, 0.1, 0.1, 0.5, 0.0]
    keep = [True, True, True, True, False]
    k_default, _, c_default, _ = exact(w, 3, keep)
    k_parity, _, c_parity, _ = exact(w, 3, keep, parity=True)
    assert c_default == 3 and k_default.tolist() == [False, False, True, True, False]
    # prefix counts of (suppressed or a <= thd) are 0, 1, 2 at indices 0..2: all below 3
    assert c_parity == 4 and k_parity.tolist() == [False, False, False, True, False]


def test_parity_min_num_limits_the_prefix():
    # n=4, min_num=3 -> at most 1 suppressed even though stop says 2
    keep, _, count, _ = exact([0.1, 0.1, 0.3, 0.4], 2, parity=True, min_num=3)
    assert count == 1 and keep.tolist() == [False, True, True, True]


def test_lower_clip_upper_clip_and_lower_pull():
    w = [0.0, 0.003, -0.004, 0.01, 0.7, -2.0]
    keep, landed, count, thd = exact(w, 2, is_lower_clip=True)
    assert thd == pytest.approx(0.003)
    assert keep.tolist() == [False, False, True, True, True, True] and count == 2
    np.testing.assert_allclose(landed, [0.0, 0.0, -0.005, 0.01, 0.7, -1.2], atol=1e-7)


def test_lower_clip_needs_threshold_above_half_the_bound():
    w = [0.0, 0.001, -0.004, 0.01]
    _, landed, _, thd = exact(w, 2, is_lower_clip=True)  # thd = 0.001 <= 0.0025
    assert thd == pytest.approx(0.001)
    np.testing.assert_allclose(landed, [0.0, 0.0, -0.004, 0.01], atol=1e-7)
    _, landed_off, _, _ = exact([0.0, 0.003, -0.004, 0.01], 2, is_lower_clip=False)
    np.testing.assert_allclose(landed_off, [0.0, 0.0, -0.004, 0.01], atol=1e-7)


def test_zero_weight_takes_the_negative_target():
    # stop=1 suppresses the first of two zeros; the second is kept and goes to -min(thd, .005) = -0
    # and a zero that reaches rule 3 would go to -0.005
    keep, landed, _, _ = exact([0.0, 0.0, 0.3], 1)
    assert keep.tolist() == [False, True, True]
    np.testing.assert_allclose(landed, [0.0, 0.0, 0.3], atol=0)


def test_upper_bound_floor_is_one_tenth():
    _, landed, _, _ = exact([0.01, 0.05, 0.2, -0.3], 1, upper_bound=0.05)
    np.testing.assert_allclose(landed, [0.0, 0.05, 0.1, -0.1], atol=1e-7)


def test_noise_only_on_large_kept_weights_and_bounded():
    w = jnp.asarray([0.01, 0.4, 0.6, -0.9, 3.0], jnp.float32)
    keep = jnp.ones(5, bool)
    rule = LayerRule("w", is_add_noise=True)
    out = exact_operation(w, keep, jnp.int32(1), jax.random.PRNGKey(3), rule, False)
    delta = np.asarray(out.delta)
    assert delta[0] == pytest.approx(0.01)  # suppressed
    assert delta[1] == 0.0  # below 0.5: no noise
    assert 0 < abs(delta[2]) <= 0.1 and 0 < abs(delta[3]) <= 0.1
    assert delta[4] == pytest.approx(3.0 - 1.2)  # clipped, not noised
    again = exact_operation(w, keep, jnp.int32(1), jax.random.PRNGKey(3), rule, False)
    other = exact_operation(w, keep, jnp.int32(1), jax.random.PRNGKey(4), rule, False)
    np.testing.assert_array_equal(np.asarray(again.delta), delta)
    assert not np.array_equal(np.asarray(other.delta), delta)


def test_already_suppressed_stay_suppressed_and_go_to_zero():
    w = [0.5, 0.02, 0.3, 0.01]  # index 0 was suppressed earlier but drifted (e.g. restored params)
    keep, landed, count, _ = exact(w, 1, keep=[False, True, True, True])
    assert keep.tolist() == [False, True, True, True] and count == 1
    assert landed[0] == 0.0


def test_large_path_default_exact_count_no_clip():
    w = jnp.asarray([3.0, 0.1, -0.1, 0.1, 0.002, 2.0])
    out = large_operation(w, jnp.ones(6, bool), jnp.int32(3))
    assert np.asarray(out.keep).tolist() == [True, False, False, True, False, True]
    assert int(out.count) == 3
    np.testing.assert_allclose(np.asarray(w - out.delta), [3.0, 0, 0, 0.1, 0, 2.0])


def test_large_path_reference_distinct_values():
    # recorded count 1 (index 0 suppressed). Kept magnitudes: .1 .1 .2 .2 .3 -> distinct .1 .2 .3
    w = jnp.asarray([0.0, 0.1, -0.1, 0.2, 0.2, 0.3])
    keep = jnp.asarray([False, True, True, True, True, True])
    out, done = large_operation_reference(w, keep, jnp.int32(3), jnp.int32(1), parts=1)
    # k = 3 - 1 = 2 -> 2nd smallest distinct = 0.2 -> suppress |w| <= 0.2: 5 of 6
    assert bool(done) and float(out.threshold) == pytest.approx(0.2)
    assert np.asarray(out.keep).tolist() == [False, False, False, False, False, True]
    assert int(out.count) == 5
    # first operation (recorded 0): all magnitudes, not deduplicated: 0 .1 .1 .2 .2 .3, k=2 -> 0.1
    out0, _ = large_operation_reference(w, jnp.ones(6, bool), jnp.int32(2), jnp.int32(0), parts=1)
    assert float(out0.threshold) == pytest.approx(0.1)
    assert np.asarray(out0.keep).tolist() == [False, False, False, True, True, True]


def test_large_path_reference_counts_nothing_when_k_too_big():
    w = jnp.asarray([0.0, 0.1, 0.1, 0.1])
    keep = jnp.asarray([False, True, True, True])
    out, done = large_operation_reference(w, keep, jnp.int32(3), jnp.int32(1), parts=1)
    # one distinct kept value: k' = min(2, 1 - 1) = 0 -> nothing counted, nothing changes
    assert not bool(done)
    assert np.asarray(out.keep).tolist() == keep.tolist()
    assert np.all(np.asarray(out.delta) == 0)


def _plans(sizes, first_index=0, **rule):
    layers = [SelectedLayer(f"l{i}", first_index + i, n, LayerRule(f"l{i}", **rule)) for i, n in enumerate(sizes)]
    return plan_layers(layers)


def test_give_up_when_first_parameter_is_tiny():
    w0 = jnp.full((10,), 0.01)
    w1 = jnp.linspace(-1, 1, 10)
    keeps = [jnp.ones(10, bool)] * 2
    stops = jnp.array([5, 5])
    res = suppress_operation(_plans([10, 10]), [w0, w1], keeps, jnp.zeros(2, jnp.int32), stops, KEY)
    assert not bool(res.applied)
    assert all(bool(jnp.all(k)) for k in res.keep) and all(float(jnp.abs(d).sum()) == 0 for d in res.delta)
    # the same layers when the tiny one is not the network's first parameter: it goes ahead
    res2 = suppress_operation(_plans([10, 10], first_index=1), [w0, w1], keeps, jnp.zeros(2, jnp.int32), stops, KEY)
    assert bool(res2.applied) and res2.counts.tolist() == [5, 5]


def test_nonfinite_layer_is_skipped_and_flagged():
    w0 = jnp.array([0.5, jnp.nan, 0.3, 0.2])
    w1 = jnp.array([0.5, 0.1, 0.3, 0.2])
    res = suppress_operation(_plans([4, 4], first_index=1), [w0, w1], [jnp.ones(4, bool)] * 2,
                             jnp.zeros(2, jnp.int32), jnp.array([2, 2]), KEY)
    assert res.nonfinite.tolist() == [True, False]
    assert bool(jnp.all(res.keep[0])) and not bool(jnp.any(jnp.isnan(res.delta[0])))
    assert res.counts.tolist() == [0, 2]


def test_zero_stop_skips_the_layer():
    w = jnp.array([0.5, 0.1, 0.3, 0.2])
    res = suppress_operation(_plans([4], first_index=1), [w], [jnp.ones(4, bool)], jnp.zeros(1, jnp.int32),
                             jnp.array([0]), KEY)
    assert bool(jnp.all(res.keep[0])) and float(jnp.abs(res.delta[0]).sum()) == 0.0


@pytest.mark.parametrize("dtype", [np.float32, np.float16, jnp.bfloat16])
def test_dtype_bounds_match_float64_comparisons(dtype):
    for value in (0.005, 0.0025, 0.02, 0.5, 1.2, 0.35):
        lo, hi = floor_in_dtype(value, dtype), ceil_in_dtype(value, dtype)
        assert float(lo) <= value <= float(hi)
        assert lo.dtype == np.dtype(dtype) and hi.dtype == np.dtype(dtype)


def test_move_codes_name_the_rule_that_moved_each_weight():
    from supjax.layer_operation import Move

    w = jnp.array([0.003, -0.003, 0.003, 0.004, 0.3, 2.0, -0.8, 0.006], jnp.float32)
    rule = LayerRule("w", is_lower_clip=True, is_add_noise=True, upper_bound=1.0)
    out = exact_operation(w, jnp.ones(8, bool), jnp.int32(2), KEY, rule, parity=False)
    # thd = 0.003 (three ties): two suppressed in index order, the third pulled to 0.003;
    # 0.004 lower-clipped to 0.005 (thd > 0.0025); 2.0 clipped to 1.0; -0.8 noised
    expected = [Move.SUPPRESSED, Move.SUPPRESSED, Move.PULLED, Move.LOWER_CLIP,
                Move.NONE, Move.UPPER_CLIP, Move.NOISE, Move.NONE]
    assert np.asarray(out.move).tolist() == [int(m) for m in expected]
    assert out.move.dtype == jnp.int8
    # every weight whose delta is not zero was moved by a rule
    assert not np.any((np.asarray(out.delta) != 0) & (np.asarray(out.move) == Move.NONE))
    large = large_operation(w, jnp.ones(8, bool), jnp.int32(3))
    assert np.asarray(large.move).tolist() == [1, 1, 1, 0, 0, 0, 0, 0]
