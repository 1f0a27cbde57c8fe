"""``reference_parity=True`` end to end through ``supjax.suppress`` in the core suite.

Fourteen SGD steps of ``optax.chain(optax.sgd(lr), supjax.suppress(..., reference_parity=True))``
on two layers, compared step by step with an independent NumPy transcription of MindArmour
2.0.0's ``SuppressCtrl`` (``update_mask``, ``update_mask_layer`` and
``update_mask_layer_approximity`` of ``sup_ctrl/conctrl.py``, the masker's ``step_end``, and
MindSpore's SGD step ``w - lr * (g * mul_mask + add_mask)`` in float32):

* ``a`` (8x10, the network's first parameter: always the exact path) holds weights on a
  grid of 0.1 and gets no gradient, so its thresholds fall on runs of equal magnitudes and
  the reference's prefix-count tie rule decides, in index order, which are suppressed and
  which are pulled to ``min(thd, 0.005)``; ``min_num=10`` caps it at 70 of 80, weights above
  ``upper_bound=1.0`` are clipped.
* ``b`` (120x90 = 10800 weights, above MindArmour's 10000-parameter threshold, not first)
  holds weights on a 1e-5 grid and trains on a gradient that moves equal magnitudes equally;
  it takes the large-layer reference path: a threshold from the k-th smallest *distinct*
  unmasked magnitude, and every weight at or below it suppressed (so ties overshoot the stop).

The step numbers, target sparsities and a's suppressed counts are worked out by hand (b's
follow from the transcription, at least the hand-computed stops); the masks must equal the
transcription's exactly and the weights agree to float32 rounding (the reference lands a
weight at ``w - lr * (w - target) / lr`` in float32, supjax at the target).
"""

from __future__ import annotations

from fractions import Fraction

import jax
import numpy as np
import optax
import pytest

import supjax

LR = 0.05
STEPS = 14
LOWER_BOUND = 0.005  # the reference's weight_lower_bound
UPPER_BOUND_A = 1.0
MIN_NUM_A = 10
SCHEDULE = supjax.SuppressSchedule.from_steps(3, 10, 4, sparse_end=0.9)

# The reference (masker step_end at cur_step c, the new masks used from step c + 1): interval
# (10 - 3 + 1) / 4 = 2, so operations at the end of steps 3, 5, 7, 9, 11, 13. Target sparsity
# 0.9 - 0.9 * (1 - (c - 3) / 8) ** 3, capped at 0.9 (exact fractions):
TARGETS = {
    3: Fraction(0),  # stop 0: idle
    5: Fraction(9, 10) - Fraction(9, 10) * Fraction(6, 8) ** 3,  # 0.5203125
    7: Fraction(9, 10) - Fraction(9, 10) * Fraction(4, 8) ** 3,  # 0.7875
    9: Fraction(9, 10) - Fraction(9, 10) * Fraction(2, 8) ** 3,  # 0.8859375
    11: Fraction(9, 10),
    13: Fraction(9, 10),  # (1 - 10/8) ** 3 < 0: capped at sparse_end
}
# Suppressed counts after each operation. a, by hand: int(80 * min(1 - 10/80, s)) = 0, 41
# (80 * 0.5203125 = 41.625), 63, 70, 70, 70. b: the documented stops int(10800 * s) are 0,
# 5619, 8505, 9568, 9720, 9720; the large reference path reaches 5619 at its first operation
# (no tie at that cut) and then overshoots, since it takes the k-th smallest *distinct*
# unmasked magnitude and suppresses every weight at or below it, ties included: 9284, 9612,
# 9736 (what the transcription gives); at 13 it idles, stop 9720 < last 9736 + 1 part.
COUNTS = {
    3: (0, 0),
    5: (41, 5619),
    7: (63, 9284),
    9: (70, 9612),
    11: (70, 9736),
    13: (70, 9736),
}
IDEAL_B = {3: 0, 5: 5619, 7: 8505, 9: 9568, 11: 9720, 13: 9720}


def _initial():
    rng = np.random.default_rng(7)
    levels = rng.integers(1, 20, size=(8, 10)) * rng.choice([-1, 1], size=(8, 10))
    levels[7] = 30 * np.sign(levels[7])  # ten weights of 1.5: clipped to 1.0, never suppressed
    b = np.round(rng.normal(size=(120, 90)) * 0.1, 5)  # on a grid of 1e-5: equal magnitudes
    params = {
        "a": (levels * 0.05).astype(np.float32),  # magnitudes 0.05 .. 0.95 (many equal) and 1.5
        "b": b.astype(np.float32),
    }
    # b's gradient moves every kept weight away from zero by lr * 0.2 = 0.01 a step: equal
    # magnitudes stay equal, so every threshold of the large path falls on a run of ties
    grads = {"a": np.zeros((8, 10), np.float32), "b": (-0.2 * np.sign(b)).astype(np.float32)}
    return params, grads


# ------------------------------------------------------------------ the transcribed reference


def _reference_exact(w: np.ndarray, mul: np.ndarray, stop: int) -> tuple[np.ndarray, np.ndarray, int]:
    """``update_mask_layer`` (noise off) on a flat float32 layer: new (mul, add, count)."""
    a = np.abs(w)
    thd = np.partition(a, stop - 1)[stop - 1]
    mul, add, m, size = mul.copy(), np.zeros_like(w), 0, w.size
    for i in range(size):
        if mul[i] <= 0.0:
            add[i] = w[i] / LR
            m += 1
        elif a[i] <= thd:
            if m < size - MIN_NUM_A and m < stop:
                mul[i] = 0.0
                add[i] = w[i] / LR
                m += 1
            elif w[i] > 0.0:
                add[i] = (w[i] - min(LOWER_BOUND, thd)) / LR
            else:
                add[i] = (w[i] + min(LOWER_BOUND, thd)) / LR
        elif a[i] <= LOWER_BOUND and thd > LOWER_BOUND * 0.5:  # is_lower_clip=True
            mul[i] = 1.0
            add[i] = (w[i] - LOWER_BOUND if w[i] > 0.0 else w[i] + LOWER_BOUND) / LR
        elif a[i] > UPPER_BOUND_A:
            mul[i] = 1.0
            add[i] = (w[i] - UPPER_BOUND_A if w[i] > 0.0 else w[i] + UPPER_BOUND_A) / LR
        else:
            mul[i] = 1.0
    return mul, add, m


def _reference_large(w: np.ndarray, mul: np.ndarray, stop: int, last: int):
    """``update_mask_layer_approximity`` with one part: new (mul, add, count), or None (idle)."""
    if stop <= 0 or stop < last + 1:
        return None
    a = np.abs(w)
    init = last <= 0
    values = a if init else np.array(sorted(set(np.where(mul <= 0.0, -1.0, a).tolist()) - {-1.0}))
    k = min(stop - last, len(values) - 1)
    if k <= 0:
        return None
    thd = np.partition(values, k - 1)[k - 1]
    if not (thd > 0 or init):
        return None
    new_mul = np.where(a <= thd, 0.0, 1.0).astype(np.float32)
    add = np.where(new_mul <= 0.0, w / np.float32(LR), 0.0).astype(np.float32)
    return new_mul, add, int(w.size - new_mul.sum())


def _reference_run(params, grads):
    """MindArmour's loop: the SGD step with the masks, then the masker's step_end."""
    w = {k: v.ravel().copy() for k, v in params.items()}
    g = {k: v.ravel() for k, v in grads.items()}
    mul = {k: np.ones_like(v) for k, v in w.items()}
    add = {k: np.zeros_like(v) for k, v in w.items()}
    counts = {"a": 0, "b": 0}
    history = []
    for c in range(1, STEPS + 1):
        for k in w:
            w[k] = w[k] - np.float32(LR) * (g[k] * mul[k] + add[k])
        history.append(({k: v.copy() for k, v in w.items()}, {k: v.copy() for k, v in mul.items()}, dict(counts)))
        if c in TARGETS:
            s = float(TARGETS[c])
            stop_a = int(80 * min(1.0 - MIN_NUM_A / 80, s))
            if np.abs(w["a"]).max() < 0.02:  # the first parameter too small: the whole operation is given up
                continue
            if stop_a > 0:
                mul["a"], add["a"], counts["a"] = _reference_exact(w["a"], mul["a"], stop_a)
            out = _reference_large(w["b"], mul["b"], int(10800 * s), counts["b"])
            if out is not None:
                mul["b"], add["b"], counts["b"] = out
            assert (counts["a"], counts["b"]) == COUNTS[c], c
        else:
            add = {k: np.zeros_like(v) for k, v in add.items()}  # reset_zeros
    return history


# ------------------------------------------------------------------ supjax


def _supjax_run(params, grads):
    rules = [
        supjax.LayerRule("a", is_lower_clip=True, min_num=MIN_NUM_A, upper_bound=UPPER_BOUND_A),
        supjax.LayerRule("b"),
    ]
    tx = optax.chain(optax.sgd(LR), supjax.suppress(rules, SCHEDULE, seed=0, reference_parity=True))
    state = tx.init(params)

    @jax.jit
    def step(p, s):
        updates, s = tx.update(grads, s, p)
        return optax.apply_updates(p, updates), s

    history = []
    p = params
    for _ in range(STEPS):
        p, state = step(p, state)
        sup = supjax.find_suppress_state(state)
        history.append((
            {k: np.asarray(v).ravel() for k, v in p.items()},
            {k: np.asarray(m).ravel() for k, m in zip(("a", "b"), sup.keep_masks)},
            dict(zip(("a", "b"), np.asarray(sup.suppressed).tolist())),
        ))
    return history


@pytest.fixture(scope="module")
def runs():
    params, grads = _initial()
    return _reference_run(params, grads), _supjax_run(params, grads)


def test_the_case_takes_both_reference_paths():
    from supjax.layers import REFERENCE_LARGE_LAYER_SIZE

    assert REFERENCE_LARGE_LAYER_SIZE == 10000 and 120 * 90 > 10000 > 80
    params, _ = _initial()
    a = np.abs(params["a"]).ravel()
    # ties: the first cut (41st smallest of 80) lies inside a run of equal magnitudes
    thd = np.sort(a)[40]
    assert np.sum(a < thd) < 41 < np.sum(a <= thd)
    assert np.sum(a > UPPER_BOUND_A) == 10  # row 7 is clipped
    # b: 10800 magnitudes on a 1e-5 grid, with runs of equal ones
    b = np.abs(params["b"]).ravel()
    assert len(np.unique(b)) < 0.8 * b.size
    # the large path suppresses at least the documented stop (it may overshoot on ties)
    assert all(COUNTS[c][1] >= IDEAL_B[c] == int(10800 * float(TARGETS[c])) for c in TARGETS)


def test_masks_counts_and_weights_follow_the_reference_step_by_step(runs):
    reference, ours = runs
    for c, ((w_ref, mul_ref, n_ref), (w, keep, n)) in enumerate(zip(reference, ours), start=1):
        for k in ("a", "b"):
            np.testing.assert_array_equal(keep[k], mul_ref[k] > 0, err_msg=f"step {c}: mask of {k}")
            np.testing.assert_allclose(w[k], w_ref[k], rtol=0, atol=1e-6, err_msg=f"step {c}: {k}")
        assert n == n_ref, c


def test_hand_computed_outcome(runs):
    _, ours = runs
    # the masks of step c + 1 are the operation at the end of step c
    for c, (count_a, count_b) in COUNTS.items():
        w, keep, n = ours[c]
        assert (n["a"], n["b"]) == (count_a, count_b), c
        assert (int((~keep["a"]).sum()), int((~keep["b"]).sum())) == (count_a, count_b), c
        assert np.all(w["a"][~keep["a"]] == 0) and np.all(w["b"][~keep["b"]] == 0), c
    # a gets no gradient: after the first operation (end of step 5) its kept weights are on
    # the 0.05 grid above the threshold, clipped to 1.0 (row 7), or pulled to the lower bound
    # 0.005 (the tied weights at the threshold past the prefix count)
    params, _ = _initial()
    w, keep, _ = ours[5]
    kept = np.abs(w["a"][keep["a"]])
    pulled = np.abs(kept - LOWER_BOUND) <= 1e-7
    clipped = np.abs(kept - UPPER_BOUND_A) <= 1e-7
    grid = np.abs(kept * 20 - np.round(kept * 20)) < 1e-5
    assert pulled.sum() > 0 and clipped.sum() == 10 and np.all(pulled | clipped | grid)
    np.testing.assert_allclose(np.abs(w["a"][70:]), 1.0, rtol=0, atol=1e-7)
    # at the end: 70 of 80 suppressed (min_num=10), the ten kept are row 7 at +-1.0
    w, keep, _ = ours[-1]
    assert keep["a"].tolist() == [False] * 70 + [True] * 10
    np.testing.assert_allclose(w["a"][70:], np.sign(params["a"].ravel()[70:]), rtol=0, atol=1e-7)
