"""Metrics of a membership-inference audit from pooled (target, example) attack scores.

``scores`` (any shape, higher = more likely member) and the boolean ``is_member`` of the
same shape are flattened into pairs. The decision rule is "member if score >= threshold",
swept over every distinct score (as :func:`sklearn.metrics.roc_curve` does).

* :func:`roc_summary` — AUC, attacker advantage ``max(TPR - FPR)`` and TPR at low FPRs
  (a dict, :class:`RocSummary`);
* :func:`bootstrap_intervals` — percentile bootstrap intervals of those numbers (a dict,
  :class:`BootstrapIntervals`);
* :func:`epsilon_lower_bound` — the empirical epsilon an attack proves, with
  Clopper-Pearson bounds.

**TPR at FPR f** is the largest TPR over the thresholds whose empirical FPR is ``<= f``
(the ROC point at or left of ``f``, no interpolation), so a threshold that lets one
non-member too many through is never used; with ``n`` non-members, an FPR target below
``1 / n`` therefore only admits thresholds with no false positive.

>>> import numpy as np
>>> s = roc_summary(np.array([0.1, 0.4, 0.35, 0.8]), np.array([False, False, True, True]), fpr_targets=(0.5,))
>>> s["auc"], s["advantage"], s["tpr_at_fpr"]
(0.75, 0.5, {0.5: 1.0})
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any, TypedDict

import numpy as np
from scipy.stats import beta

__all__ = [
    "BootstrapIntervals",
    "RocSummary",
    "bootstrap_intervals",
    "epsilon_lower_bound",
    "roc_summary",
]

# Resamples per vectorised chunk are chosen so that a chunk holds about this many weights.
_CHUNK_ELEMENTS = 4_000_000


class RocSummary(TypedDict):
    """What :func:`roc_summary` returns (a plain dict); ``tpr_at_fpr`` maps each FPR target to its TPR.

    >>> RocSummary(auc=0.5, advantage=0.0, tpr_at_fpr={0.01: 0.01})["tpr_at_fpr"][0.01]
    0.01
    """

    auc: float
    advantage: float
    tpr_at_fpr: dict[float, float]


class BootstrapIntervals(TypedDict):
    """What :func:`bootstrap_intervals` returns (a plain dict): ``(low, high)`` per metric.

    >>> ci = BootstrapIntervals(auc=(0.4, 0.6), advantage=(0.0, 0.2), tpr_at_fpr={0.01: (0.0, 0.05)},
    ...                         level=0.95, n_boot=10)
    >>> ci["auc"]
    (0.4, 0.6)
    """

    auc: tuple[float, float]
    advantage: tuple[float, float]
    tpr_at_fpr: dict[float, tuple[float, float]]
    level: float
    n_boot: int


# --------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------


def _check_pairs(scores: Any, is_member: Any) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores)
    if s.dtype.kind not in "fiu":
        raise TypeError(f"scores must be a real-valued (int or float) array, got dtype {s.dtype}")
    m = np.asarray(is_member)
    if m.dtype != np.bool_:
        raise ValueError(f"is_member must be a boolean array (True = member), got dtype {m.dtype}")
    if s.shape != m.shape:
        raise ValueError(f"is_member must have the shape of scores {s.shape}, got {m.shape}")
    s = s.astype(np.float64).ravel()
    m = m.ravel()
    if not np.all(np.isfinite(s)):
        raise ValueError("scores must be finite (no NaN or inf)")
    n_members = int(m.sum())
    if n_members < 1 or n_members == m.size:
        raise ValueError(
            f"is_member must hold at least one member and one non-member, got {n_members} members of {m.size}"
        )
    return s, m


def _check_open_unit(value: Any, arg: str) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real) or not 0.0 < value < 1.0:
        raise ValueError(f"{arg} must be a float in the open interval (0, 1), got {value!r}")
    return float(value)


def _check_count(value: Any, arg: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{arg} must be an int >= 1, got {value!r}")
    return int(value)


def _check_fpr_targets(fpr_targets: Any) -> tuple[float, ...]:
    if isinstance(fpr_targets, numbers.Real):
        fpr_targets = (fpr_targets,)
    if not isinstance(fpr_targets, (Sequence, np.ndarray)) or isinstance(fpr_targets, str):
        raise TypeError(f"fpr_targets must be a sequence of floats in (0, 1), got {fpr_targets!r}")
    return tuple(_check_open_unit(f, "fpr_targets") for f in fpr_targets)


# --------------------------------------------------------------------------
# ROC from weighted pairs (vectorised over bootstrap resamples)
# --------------------------------------------------------------------------


def _roc_counts(scores: np.ndarray, is_member: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs per class in decreasing score order, and the ROC points as pair counts.

    Returns ``(member_order, other_order, points)``: the indices of the members and of the
    non-members sorted by decreasing score, and ``points`` of shape ``(2, G + 1)``: how many
    members (row 0) and non-members (row 1) score ``>=`` each of the ``G`` distinct scores,
    after a first point ``(0, 0)`` for the threshold ``+inf``.
    """
    order = np.argsort(-scores, kind="stable")
    s, member = scores[order], is_member[order]
    ends = np.flatnonzero(np.append(s[1:] != s[:-1], True))  # last position of each tie group
    points = np.zeros((2, ends.size + 1), dtype=np.int64)
    points[0, 1:] = np.cumsum(member)[ends]
    points[1, 1:] = np.cumsum(~member)[ends]
    return order[member], order[~member], points


def _weighted_roc(
    member_weights: np.ndarray, other_weights: np.ndarray, points: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``(fpr, tpr)``, each ``(B, G + 1)``, for ``B`` weightings of the pairs in :func:`_roc_counts` order."""
    rates = []
    for weights, at in ((other_weights, points[1]), (member_weights, points[0])):
        cum = np.zeros((weights.shape[0], weights.shape[1] + 1))
        np.cumsum(weights, axis=1, out=cum[:, 1:])
        rates.append(cum[:, at] / cum[:, -1:])
    return rates[0], rates[1]


def _roc_metrics(fpr: np.ndarray, tpr: np.ndarray, fpr_targets: tuple[float, ...]) -> np.ndarray:
    """``(B, 2 + len(fpr_targets))``: AUC (trapezoid, ties count 1/2), advantage, TPR at each FPR."""
    auc = 0.5 * np.sum(np.diff(fpr, axis=1) * (tpr[:, 1:] + tpr[:, :-1]), axis=1)
    advantage = np.max(tpr - fpr, axis=1)
    at = [np.max(np.where(fpr <= f, tpr, 0.0), axis=1) for f in fpr_targets]
    return np.column_stack([auc, advantage, *at])


def _resample_counts(rng: np.random.Generator, n_resamples: int, size: int) -> np.ndarray:
    """``(n_resamples, size)`` multiplicities of ``size`` draws with replacement among ``size`` items."""
    draws = rng.integers(0, size, size=(n_resamples, size)) + size * np.arange(n_resamples)[:, None]
    return np.bincount(draws.ravel(), minlength=n_resamples * size).reshape(n_resamples, size)


# --------------------------------------------------------------------------
# Public metrics
# --------------------------------------------------------------------------


def roc_summary(scores: Any, is_member: Any, fpr_targets: Sequence[float] = (0.001, 0.01)) -> RocSummary:
    """AUC, advantage ``max(TPR - FPR)`` and TPR at each FPR target (see the module docstring).

    AUC is :func:`sklearn.metrics.roc_auc_score`; the ROC points are
    :func:`sklearn.metrics.roc_curve` with every threshold kept.

    >>> import numpy as np
    >>> roc_summary(np.array([3.0, 2.0, 1.0, 0.0]), np.array([True, True, False, False]))
    {'auc': 1.0, 'advantage': 1.0, 'tpr_at_fpr': {0.001: 1.0, 0.01: 1.0}}
    """
    from sklearn.metrics import roc_auc_score, roc_curve

    targets = _check_fpr_targets(fpr_targets)
    s, m = _check_pairs(scores, is_member)
    fpr, tpr, _ = roc_curve(m, s, drop_intermediate=False)
    return RocSummary(
        auc=float(roc_auc_score(m, s)),
        advantage=float(np.max(tpr - fpr)),
        tpr_at_fpr={f: float(np.max(tpr[fpr <= f])) for f in targets},
    )


def bootstrap_intervals(
    scores: Any,
    is_member: Any,
    fpr_targets: Sequence[float] = (0.001, 0.01),
    n_boot: int = 200,
    seed: int = 0,
    level: float = 0.95,
) -> BootstrapIntervals:
    """Percentile bootstrap intervals of the :func:`roc_summary` metrics.

    Each resample draws the (target, example) pairs with replacement, members and
    non-members separately (a stratified bootstrap: the counts stay fixed, so every
    resample has both classes); the interval is the ``(1 - level) / 2`` and
    ``(1 + level) / 2`` quantiles of the ``n_boot`` resampled metrics. Vectorised over
    resamples: one sort of the scores, then cumulative sums of resampling multiplicities.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> member = rng.random(2000) < 0.5
    >>> ci = bootstrap_intervals(rng.normal(size=2000) + member, member, (0.01,), n_boot=100)
    >>> bool(ci["auc"][0] < 0.76 < ci["auc"][1])
    True
    """
    targets = _check_fpr_targets(fpr_targets)
    s, m = _check_pairs(scores, is_member)
    n_boot = _check_count(n_boot, "n_boot")
    level = _check_open_unit(level, "level")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")
    rng = np.random.default_rng(seed)
    member_order, other_order, points = _roc_counts(s, m)
    chunk = max(1, _CHUNK_ELEMENTS // s.size)
    rows = []
    for start in range(0, n_boot, chunk):
        b = min(chunk, n_boot - start)
        weights_m = _resample_counts(rng, b, member_order.size)
        weights_o = _resample_counts(rng, b, other_order.size)
        rows.append(_roc_metrics(*_weighted_roc(weights_m, weights_o, points), targets))
    lo, hi = np.quantile(np.vstack(rows), [(1.0 - level) / 2.0, (1.0 + level) / 2.0], axis=0)
    pairs = [(float(a), float(b)) for a, b in zip(lo, hi)]
    return BootstrapIntervals(
        auc=pairs[0], advantage=pairs[1], tpr_at_fpr=dict(zip(targets, pairs[2:])), level=level, n_boot=n_boot
    )


def _clopper_pearson(k: int, n: int, alpha: float) -> tuple[float, float]:
    """One-sided Clopper-Pearson ``(lower, upper)`` bounds of a binomial rate, each at confidence ``1 - alpha``."""
    lower = 0.0 if k == 0 else float(beta.ppf(alpha, k, n - k + 1))
    upper = 1.0 if k == n else float(beta.ppf(1.0 - alpha, k + 1, n - k))
    return lower, upper


def _epsilon_from_counts(tp: int, n_pos: int, fp: int, n_neg: int, alpha: float, delta: float = 0.0) -> float:
    """``max(ln((TPR_lo - delta) / FPR_hi), ln((1 - delta - FPR_hi) / (1 - TPR_lo)), 0)``."""
    tpr_lo, _ = _clopper_pearson(tp, n_pos, alpha)
    _, fpr_hi = _clopper_pearson(fp, n_neg, alpha)
    bounds = [0.0]
    if tpr_lo - delta > 0.0:
        bounds.append(math.log((tpr_lo - delta) / fpr_hi))
    if 1.0 - delta - fpr_hi > 0.0:
        bounds.append(math.log((1.0 - delta - fpr_hi) / (1.0 - tpr_lo)))
    return max(bounds)


def epsilon_lower_bound(
    scores: Any, is_member: Any, fpr_target: float, alpha: float = 0.05, delta: float = 0.0
) -> float:
    """Empirical ε lower bound of the attack at its threshold of FPR ``<= fpr_target``.

    At the threshold defining TPR at ``fpr_target`` (module docstring), with ``tp`` of the
    members and ``fp`` of the non-members flagged, one-sided Clopper-Pearson bounds
    (:data:`scipy.stats.beta`), each at confidence ``1 - alpha``, give ``TPR_lo`` and
    ``FPR_hi``. An (ε, δ)-DP training algorithm satisfies both ``TPR <= e^ε FPR + δ`` and
    ``1 - FPR <= e^ε (1 - TPR) + δ``, so the returned value is the **maximum** of
    ``ln((TPR_lo - δ) / FPR_hi)`` and ``ln((1 - δ - FPR_hi) / (1 - TPR_lo))``, or 0 when
    neither is positive. Each confidence bound points the way that makes its ratio small
    (``(1 - FPR_lo) / (1 - TPR_hi)`` would be an optimistic value, not a lower bound). Both
    forms use the same ``TPR_lo`` and ``FPR_hi``, so their maximum holds with probability
    ``>= 1 - 2 alpha`` (union bound). ``delta`` (default 0) is the δ of the guarantee being
    tested. The threshold is picked on the same scores, as in most audits; for a strict
    bound pick it on held-out pairs.

    >>> import numpy as np
    >>> member = np.arange(2000) < 1000
    >>> round(epsilon_lower_bound(member.astype(float), member, 0.01), 2)
    5.81
    """
    target = _check_open_unit(fpr_target, "fpr_target")
    alpha = _check_open_unit(alpha, "alpha")
    if isinstance(delta, bool) or not isinstance(delta, numbers.Real) or not 0.0 <= delta < 1.0:
        raise ValueError(f"delta must be a float in [0, 1), got {delta!r}")
    s, m = _check_pairs(scores, is_member)
    _, _, (tp, fp) = _roc_counts(s, m)
    n_pos, n_neg = int(tp[-1]), int(fp[-1])
    best = int(np.flatnonzero(fp / n_neg <= target)[-1])  # TP and FP grow together: last = largest TPR
    return _epsilon_from_counts(int(tp[best]), n_pos, int(fp[best]), n_neg, alpha, float(delta))
