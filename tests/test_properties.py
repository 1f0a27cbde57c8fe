"""Properties of one operation (hypothesis): counts, monotone masks, bounds."""

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from supjax.layers import LayerRule
from supjax.layer_operation import LOWER_BOUND, exact_operation

KEY = jax.random.PRNGKey(0)
SIZES = [9, 40]  # few shapes and rules: each new combination compiles once
RULES = [
    LayerRule("w"),
    LayerRule("w", is_lower_clip=True, min_num=3),
    LayerRule("w", upper_bound=0.35, min_num=-1),
    LayerRule("w", is_lower_clip=True, upper_bound=0.05, min_num=0),
]


@st.composite
def layers(draw):
    n = draw(st.sampled_from(SIZES))
    grid = draw(st.sampled_from([0.0, 0.05, 0.25]))  # 0: continuous values; else many ties
    values = draw(st.lists(st.floats(-1.5, 1.5, width=32), min_size=n, max_size=n))
    w = np.asarray(values, np.float32)
    if grid:
        w = (np.round(w / grid) * grid).astype(np.float32)
    prev = np.asarray(draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    w[prev] = 0.0
    stop = draw(st.integers(1, n))
    rule = draw(st.sampled_from(RULES))
    return w, ~prev, stop, rule


_jitted = {}


def operate(w, keep, stop, rule, parity):
    key = (rule, parity)
    if key not in _jitted:
        _jitted[key] = jax.jit(lambda w, k, s: exact_operation(w, k, s, KEY, rule, parity))
    out = _jitted[key](jnp.asarray(w), jnp.asarray(keep), jnp.int32(stop))
    return np.asarray(out.keep), np.asarray(w - out.delta), int(out.count), float(out.threshold)


def prefix_rule(w, keep, stop, min_num):
    """The reference's per-element walk (SPEC.md section 4, rules 1-2), transcribed."""
    a = np.abs(w)
    n = a.size
    thd = np.partition(a, stop - 1)[stop - 1]
    suppressed = ~keep.copy()
    c = 0
    for i in range(n):
        if not keep[i]:
            c += 1
        elif a[i] <= thd and c < n - min_num and c < stop:
            suppressed[i] = True
            c += 1
    return suppressed, c


@settings(max_examples=120, deadline=None)
@given(layers())
def test_default_count_equals_stop(layer):
    w, keep, stop, rule = layer
    new_keep, _, count, _ = operate(w, keep, stop, rule, False)
    assert count == max(stop, int((~keep).sum()))
    assert count == int((~new_keep).sum())


@settings(max_examples=120, deadline=None)
@given(layers())
def test_parity_follows_the_prefix_rule(layer):
    w, keep, stop, rule = layer
    new_keep, _, count, _ = operate(w, keep, stop, rule, True)
    expected, c = prefix_rule(w, keep, stop, rule.min_num)
    np.testing.assert_array_equal(~new_keep, expected)
    assert count == c


@settings(max_examples=120, deadline=None)
@given(layers(), st.booleans())
def test_suppressed_never_come_back_and_land_on_zero(layer, parity):
    w, keep, stop, rule = layer
    new_keep, landed, _, _ = operate(w, keep, stop, rule, parity)
    assert not np.any(new_keep & ~keep)
    assert np.all(landed[~new_keep] == 0.0)


@settings(max_examples=120, deadline=None)
@given(layers(), st.booleans())
def test_kept_weights_end_inside_the_bounds(layer, parity):
    w, keep, stop, rule = layer
    new_keep, landed, _, thd = operate(w, keep, stop, rule, parity)
    kept = landed[new_keep]
    # landing is `w - (w - target)` in float32: within a rounding step of the bound
    assert np.all(np.abs(kept) <= np.float32(rule.effective_upper_bound) * (1 + 1e-6))
    if rule.is_lower_clip and thd > LOWER_BOUND / 2:
        assert np.all(np.abs(kept) >= np.float32(min(thd, LOWER_BOUND)) * (1 - 1e-6))
