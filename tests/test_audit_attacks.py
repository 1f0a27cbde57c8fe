"""The statistics of the membership-inference audit: supjax_app.attacks.lira and .metrics.

Expected numbers are computed here from the formulas (by hand, with scipy, or with slow
reference loops), never by calling the code under test.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.integrate import quad
from scipy.stats import beta, norm
from sklearn.metrics import roc_auc_score, roc_curve

from supjax_app.attacks import metrics
from supjax_app.attacks.lira import (
    lira_offline,
    lira_online,
    loss_threshold,
    make_keep_matrix,
    rmia_offline,
    true_class_margin,
)
from supjax_app.attacks.metrics import bootstrap_intervals, epsilon_lower_bound, roc_summary

# --------------------------------------------------------------------------
# Margins, loss, keep matrix
# --------------------------------------------------------------------------


def test_margin_float64_does_not_saturate():
    logits = np.array([[60.0, 0.0, 0.0], [70.0, 0.0, 0.0]])
    labels = np.array([0, 0])
    # A float32 log-softmax ties: both true-class log-probabilities round to 0.
    z32 = logits.astype(np.float32)
    log_p32 = z32[:, 0] - (z32.max(1) + np.log(np.exp(z32 - z32.max(1, keepdims=True)).sum(1)))
    assert log_p32[0] == log_p32[1]
    m = true_class_margin(logits.astype(np.float32), labels)
    assert m.dtype == np.float64 and np.all(np.isfinite(m)) and m[0] != m[1]
    np.testing.assert_allclose(m, [60.0 - math.log(2.0), 70.0 - math.log(2.0)], rtol=0, atol=1e-12)
    # the exact negative cross-entropy is distinct too: -log(1 + 2 e^-60) vs -log(1 + 2 e^-70)
    loss = loss_threshold(logits, labels)
    np.testing.assert_allclose(loss, [-2 * math.exp(-60.0), -2 * math.exp(-70.0)], rtol=1e-12)
    assert loss[0] < loss[1] < 0.0


def test_margin_formula_on_a_batch_of_models():
    rng = np.random.default_rng(0)
    logits = rng.normal(scale=3.0, size=(3, 5, 4))
    labels = np.array([0, 3, 1, 1, 2])
    m = true_class_margin(logits, labels)
    assert m.shape == (3, 5)
    for n in range(3):
        for i in range(5):
            z = logits[n, i]
            rest = np.delete(z, labels[i])
            expected = z[labels[i]] - math.log(np.sum(np.exp(rest)))
            assert m[n, i] == pytest.approx(expected, abs=1e-12)
            p = np.exp(z) / np.exp(z).sum()
            assert loss_threshold(logits, labels)[n, i] == pytest.approx(math.log(p[labels[i]]), abs=1e-12)


@pytest.mark.parametrize("n_models", [2, 4, 8, 64])
def test_keep_matrix_exact_halves(n_models):
    keep = make_keep_matrix(n_models, 3000, seed=1)
    assert keep.dtype == np.bool_ and keep.shape == (n_models, 3000)
    assert np.all(keep.sum(axis=0) == n_models // 2)
    # every model is IN for about half of the pool (binomial-ish, sd <= sqrt(3000)/2 ~ 27)
    assert np.all(np.abs(keep.sum(axis=1) - 1500) < 150)
    # columns are not copies of one another
    assert len({tuple(c) for c in keep.T.tolist()}) > min(50, math.comb(n_models, n_models // 2) - 1)
    np.testing.assert_array_equal(keep, make_keep_matrix(n_models, 3000, seed=1))
    assert not np.array_equal(keep, make_keep_matrix(n_models, 3000, seed=2))


def test_keep_matrix_columns_independent_and_uniform():
    keep = make_keep_matrix(4, 60000, seed=3)
    # each of the C(4, 2) = 6 IN-sets is equally likely
    codes = keep.T @ np.array([1, 2, 4, 8])
    counts = np.bincount(codes, minlength=16)[[3, 5, 6, 9, 10, 12]]
    assert counts.sum() == 60000 and np.all(np.abs(counts - 10000) < 400)
    # neighbouring columns are independent: P(model 0 IN in both) = 1/4
    both = np.mean(keep[0, 1:] & keep[0, :-1])
    assert abs(both - 0.25) < 0.01


def test_keep_matrix_odd_models():
    keep = make_keep_matrix(5, 20000, seed=0)
    n_in = keep.sum(axis=0)
    assert set(np.unique(n_in).tolist()) == {2, 3}
    assert abs(np.mean(n_in == 3) - 0.5) < 0.02
    assert abs(keep.mean() - 0.5) < 0.01


# --------------------------------------------------------------------------
# LiRA, checked by hand on 4 models x 6 examples
# --------------------------------------------------------------------------

# Every column is IN for two models, and within each column the two IN scores differ by 2
# and so do the two OUT scores; each model is IN for 3 columns. So for every target, the
# pooled within-example variance of either side is 2 (three pairs each contributing
# 1^2 + 1^2 = 2 on 1 degree of freedom), sd = sqrt(2).
HAND_KEEP = np.array(
    [
        [1, 0, 1, 0, 1, 0],
        [1, 1, 0, 1, 0, 0],
        [0, 1, 1, 0, 0, 1],
        [0, 0, 0, 1, 1, 1],
    ],
    dtype=bool,
)
HAND_SCORES = np.array(
    [
        [4.0, 0.0, 2.0, 3.0, 9.0, 1.0],
        [6.0, 5.0, 1.0, 8.0, 0.0, -1.0],
        [1.0, 7.0, 4.0, 5.0, 2.0, 6.0],
        [3.0, 2.0, 3.0, 10.0, 7.0, 4.0],
    ]
)


def _cyclic_first(candidates, k, target, n_models):
    order = [(target + 1 + j) % n_models for j in range(n_models - 1)]
    return [m for m in order if m in candidates][:k]


def _reference_lira(scores, keep, online, fixed, balance=True):
    """Slow loops over (target, example), straight from the documented recipe."""
    n_models, pool = scores.shape
    out = np.zeros((n_models, pool))
    for t in range(n_models):
        others = [m for m in range(n_models) if m != t]
        pooled = {}
        for side in (True, False):
            ss, dof = 0.0, 0
            for i in range(pool):
                vals = np.array([scores[m, i] for m in others if keep[m, i] == side])
                if len(vals) >= 2:
                    ss += np.sum((vals - vals.mean()) ** 2)
                    dof += len(vals) - 1
            pooled[side] = math.sqrt(ss / dof)
        for i in range(pool):
            n_in = int(keep[:, i].sum())
            n_out = n_models - n_in
            if not balance:
                k = {True: n_models, False: n_models}
            elif online:
                k = {True: min(n_in, n_out) - 1, False: min(n_in, n_out) - 1}
            else:
                k = {True: n_in - 1, False: n_out - 1}
            fit = {}
            for side in (True, False):
                chosen = _cyclic_first([m for m in others if keep[m, i] == side], k[side], t, n_models)
                vals = scores[chosen, i]
                sd = np.std(vals, ddof=1) if (not fixed and len(vals) >= 2) else pooled[side]
                fit[side] = (vals.mean(), sd)
            x = scores[t, i]
            if online:
                out[t, i] = norm.logpdf(x, *fit[True]) - norm.logpdf(x, *fit[False])
            else:
                out[t, i] = (x - fit[False][0]) / fit[False][1]
    return out


def test_lira_hand_values():
    # Target 0, example 0 (IN): IN shadow {1} -> mu_in = 6; OUT shadows {2, 3}, one dropped:
    # the first after 0 in the order 1, 2, 3 is kept -> mu_out = 1. x = 4, sd = sqrt(2):
    # online = -(4-6)^2/4 + (4-1)^2/4 = 1.25, offline z = (4-1)/sqrt(2).
    # Target 2, example 0 (OUT): OUT shadow {3} -> mu_out = 3; IN {0, 1}, order 3, 0, 1 keeps 0
    # -> mu_in = 4. x = 1: online = -(1-4)^2/4 + (1-3)^2/4 = -1.25, offline z = (1-3)/sqrt(2).
    online = lira_online(HAND_SCORES, HAND_KEEP)
    offline = lira_offline(HAND_SCORES, HAND_KEEP)
    assert online[0, 0] == pytest.approx(1.25, abs=1e-12)
    assert online[2, 0] == pytest.approx(-1.25, abs=1e-12)
    assert offline[0, 0] == pytest.approx(3 / math.sqrt(2), abs=1e-12)
    assert offline[2, 0] == pytest.approx(-math.sqrt(2), abs=1e-12)
    # Target 1, example 5 (OUT; IN = {2, 3}, OUT = {0, 1}): OUT shadow {0} -> 1;
    # IN order 2, 3, 0 keeps 2 -> 6. x = -1: online = -49/4 + 4/4 = -11.25; offline -2/sqrt(2).
    assert online[1, 5] == pytest.approx(-11.25, abs=1e-12)
    assert offline[1, 5] == pytest.approx(-math.sqrt(2), abs=1e-12)


@pytest.mark.parametrize("online", [True, False])
@pytest.mark.parametrize("balance", [True, False])
def test_lira_matches_reference_loops_4x6(online, balance):
    attack = lira_online if online else lira_offline
    got = attack(HAND_SCORES, HAND_KEEP, fixed_variance=True, balance=balance)
    expected = _reference_lira(HAND_SCORES, HAND_KEEP, online, fixed=True, balance=balance)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("online", [True, False])
@pytest.mark.parametrize("fixed", [True, False])
def test_lira_matches_reference_loops_8x6(online, fixed):
    rng = np.random.default_rng(5)
    keep = make_keep_matrix(8, 6, seed=5)
    scores = rng.normal(size=(1, 6)) * 3 + rng.normal(size=(8, 6)) + keep
    attack = lira_online if online else lira_offline
    got = attack(scores, keep, fixed_variance=fixed)
    np.testing.assert_allclose(got, _reference_lira(scores, keep, online, fixed), rtol=1e-10, atol=1e-10)


def test_lira_finds_the_signal():
    rng = np.random.default_rng(0)
    keep = make_keep_matrix(16, 2000, seed=0)
    difficulty = rng.normal(scale=4.0, size=2000)
    scores = difficulty + rng.normal(size=(16, 2000)) + 1.5 * keep
    logits = np.stack([scores, np.zeros_like(scores)], axis=-1)
    labels = np.zeros(2000, dtype=int)
    auc = {
        "loss": roc_auc_score(keep.ravel(), loss_threshold(logits, labels).ravel()),
        "offline": roc_auc_score(keep.ravel(), lira_offline(scores, keep).ravel()),
        "online": roc_auc_score(keep.ravel(), lira_online(scores, keep).ravel()),
        "rmia": roc_auc_score(keep.ravel(), rmia_offline(logits, labels, keep).ravel()),
    }
    # per-example calibration beats one global threshold when examples differ in difficulty
    # (RMIA less so here: it works on probabilities, which saturate for these margins)
    assert auc["loss"] < 0.65
    assert auc["online"] > 0.8 and auc["offline"] > 0.8 and auc["rmia"] > auc["loss"] + 0.05


# --------------------------------------------------------------------------
# Pitfall (a): no membership signal must give AUC 0.5
# --------------------------------------------------------------------------


def _no_signal(n_models, pool=5000, seed=0, keep=None):
    rng = np.random.default_rng(seed)
    if keep is None:
        keep = make_keep_matrix(n_models, pool, seed=seed)
    scores = rng.normal(scale=3.0, size=pool) + rng.normal(size=(n_models, pool))  # difficulty + noise
    return scores, keep


def _as_logits(margins):
    # logits [m, 0] with label 0 have true-class margin exactly m
    return np.stack([margins, np.zeros_like(margins)], axis=-1), np.zeros(margins.shape[1], dtype=int)


ATTACKS_NO_SIGNAL = {
    "online": lambda s, k: lira_online(s, k),
    "online_per_example": lambda s, k: lira_online(s, k, fixed_variance=False),
    "offline": lambda s, k: lira_offline(s, k),
    "rmia": lambda s, k: rmia_offline(*_as_logits(s), k),
}


@pytest.mark.parametrize("n_models", [4, 8, 16, 32, 64])
@pytest.mark.parametrize("attack", sorted(ATTACKS_NO_SIGNAL))
def test_no_signal_gives_chance_auc(n_models, attack):
    scores, keep = _no_signal(n_models)
    s = ATTACKS_NO_SIGNAL[attack](scores, keep)
    assert np.all(np.isfinite(s))
    assert abs(roc_auc_score(keep.ravel(), s.ravel()) - 0.5) < 0.02


@pytest.mark.parametrize("n_models", [4, 8])
def test_unbalanced_online_is_biased_against_members(n_models):
    # The failure that balancing removes: with leave-one-out alone the target's own side has
    # one shadow fewer, its mean is noisier and members look less like members.
    # Expected AUC about 0.41 at N = 4 and 0.476 at N = 8 (seed-to-seed sd ~ 0.005).
    scores, keep = _no_signal(n_models)
    unbalanced = roc_auc_score(keep.ravel(), lira_online(scores, keep, balance=False).ravel())
    balanced = roc_auc_score(keep.ravel(), lira_online(scores, keep).ravel())
    assert unbalanced < {4: 0.45, 8: 0.485}[n_models]
    assert balanced - unbalanced > 0.015


def test_no_signal_with_uneven_keep_matrix():
    # Bernoulli keep: columns have any number of IN models; both sides trimmed to min - 1.
    rng = np.random.default_rng(7)
    keep = rng.random((8, 5000)) < 0.5
    scores, _ = _no_signal(8, keep=keep, seed=7)
    for attack in ATTACKS_NO_SIGNAL.values():
        s = attack(scores, keep)
        assert np.all(np.isfinite(s))
        assert abs(roc_auc_score(keep.ravel(), s.ravel()) - 0.5) < 0.02


def test_offline_balance_keeps_low_fpr_honest():
    # Offline AUC is 0.5 either way (symmetry), but without balancing a non-member target
    # sees one OUT shadow fewer: its z has the wider spread, and at N = 4 TPR at 1 % FPR
    # falls to about 0.4 % instead of 1 %.
    scores, keep = _no_signal(4, pool=20000)
    balanced = roc_summary(lira_offline(scores, keep), keep, (0.01,))["tpr_at_fpr"][0.01]
    unbalanced = roc_summary(lira_offline(scores, keep, balance=False), keep, (0.01,))["tpr_at_fpr"][0.01]
    assert 0.007 < balanced < 0.013
    assert unbalanced < 0.006


# --------------------------------------------------------------------------
# Fallbacks and bad input of the attacks
# --------------------------------------------------------------------------


def test_fallbacks_never_nan():
    rng = np.random.default_rng(0)
    keep = make_keep_matrix(6, 40, seed=0)
    keep[:, 0] = True  # no OUT model at all
    keep[:, 1] = False  # no IN model at all
    keep[:, 2] = [True, False, False, False, False, False]  # IN for one model only
    scores = rng.normal(size=(6, 40)) + keep
    scores[:, 3] = 2.0  # all shadows tie: sd floored
    for fixed in (True, False):
        for balance in (True, False):
            for attack in (lira_online, lira_offline):
                assert np.all(np.isfinite(attack(scores, keep, fixed_variance=fixed, balance=balance)))
    assert np.all(np.isfinite(rmia_offline(*_as_logits(scores), keep)))
    # two models: every shadow set is a single model or empty
    keep2 = make_keep_matrix(2, 30, seed=0)
    scores2 = rng.normal(size=(2, 30))
    assert np.all(np.isfinite(lira_online(scores2, keep2))) and np.all(np.isfinite(lira_offline(scores2, keep2)))


def test_fallback_mean_uses_other_side_and_gap():
    # Example 0 is IN for every model: its OUT mean is its IN shadows' mean minus the
    # average IN - OUT gap over all of the target's shadows.
    keep = make_keep_matrix(4, 5, seed=0)
    keep[:, 0] = True
    scores = np.where(keep, 12.0, 10.0) + np.array([[0.0], [0.1], [0.3], [0.6]]) * np.arange(1, 6)
    z = lira_offline(scores, keep)
    assert np.all(np.isfinite(z))
    shadows = np.array([False, True, True, True])  # target 0
    in_vals, out_vals = scores[shadows][keep[shadows]], scores[shadows][~keep[shadows]]
    gap = in_vals.mean() - out_vals.mean()
    mu_out = scores[1:, 0].mean() - gap
    ss, dof = 0.0, 0
    for i in range(1, 5):
        vals = scores[shadows & ~keep[:, i], i]
        ss, dof = ss + np.sum((vals - vals.mean()) ** 2), dof + len(vals) - 1
    assert z[0, 0] == pytest.approx((scores[0, 0] - mu_out) / math.sqrt(ss / dof), rel=1e-12)


@pytest.mark.parametrize("a, gamma", [(0.3, 1.0), (0.3, 1.5), (0.0, 1.2), (1.0, 1.1), (0.5, 0.8)])
def test_rmia_matches_hand_formula(a, gamma):
    keep = HAND_KEEP
    logits, labels = _as_logits(HAND_SCORES / 4.0)
    got = rmia_offline(logits, labels, keep, a=a, gamma=gamma)
    p = 1.0 / (1.0 + np.exp(-HAND_SCORES / 4.0))
    for t in range(4):
        ratio = np.zeros(6)
        for i in range(6):
            out_shadows = _cyclic_first([m for m in range(4) if m != t and not keep[m, i]], 1, t, 4)
            pr_x = 0.5 * ((1 + a) * p[out_shadows, i].mean() + (1 - a))
            ratio[i] = p[t, i] / pr_x
        for i in range(6):
            beaten = sum(ratio[i] / ratio[j] > gamma for j in range(6) if j != i)
            assert got[t, i] == pytest.approx(beaten / 5, abs=1e-12)


def test_rmia_population_sample_and_gamma():
    scores, keep = _no_signal(8, pool=300)
    logits, labels = _as_logits(scores + 2.0 * keep)
    full = rmia_offline(logits, labels, keep)
    sampled = rmia_offline(logits, labels, keep, population=100, seed=1)
    assert sampled.shape == (8, 300) and np.all((sampled >= 0) & (sampled <= 1))
    assert np.corrcoef(full.ravel(), sampled.ravel())[0, 1] > 0.95
    # a higher gamma never beats more of the population
    assert np.all(rmia_offline(logits, labels, keep, gamma=2.0) <= full)


BAD_ATTACK_INPUT = [
    ("keep not bool", lambda: lira_online(HAND_SCORES, HAND_KEEP.astype(int)), ValueError, ["keep", "boolean"]),
    ("keep shape", lambda: lira_offline(HAND_SCORES, HAND_KEEP[:, :5]), ValueError, ["keep", "shape"]),
    ("scores 1-D", lambda: lira_online(HAND_SCORES[0], HAND_KEEP[0]), ValueError, ["scores", "(N, P)"]),
    ("one model", lambda: lira_online(HAND_SCORES[:1], HAND_KEEP[:1]), ValueError, ["scores", "N >= 2"]),
    ("scores NaN", lambda: lira_online(np.where(HAND_KEEP, np.nan, 0.0), HAND_KEEP), ValueError, ["scores", "finite"]),
    ("scores str", lambda: lira_online(HAND_SCORES.astype(str), HAND_KEEP), TypeError, ["scores"]),
    ("fixed_variance", lambda: lira_online(HAND_SCORES, HAND_KEEP, fixed_variance="yes"), TypeError,
     ["fixed_variance"]),
    ("labels range", lambda: true_class_margin(np.zeros((2, 3)), np.array([0, 3])), ValueError, ["labels", "0..2"]),
    ("labels shape", lambda: true_class_margin(np.zeros((2, 3)), np.array([0])), ValueError, ["labels", "shape"]),
    ("labels float", lambda: true_class_margin(np.zeros((2, 3)), np.array([0.0, 1.0])), TypeError,
     ["labels", "integer"]),
    ("one class", lambda: true_class_margin(np.zeros((2, 1)), np.array([0, 0])), ValueError, ["logits", "C >= 2"]),
    ("rmia a", lambda: rmia_offline(*_as_logits(HAND_SCORES), HAND_KEEP, a=1.5), ValueError, ["a", "[0, 1]"]),
    ("rmia gamma", lambda: rmia_offline(*_as_logits(HAND_SCORES), HAND_KEEP, gamma=0.0), ValueError, ["gamma", "> 0"]),
    ("rmia population", lambda: rmia_offline(*_as_logits(HAND_SCORES), HAND_KEEP, population=7), ValueError,
     ["population", "1..6"]),
    ("rmia margins", lambda: rmia_offline(HAND_SCORES, np.zeros(6, int), HAND_KEEP), ValueError,
     ["logits", "(N, P, C)"]),
    ("keep models", lambda: make_keep_matrix(1, 10, seed=0), ValueError, ["n_models", ">= 2"]),
    ("keep pool", lambda: make_keep_matrix(4, 0, seed=0), ValueError, ["pool_size", ">= 1"]),
    ("keep seed", lambda: make_keep_matrix(4, 10, seed=-1), ValueError, ["seed", ">= 0"]),
    ("keep float", lambda: make_keep_matrix(4.0, 10, seed=0), TypeError, ["n_models", "int"]),
]


@pytest.mark.parametrize("what, call, exc, words", BAD_ATTACK_INPUT, ids=[b[0] for b in BAD_ATTACK_INPUT])
def test_attack_bad_input(what, call, exc, words):
    with pytest.raises(exc) as info:
        call()
    for word in words:
        assert word in str(info.value)


# --------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------


def _two_gaussians(d, n=100_000, seed=0):
    rng = np.random.default_rng(seed)
    member = np.arange(2 * n) < n
    return rng.normal(size=2 * n) + d * member, member


def test_roc_summary_two_gaussians():
    d = 2.0
    scores, member = _two_gaussians(d)
    s = roc_summary(scores, member, (0.001, 0.01, 0.1))
    assert s["auc"] == pytest.approx(norm.cdf(d / math.sqrt(2)), abs=0.004)
    assert s["advantage"] == pytest.approx(2 * norm.cdf(d / 2) - 1, abs=0.01)  # best threshold d/2
    for f, tol in ((0.001, 0.03), (0.01, 0.012), (0.1, 0.008)):
        assert s["tpr_at_fpr"][f] == pytest.approx(norm.cdf(norm.ppf(f) + d), abs=tol)


def test_tpr_at_fpr_convention_small_case():
    # non-members 0.9, 0.5, 0.1, 0.0 (FPR steps 1/4); members 1.0, 0.8, 0.3
    scores = np.array([0.9, 0.5, 0.1, 0.0, 1.0, 0.8, 0.3])
    member = np.array([False] * 4 + [True] * 3)
    s = roc_summary(scores, member, (0.2, 0.25, 0.5, 0.74))
    # FPR <= 0.2 allows only threshold > 0.9: TPR 1/3; 0.25 allows threshold 0.8 -> 2/3
    assert s["tpr_at_fpr"] == {0.2: 1 / 3, 0.25: 2 / 3, 0.5: 1.0, 0.74: 1.0}
    assert s["advantage"] == pytest.approx(1.0 - 0.5)


def test_separable_and_tied_scores():
    member = np.arange(1000) < 300
    s = roc_summary(member.astype(float), member, (0.001, 0.01))
    assert s == {"auc": 1.0, "advantage": 1.0, "tpr_at_fpr": {0.001: 1.0, 0.01: 1.0}}
    ci = bootstrap_intervals(member.astype(float), member, (0.001,), n_boot=50)
    assert ci["auc"] == (1.0, 1.0) and ci["tpr_at_fpr"][0.001] == (1.0, 1.0)
    tied = roc_summary(np.zeros(1000), member, (0.01,))
    assert tied == {"auc": 0.5, "advantage": 0.0, "tpr_at_fpr": {0.01: 0.0}}


def test_random_scores_are_chance():
    rng = np.random.default_rng(1)
    member = rng.random(200_000) < 0.5
    s = roc_summary(rng.normal(size=200_000), member, (0.01,))
    assert abs(s["auc"] - 0.5) < 0.03
    assert abs(s["tpr_at_fpr"][0.01] - 0.01) < 0.003


def test_weighted_roc_matches_sklearn():
    # The vectorised bootstrap core against scikit-learn on resampled data with ties.
    rng = np.random.default_rng(2)
    scores = rng.integers(0, 30, size=400).astype(float)
    member = rng.random(400) < 0.4
    member_order, other_order, points = metrics._roc_counts(scores, member)
    w_m = rng.integers(0, 3, size=(5, member_order.size))
    w_o = rng.integers(0, 3, size=(5, other_order.size))
    fpr, tpr = metrics._weighted_roc(w_m, w_o, points)
    got = metrics._roc_metrics(fpr, tpr, (0.01, 0.1))
    for b in range(5):
        weights = np.zeros(400)
        weights[member_order] = w_m[b]
        weights[other_order] = w_o[b]
        s_rep, m_rep = np.repeat(scores, weights.astype(int)), np.repeat(member, weights.astype(int))
        ref_fpr, ref_tpr, _ = roc_curve(m_rep, s_rep, drop_intermediate=False)
        assert got[b, 0] == pytest.approx(roc_auc_score(m_rep, s_rep), abs=1e-12)
        assert got[b, 1] == pytest.approx(np.max(ref_tpr - ref_fpr), abs=1e-12)
        for k, f in enumerate((0.01, 0.1)):
            assert got[b, 2 + k] == pytest.approx(np.max(ref_tpr[ref_fpr <= f]), abs=1e-12)
    # unit weights on the hand case of test_tpr_at_fpr_convention, FPR targets on ROC points
    scores = np.array([0.9, 0.5, 0.1, 0.0, 1.0, 0.8, 0.3])
    member = np.array([False] * 4 + [True] * 3)
    _, _, points = metrics._roc_counts(scores, member)
    fpr, tpr = metrics._weighted_roc(np.ones((1, 3)), np.ones((1, 4)), points)
    got = metrics._roc_metrics(fpr, tpr, (0.2, 0.25, 0.5, 0.74))
    np.testing.assert_allclose(got[0], [9 / 12, 0.5, 1 / 3, 2 / 3, 1.0, 1.0], rtol=0, atol=1e-12)


def test_bootstrap_two_gaussians_covers_truth_with_the_right_width():
    d, n = 1.5, 50_000
    scores, member = _two_gaussians(d, n=n, seed=3)
    f = 0.01
    ci = bootstrap_intervals(scores, member, (f,), n_boot=200, seed=0)
    true_auc = norm.cdf(d / math.sqrt(2))
    true_tpr = norm.cdf(norm.ppf(f) + d)
    true_adv = 2 * norm.cdf(d / 2) - 1
    assert ci["auc"][0] < true_auc < ci["auc"][1]
    assert ci["tpr_at_fpr"][f][0] < true_tpr < ci["tpr_at_fpr"][f][1]
    assert ci["advantage"][0] < true_adv < ci["advantage"][1]
    # widths against the asymptotic standard errors (for the AUC the Mann-Whitney variance
    # with the binormal Q1 = P(X1, X2 > Y), Q2 = P(X > Y1, Y2); for TPR at a fixed FPR: the
    # binomial TPR error plus the threshold's error times the ROC slope)
    q1 = quad(lambda y: norm.pdf(y) * norm.sf(y - d) ** 2, -12, 12)[0]
    q2 = quad(lambda x: norm.pdf(x - d) * norm.cdf(x) ** 2, -12, 12)[0]
    se_auc = math.sqrt((true_auc * (1 - true_auc) + (n - 1) * (q1 - true_auc**2) + (n - 1) * (q2 - true_auc**2)) / n**2)
    slope = norm.pdf(norm.ppf(f) + d) / norm.pdf(norm.ppf(f))
    se_tpr = math.sqrt(true_tpr * (1 - true_tpr) / n + slope**2 * f * (1 - f) / n)
    z = norm.ppf(0.975)
    assert 0.75 < (ci["auc"][1] - ci["auc"][0]) / (2 * z * se_auc) < 1.25
    assert 0.7 < (ci["tpr_at_fpr"][f][1] - ci["tpr_at_fpr"][f][0]) / (2 * z * se_tpr) < 1.4
    assert ci["level"] == 0.95 and ci["n_boot"] == 200


def test_resample_counts_are_multinomial():
    counts = metrics._resample_counts(np.random.default_rng(0), 400, 500)
    assert counts.shape == (400, 500) and np.all(counts.sum(axis=1) == 500)
    # each item's multiplicity is Binomial(500, 1/500): mean 1, variance 0.998
    assert abs(counts.mean() - 1.0) < 1e-12
    assert abs(counts.var() - (1 - 1 / 500)) < 0.02
    assert np.all(counts.mean(axis=0) > 0.7)  # every item is drawn


def test_bootstrap_is_seeded():
    scores, member = _two_gaussians(1.0, n=2000)
    a = bootstrap_intervals(scores, member, (0.01,), n_boot=30, seed=4)
    assert a == bootstrap_intervals(scores, member, (0.01,), n_boot=30, seed=4)
    assert a != bootstrap_intervals(scores, member, (0.01,), n_boot=30, seed=5)
    narrow = bootstrap_intervals(scores, member, (0.01,), n_boot=200, seed=4, level=0.5)
    wide = bootstrap_intervals(scores, member, (0.01,), n_boot=200, seed=4, level=0.99)
    assert wide["auc"][0] < narrow["auc"][0] < narrow["auc"][1] < wide["auc"][1]


def test_epsilon_hand_counts():
    # 1000 members, 1000 non-members; score 2 for 500 members and 10 non-members, else 0.
    member = np.arange(2000) < 1000
    scores = np.zeros(2000)
    scores[:500] = 2.0
    scores[1000:1010] = 2.0
    tpr_lo = beta.ppf(0.05, 500, 501)  # Clopper-Pearson, one-sided 95 %
    fpr_hi = beta.ppf(0.95, 11, 990)
    expected = max(math.log(tpr_lo / fpr_hi), math.log((1 - fpr_hi) / (1 - tpr_lo)))
    assert epsilon_lower_bound(scores, member, 0.01) == pytest.approx(expected, rel=1e-10)
    assert expected == pytest.approx(math.log(tpr_lo / fpr_hi))  # the first form wins here
    # FPR target just below 1 %: the threshold 2 is not allowed, nothing is flagged -> 0
    assert epsilon_lower_bound(scores, member, 0.0099) == 0.0
    # with delta
    expected_d = math.log((tpr_lo - 0.1) / fpr_hi)
    assert epsilon_lower_bound(scores, member, 0.01, delta=0.1) == pytest.approx(expected_d, rel=1e-10)


def test_epsilon_complementary_form():
    # every member flagged, half the non-members too: TPR ~ 1, FPR = 0.5 -> the second form
    member = np.arange(2000) < 1000
    scores = np.where(member | (np.arange(2000) >= 1500), 1.0, 0.0)
    tpr_lo = beta.ppf(0.05, 1000, 1)
    fpr_hi = beta.ppf(0.95, 501, 500)
    first, second = math.log(tpr_lo / fpr_hi), math.log((1 - fpr_hi) / (1 - tpr_lo))
    assert second > first
    assert epsilon_lower_bound(scores, member, 0.5) == pytest.approx(second, rel=1e-10)


def test_epsilon_is_zero_without_signal():
    rng = np.random.default_rng(0)
    member = rng.random(20_000) < 0.5
    assert epsilon_lower_bound(rng.normal(size=20_000), member, 0.01) == 0.0


def test_epsilon_is_a_lower_bound_of_a_known_mechanism():
    # Gaussian scores with shift d are exactly the output of a mechanism with
    # f-DP curve TPR = Phi(Phi^-1(FPR) + d); its pure-DP-style ratio at FPR 1 % is
    # ln(TPR/FPR) ~ ln(0.372/0.01) ~ 3.6 for d = 2. The bound must stay below it.
    scores, member = _two_gaussians(2.0, n=20_000)
    eps = epsilon_lower_bound(scores, member, 0.01)
    true_ratio = math.log(norm.cdf(norm.ppf(0.01) + 2.0) / 0.01)
    assert 0.8 * true_ratio < eps < true_ratio


GOOD_S = np.array([0.1, 0.2, 0.3, 0.4])
GOOD_M = np.array([False, True, False, True])

BAD_METRIC_INPUT = [
    ("fpr 0", lambda: roc_summary(GOOD_S, GOOD_M, (0.0,)), ValueError, ["fpr_targets", "(0, 1)"]),
    ("fpr 1", lambda: roc_summary(GOOD_S, GOOD_M, (0.01, 1.0)), ValueError, ["fpr_targets", "(0, 1)"]),
    ("fpr negative", lambda: bootstrap_intervals(GOOD_S, GOOD_M, (-0.1,)), ValueError, ["fpr_targets", "(0, 1)"]),
    ("fpr str", lambda: roc_summary(GOOD_S, GOOD_M, "0.01"), TypeError, ["fpr_targets"]),
    ("shape", lambda: roc_summary(GOOD_S, GOOD_M[:3]), ValueError, ["is_member", "shape"]),
    ("not bool", lambda: roc_summary(GOOD_S, GOOD_M.astype(int)), ValueError, ["is_member", "boolean"]),
    ("no member", lambda: roc_summary(GOOD_S, np.zeros(4, bool)), ValueError, ["is_member", "at least one member"]),
    ("no non-member", lambda: epsilon_lower_bound(GOOD_S, np.ones(4, bool), 0.01), ValueError,
     ["is_member", "non-member"]),
    ("nan", lambda: roc_summary(np.array([0.1, np.nan, 0.3, 0.4]), GOOD_M), ValueError, ["scores", "finite"]),
    ("eps fpr", lambda: epsilon_lower_bound(GOOD_S, GOOD_M, 1.5), ValueError, ["fpr_target", "(0, 1)"]),
    ("eps alpha", lambda: epsilon_lower_bound(GOOD_S, GOOD_M, 0.1, alpha=0.0), ValueError, ["alpha", "(0, 1)"]),
    ("eps delta", lambda: epsilon_lower_bound(GOOD_S, GOOD_M, 0.1, delta=1.0), ValueError, ["delta", "[0, 1)"]),
    ("n_boot", lambda: bootstrap_intervals(GOOD_S, GOOD_M, n_boot=0), ValueError, ["n_boot", ">= 1"]),
    ("level", lambda: bootstrap_intervals(GOOD_S, GOOD_M, level=95), ValueError, ["level", "(0, 1)"]),
    ("seed", lambda: bootstrap_intervals(GOOD_S, GOOD_M, seed=-1), ValueError, ["seed", ">= 0"]),
]


@pytest.mark.parametrize("what, call, exc, words", BAD_METRIC_INPUT, ids=[b[0] for b in BAD_METRIC_INPUT])
def test_metric_bad_input(what, call, exc, words):
    with pytest.raises(exc) as info:
        call()
    for word in words:
        assert word in str(info.value)
