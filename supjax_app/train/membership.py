"""Membership inference against a trained model, on a held-out attack split.

Members are a seeded random subset of the training samples; non-members are as many test
samples, which the model never trained on. The attacks themselves (LR, KNN, MLP, RF with
3-fold grid search, and the loss-threshold attack) are :func:`supjax_app.attacks.classifiers.membership_inference`.

>>> m, n = attack_split(100, 40, size=30, seed=0)
>>> len(m), len(n), len(set(m.tolist())) == 30
(30, 30, True)
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from supjax_app.attacks.classifiers import membership_inference

__all__ = [
    "METRICS",
    "attack_split",
    "evaluate_membership",
]

#: The numbers kept per attack in a report (ROC points are kept apart).
METRICS = ("precision", "recall", "accuracy", "auc")

# A stream of its own, so the attack split never coincides with the data order.
_SPLIT_STREAM = 0x5EED


def attack_split(n_train: int, n_test: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of ``min(size, n_train, n_test)`` members (train) and non-members (test), sorted.

    >>> attack_split(5, 3, size=10, seed=1)[1].tolist()
    [0, 1, 2]
    """
    if size < 1:
        raise ValueError(f"--attack-size must be >= 1, got {size}")
    m = min(size, n_train, n_test)
    rng = np.random.default_rng([seed, _SPLIT_STREAM])
    members = np.sort(rng.choice(n_train, m, replace=False))
    nonmembers = np.sort(rng.choice(n_test, m, replace=False))
    return members, nonmembers


def evaluate_membership(
    predict: Callable[[Any, np.ndarray], np.ndarray],
    params: Any,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    members: np.ndarray,
    nonmembers: np.ndarray,
    attacks: Sequence[str],
    seed: int,
) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, list[float]]]]:
    """Attack the model ``predict(params, .)``; return ``(metrics, roc)`` per attack name.

    ``metrics[name]`` holds precision, recall, accuracy and ROC AUC (plus ``threshold`` for
    ``loss_threshold``); ``roc[name]`` holds the curve's ``fpr`` and ``tpr`` points.

    >>> rng = np.random.default_rng(0)
    >>> x, y = rng.normal(size=(80, 4)).astype(np.float32), rng.integers(0, 3, 80)
    >>> members, nonmembers = attack_split(40, 40, size=40, seed=0)
    >>> metrics, roc = evaluate_membership(lambda w, xs: xs @ w, np.ones((4, 3), np.float32), x[:40], y[:40],
    ...                                    x[40:], y[40:], members, nonmembers, attacks=("lr",), seed=0)
    >>> list(metrics), sorted(metrics["lr"]), sorted(roc["lr"])
    (['lr', 'loss_threshold'], ['accuracy', 'auc', 'precision', 'recall'], ['fpr', 'tpr'])
    """
    results = membership_inference(
        predict(params, x_train[members]),
        y_train[members],
        predict(params, x_test[nonmembers]),
        y_test[nonmembers],
        attacks=tuple(attacks),
        seed=seed,
    )
    metrics: dict[str, dict[str, float]] = {}
    roc: dict[str, dict[str, list[float]]] = {}
    for name, rep in results.items():
        metrics[name] = {k: float(rep[k]) for k in METRICS}
        if "threshold" in rep:
            metrics[name]["threshold"] = float(rep["threshold"])
        roc[name] = {"fpr": list(rep["roc"]["fpr"]), "tpr": list(rep["roc"]["tpr"])}
    return metrics, roc
