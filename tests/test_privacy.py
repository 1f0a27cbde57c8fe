"""Tests for supjax_app.attacks.classifiers: loss features, membership-inference attacks, validation."""

from __future__ import annotations

import doctest
import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import supjax_app.attacks.classifiers as privacy_mod
from supjax_app.attacks.classifiers import ATTACKS, membership_features, membership_inference

METRICS = {"precision", "recall", "accuracy", "auc"}


# ----------------------------------------------------------------- features


def test_membership_features_hand_checked():
    # Row 0: softmax([0, 0]) = [1/2, 1/2]   -> loss = log 2.
    # Row 1: softmax([log 3, 0]) = [3/4, 1/4], label 1 -> loss = log 4.
    logits = np.array([[0.0, 0.0], [math.log(3.0), 0.0]])
    feats = membership_features(logits, np.array([0, 1]))
    assert feats.shape == (2, 3)
    np.testing.assert_allclose(feats[:, 0], [math.log(2.0), math.log(4.0)], rtol=1e-12)
    np.testing.assert_array_equal(feats[:, 1:], logits)


def test_membership_features_stable_for_huge_logits():
    feats = membership_features(np.array([[1000.0, 0.0], [-1000.0, 1000.0]]), np.array([1, 1]))
    assert np.all(np.isfinite(feats))
    np.testing.assert_allclose(feats[:, 0], [1000.0, 0.0], atol=1e-12)


@settings(max_examples=30, deadline=None)
@given(
    hnp.arrays(np.float64, (5, 4), elements=st.floats(-50, 50)),
    hnp.arrays(np.int64, 5, elements=st.integers(0, 3)),
    st.floats(-100, 100),
)
def test_membership_features_loss_properties(logits, labels, shift):
    loss = membership_features(logits, labels)[:, 0]
    assert np.all(loss >= -1e-12)
    # Cross-entropy is invariant to adding a constant to every logit of a row.
    np.testing.assert_allclose(membership_features(logits + shift, labels)[:, 0], loss, atol=1e-9)
    # And it matches the textbook formula for moderate logits.
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(loss, -np.log(probs[np.arange(5), labels]), rtol=1e-7, atol=1e-9)


# ------------------------------------------------------------------ attacks


def overfitted_model_logits():
    """Logits of a deliberately overfitted model: unregularised multinomial logistic
    regression with more features (200) than training samples (200) and 20 %
    flipped labels. It fits its training set perfectly and generalises badly."""
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression

    x, y = make_classification(
        n_samples=400, n_features=200, n_informative=10, n_classes=4, flip_y=0.2, random_state=0
    )
    model = LogisticRegression(C=100.0, max_iter=5000).fit(x[:200], y[:200])
    assert model.score(x[:200], y[:200]) == 1.0 and model.score(x[200:], y[200:]) < 0.6
    return model.decision_function(x[:200]), y[:200], model.decision_function(x[200:]), y[200:]


def check_report_structure(report, attacks):
    assert list(report) == [*attacks, "loss_threshold"]
    for name, entry in report.items():
        assert METRICS <= set(entry), name
        for metric in METRICS:
            assert isinstance(entry[metric], float) and 0.0 <= entry[metric] <= 1.0, (name, metric)
        fpr, tpr = entry["roc"]["fpr"], entry["roc"]["tpr"]
        assert len(fpr) == len(tpr) >= 2
        assert fpr[0] == tpr[0] == 0.0 and fpr[-1] == tpr[-1] == 1.0
        assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)
        # Trapezoidal area under the returned points is the reported AUC.
        area = float(np.sum(np.diff(fpr) * (np.asarray(tpr[1:]) + np.asarray(tpr[:-1])) / 2))
        assert area == pytest.approx(entry["auc"], abs=1e-9)
    assert isinstance(report["loss_threshold"]["threshold"], float)
    json.dumps(report, allow_nan=False)  # plain, JSON-serialisable values


def test_attacks_detect_overfitted_model():
    report = membership_inference(*overfitted_model_logits(), seed=0)
    check_report_structure(report, ATTACKS)
    assert report["loss_threshold"]["auc"] >= 0.7
    assert report["loss_threshold"]["accuracy"] >= 0.7
    for name in ATTACKS:
        assert report[name]["auc"] >= 0.6, (name, report[name]["auc"])


def test_attacks_at_chance_on_identically_distributed_outputs():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(800, 10))
    labels = rng.integers(0, 10, size=800)
    report = membership_inference(logits[:400], labels[:400], logits[400:], labels[400:], seed=0)
    check_report_structure(report, ATTACKS)
    for name, entry in report.items():
        assert abs(entry["auc"] - 0.5) <= 0.12, (name, entry["auc"])
        assert abs(entry["accuracy"] - 0.5) <= 0.12, (name, entry["accuracy"])


def test_loss_threshold_separates_memorised_members():
    # Members have near-zero loss, non-members a large one: the threshold is in between.
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, size=60)
    logits = rng.normal(size=(60, 3))
    logits[np.arange(30), labels[:30]] += 30.0  # memorised members
    report = membership_inference(logits[:30], labels[:30], logits[30:], labels[30:], attacks=())
    entry = report["loss_threshold"]
    assert list(report) == ["loss_threshold"]
    assert entry["accuracy"] == entry["auc"] == entry["precision"] == entry["recall"] == 1.0
    member_loss = membership_features(logits[:30], labels[:30])[:, 0]
    assert member_loss.max() < entry["threshold"]


def test_balancing_and_determinism():
    rng = np.random.default_rng(2)
    m_logits, m_labels = rng.normal(size=(25, 4)), rng.integers(0, 4, size=25)
    n_logits, n_labels = rng.normal(size=(90, 4)), rng.integers(0, 4, size=90)
    a = membership_inference(m_logits, m_labels, n_logits, n_labels, attacks=("knn", "lr"), seed=5)
    b = membership_inference(m_logits, m_labels, n_logits, n_labels, attacks=("KNN", "lr"), seed=5)
    assert a == b
    check_report_structure(a, ("knn", "lr"))
    # 25 + 25 balanced samples, 30 % held out -> 15 attack-test samples in the ROC.
    assert len(a["loss_threshold"]["roc"]["fpr"]) <= 16


def test_smallest_allowed_input_runs_every_attack():
    n = 10  # the minimum per group: 14 attack-train samples, 3-fold search on ~9
    rng = np.random.default_rng(n)
    logits, labels = rng.normal(size=(2 * n, 3)), rng.integers(0, 3, size=2 * n)
    report = membership_inference(logits[:n], labels[:n], logits[n:], labels[n:])
    check_report_structure(report, ATTACKS)


# --------------------------------------------------------------- validation


def good_inputs(n: int = 20, c: int = 3):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, c)), rng.integers(0, c, size=n), rng.normal(size=(n, c)), rng.integers(0, c, size=n)


@pytest.mark.parametrize(
    "index, value, error, match",
    [
        (0, np.zeros(20), ValueError, "member_logits must be 2-D"),
        (2, np.zeros((20, 1)), ValueError, "C >= 2"),
        (2, np.zeros((20, 4)), ValueError, "same number of classes"),
        (0, np.full((20, 3), np.nan), ValueError, "finite"),
        (0, np.array([["a"] * 3] * 20), TypeError, "member_logits must be a real-valued"),
        (1, np.zeros(20, np.float32), TypeError, "member_labels must be an integer"),
        (1, np.zeros(19, np.int64), ValueError, r"member_labels must have shape \(20,\)"),
        (3, np.full(20, 3), ValueError, r"nonmember_labels must lie in 0\.\.2"),
        (3, np.full(20, -1), ValueError, "nonmember_labels must lie"),
    ],
)
def test_membership_inference_input_errors(index, value, error, match):
    args = list(good_inputs())
    args[index] = value
    with pytest.raises(error, match=match):
        membership_inference(*args, attacks=())


def test_membership_inference_too_few_samples():
    m, ml, n, nl = good_inputs()
    with pytest.raises(ValueError, match="at least 10 samples"):
        membership_inference(m[:5], ml[:5], n, nl, attacks=())


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"attacks": ("svm",)}, ValueError, "'lr', 'knn', 'mlp', 'rf'"),
        ({"attacks": "lr"}, TypeError, "attacks must be a list or tuple"),
        ({"attack_test_fraction": 1.0}, ValueError, "attack_test_fraction"),
        ({"attack_test_fraction": 0.01}, ValueError, "attack_test_fraction"),
        ({"seed": 1.5}, TypeError, "seed"),
        ({"seed": -1}, ValueError, "seed"),
    ],
)
def test_membership_inference_option_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        membership_inference(*good_inputs(), **{"attacks": (), **kwargs})


def test_membership_features_errors():
    with pytest.raises(ValueError, match="labels must have shape"):
        membership_features(np.zeros((3, 2)), np.zeros(2, np.int64))
    with pytest.raises(ValueError, match="logits must be 2-D"):
        membership_features(np.zeros((2, 2, 2)), np.zeros(2, np.int64))


# ---------------------------------------------------------------- doctests


def test_docstring_examples_run():
    result = doctest.testmod(privacy_mod, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
    for name in privacy_mod.__all__:
        if callable(getattr(privacy_mod, name)):
            assert ">>>" in (getattr(privacy_mod, name).__doc__ or ""), name
