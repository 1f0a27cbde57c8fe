"""Membership-inference evaluation of any classifier from its logits (numpy in, numbers out).

Follows the recipe of MindArmour's ``MembershipInference`` (Shokri et al., 2017,
https://arxiv.org/abs/1610.05820): every sample is described by its
cross-entropy loss and its logits; members (training samples of the target
model) are labelled 1 and non-members 0; scikit-learn classifiers ("lr", "knn",
"mlp", "rf"), each tuned by a 3-fold grid search, learn to tell them apart.
Differences from MindArmour, on purpose:

* the metrics are measured on a held-out, stratified attack-test split rather
  than on the samples the attack was trained on, and ROC AUC is reported too;
* members and non-members are balanced to equal counts, so accuracy 0.5 is chance;
* "lr", "knn" and "mlp" standardise the features first (``StandardScaler``);
* the random forest grid avoids ``max_features="auto"``, which recent
  scikit-learn rejects, and uses ``GridSearchCV`` like the other attacks;
* the loss is computed with an exact log-softmax instead of clipped softmax
  probabilities, and precision is 0.0 (not -1) when nothing is predicted member;
* a simple "member if loss < t" attack is always reported as ``"loss_threshold"``.

>>> import numpy as np
>>> ATTACKS
('lr', 'knn', 'mlp', 'rf')
>>> membership_features(np.array([[2.0, 0.0]]), np.array([0])).round(3)
array([[0.127, 2.   , 0.   ]])
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy.special import log_softmax

from supjax_app._checks import check_fraction, check_seed

if TYPE_CHECKING:
    from sklearn.model_selection import GridSearchCV

__all__ = [
    "ATTACKS",
    "membership_features",
    "membership_inference",
]

#: Names of the learned attack models accepted by :func:`membership_inference`.
ATTACKS: tuple[str, ...] = ("lr", "knn", "mlp", "rf")

# Fewest samples per group (members, non-members) after balancing, so that the
# attack-train split still supports a stratified 3-fold grid search.
_MIN_PER_GROUP = 10
_CV_FOLDS = 3
_MIN_FOLD_FOR_EARLY_STOPPING = 50


# --------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------


def _check_logits(logits: Any, arg: str) -> np.ndarray:
    arr = np.asarray(logits)
    if arr.dtype.kind not in "fiu" or arr.dtype == np.bool_:
        raise TypeError(f"{arg} must be a real-valued array, got dtype {arr.dtype}")
    if arr.ndim != 2 or arr.shape[1] < 2:
        raise ValueError(f"{arg} must be 2-D of shape (N, C) with C >= 2 classes, got shape {arr.shape}")
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{arg} must be finite (no NaN or inf)")
    return arr


def _check_labels(labels: Any, arg: str, n: int, num_classes: int) -> np.ndarray:
    arr = np.asarray(labels)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{arg} must be an integer array, got dtype {arr.dtype}")
    if arr.shape != (n,):
        raise ValueError(f"{arg} must have shape ({n},) to match the logits, got {arr.shape}")
    if n and (arr.min() < 0 or arr.max() >= num_classes):
        raise ValueError(
            f"{arg} must lie in 0..{num_classes - 1} (the logits have {num_classes} classes), "
            f"got values in {arr.min()}..{arr.max()}"
        )
    return arr.astype(np.int64)


def _check_attacks(attacks: Any) -> tuple[str, ...]:
    if isinstance(attacks, str) or not isinstance(attacks, Sequence):
        raise TypeError(f"attacks must be a list or tuple of names from {ATTACKS}, got {attacks!r}")
    names = [a.lower() if isinstance(a, str) else a for a in attacks]
    bad = [a for a in names if a not in ATTACKS]
    if bad:
        raise ValueError(f"attacks must be names from {ATTACKS}, got unknown {bad!r}")
    return tuple(dict.fromkeys(names))


# --------------------------------------------------------------------------
# Features
# --------------------------------------------------------------------------


def _per_sample_loss(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Cross-entropy ``-log softmax(logits)[label]`` per row, numerically stable."""
    return -np.take_along_axis(log_softmax(logits, axis=1), labels[:, None], axis=1)[:, 0]


def membership_features(logits: Any, labels: Any) -> np.ndarray:
    """Attack features per sample: ``[cross-entropy loss, logits...]``, shape ``(N, 1 + C)``.

    The loss uses a stable log-softmax, so huge logits give exact finite losses.

    >>> import numpy as np
    >>> membership_features(np.array([[0.0, 0.0], [1000.0, 0.0]]), np.array([0, 1]))
    array([[6.93147181e-01, 0.00000000e+00, 0.00000000e+00],
           [1.00000000e+03, 1.00000000e+03, 0.00000000e+00]])
    """
    logits = _check_logits(logits, "logits")
    labels = _check_labels(labels, "labels", logits.shape[0], logits.shape[1])
    return np.hstack([_per_sample_loss(logits, labels)[:, None], logits])


# --------------------------------------------------------------------------
# Attack models
# --------------------------------------------------------------------------


def _make_search(name: str, n_train: int, seed: int) -> GridSearchCV:
    """A ``GridSearchCV`` (cv=3, n_jobs=1) over a small grid for attack ``name``."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    def scaled(model):
        return Pipeline([("scale", StandardScaler()), ("clf", model)])

    smallest_fold = n_train - -(-n_train // _CV_FOLDS)  # samples a CV fit sees
    if name == "lr":
        estimator, grid = scaled(LogisticRegression(max_iter=1000)), {"clf__C": [0.01, 0.1, 1.0, 10.0]}
    elif name == "knn":
        ks = [k for k in (3, 5, 7, 11) if k <= smallest_fold] or [1]
        estimator, grid = scaled(KNeighborsClassifier()), {"clf__n_neighbors": ks}
    elif name == "mlp":
        # Early stopping (10 % validation) keeps the search fast; tiny folds cannot spare it.
        early = smallest_fold >= _MIN_FOLD_FOR_EARLY_STOPPING
        estimator = scaled(MLPClassifier(max_iter=300, early_stopping=early, random_state=seed))
        grid = {"clf__hidden_layer_sizes": [(64,), (32, 32)], "clf__alpha": [1e-4, 1e-2]}
    elif name == "rf":
        estimator = RandomForestClassifier(n_estimators=50, random_state=seed)
        grid = {"max_depth": [5, None], "min_samples_leaf": [1, 4]}
    else:  # guarded by _check_attacks
        raise ValueError(f"attack must be one of {ATTACKS}, got {name!r}")
    return GridSearchCV(estimator, grid, cv=_CV_FOLDS, n_jobs=1)


def _fit_attack(name: str, x: np.ndarray, y: np.ndarray, seed: int) -> GridSearchCV:
    from sklearn.exceptions import ConvergenceWarning

    search = _make_search(name, len(y), seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=ConvergenceWarning)
        search.fit(x, y)
    return search


def _loss_threshold(loss: np.ndarray, is_member: np.ndarray) -> float:
    """Threshold ``t`` maximising the accuracy of "member if loss < t" on these samples."""
    u = np.unique(loss)
    candidates = np.concatenate([u[:1], (u[:-1] + u[1:]) / 2.0, [np.nextafter(u[-1], np.inf)]])
    members = np.sort(loss[is_member == 1])
    others = np.sort(loss[is_member == 0])
    hits = np.searchsorted(members, candidates, side="left")
    rejections = len(others) - np.searchsorted(others, candidates, side="left")
    return float(candidates[int(np.argmax(hits + rejections))])


def _report(y_true: np.ndarray, y_pred: np.ndarray, score: np.ndarray) -> dict[str, Any]:
    """Precision, recall, accuracy, ROC AUC and ROC curve points, as plain Python values."""
    from sklearn.metrics import accuracy_score, precision_score, recall_score, roc_auc_score, roc_curve

    fpr, tpr, _ = roc_curve(y_true, score)
    return {
        "precision": float(precision_score(y_true, y_pred, zero_division=0.0)),
        "recall": float(recall_score(y_true, y_pred, zero_division=0.0)),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "auc": float(roc_auc_score(y_true, score)),
        "roc": {"fpr": [float(v) for v in fpr], "tpr": [float(v) for v in tpr]},
    }


def _balanced_features(
    member_features: np.ndarray, nonmember_features: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Subsample the larger group so both have ``min(n_members, n_nonmembers)`` rows."""
    n = min(len(member_features), len(nonmember_features))
    take = [np.sort(rng.choice(len(f), n, replace=False)) for f in (member_features, nonmember_features)]
    x = np.vstack([member_features[take[0]], nonmember_features[take[1]]])
    y = np.concatenate([np.ones(n, np.int64), np.zeros(n, np.int64)])
    return x, y


def membership_inference(
    member_logits: Any,
    member_labels: Any,
    nonmember_logits: Any,
    nonmember_labels: Any,
    attacks: Sequence[str] = ATTACKS,
    seed: int = 0,
    attack_test_fraction: float = 0.3,
) -> dict[str, dict[str, Any]]:
    """Run membership-inference attacks on a model's logits and report how well they do.

    ``member_*`` are the target model's logits and true labels on its training
    samples, ``nonmember_*`` on samples it never saw. Both groups are balanced
    to equal size (seeded subsampling), featurised by :func:`membership_features`
    and split stratified into attack-train / attack-test (``attack_test_fraction``).
    Each attack in ``attacks`` (from :data:`ATTACKS`) is grid-searched (cv=3) on
    attack-train; ``"loss_threshold"`` (member if loss < t, t maximising accuracy
    on attack-train) is always added.

    Returns ``{attack: report}`` in the order of ``attacks``, then
    ``"loss_threshold"``. Each report holds plain floats measured on attack-test:
    ``precision``, ``recall``, ``accuracy`` (label 1 = member, via ``predict``),
    ``auc`` (ROC AUC of the member score), and ``roc = {"fpr": [...], "tpr": [...]}``
    (ROC curve points for plotting). The loss-threshold report also holds its
    ``threshold``. AUC near 0.5 means the attack cannot tell members apart.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> logits = rng.normal(size=(40, 3))
    >>> labels = rng.integers(0, 3, size=40)
    >>> rep = membership_inference(logits[:20], labels[:20], logits[20:], labels[20:], attacks=("lr",))
    >>> list(rep), sorted(rep["lr"])
    (['lr', 'loss_threshold'], ['accuracy', 'auc', 'precision', 'recall', 'roc'])
    """
    m_logits = _check_logits(member_logits, "member_logits")
    n_logits = _check_logits(nonmember_logits, "nonmember_logits")
    if m_logits.shape[1] != n_logits.shape[1]:
        raise ValueError(
            "member_logits and nonmember_logits must have the same number of classes, "
            f"got {m_logits.shape[1]} and {n_logits.shape[1]}"
        )
    m_labels = _check_labels(member_labels, "member_labels", *m_logits.shape)
    n_labels = _check_labels(nonmember_labels, "nonmember_labels", *n_logits.shape)
    names = _check_attacks(attacks)
    seed = check_seed(seed)
    test_fraction = check_fraction(attack_test_fraction, "attack_test_fraction")
    for arg, arr in (("member_logits", m_logits), ("nonmember_logits", n_logits)):
        if len(arr) < _MIN_PER_GROUP:
            raise ValueError(f"{arg} needs at least {_MIN_PER_GROUP} samples, got {len(arr)}")

    from sklearn.model_selection import train_test_split

    x, y = _balanced_features(
        membership_features(m_logits, m_labels),
        membership_features(n_logits, n_labels),
        np.random.default_rng(seed),
    )
    n_test = math.ceil(test_fraction * len(y))  # as train_test_split rounds it
    if min(n_test, len(y) - n_test) < 2 * _CV_FOLDS:
        raise ValueError(
            f"attack_test_fraction={test_fraction} splits {len(y)} balanced samples into "
            f"{len(y) - n_test} attack-train and {n_test} attack-test samples; each part needs at "
            f"least {2 * _CV_FOLDS}: use more samples or a fraction nearer 0.5"
        )
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=test_fraction, stratify=y, random_state=seed)

    results: dict[str, dict[str, Any]] = {}
    for name in names:
        model = _fit_attack(name, x_tr, y_tr, seed)
        member_col = list(model.classes_).index(1)
        results[name] = _report(y_te, model.predict(x_te), model.predict_proba(x_te)[:, member_col])

    threshold = _loss_threshold(x_tr[:, 0], y_tr)
    loss_te = x_te[:, 0]
    results["loss_threshold"] = {
        **_report(y_te, (loss_te < threshold).astype(np.int64), -loss_te),
        "threshold": threshold,
    }
    return results
