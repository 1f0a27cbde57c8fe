"""Shadow-model membership-inference attacks for a privacy audit (numpy in, scores out).

An audit trains ``N`` models on random halves of a pool of ``P`` examples
(``keep[m, i]`` is True when example ``i`` is in model ``m``'s training set, see
:func:`make_keep_matrix`) and records each model's :func:`true_class_margin` on every pool
example, an ``(N, P)`` array ``scores``. Every attack here returns an ``(N, P)`` float64
array of attack scores (higher = more likely a member), attacking each model in turn,
leave-one-out: model ``t`` is the target, the other ``N - 1`` are its shadows.

* :func:`lira_offline`, :func:`lira_online` — LiRA (Carlini et al., 2022,
  https://arxiv.org/abs/2112.03570): Gaussian fits of the shadows' margins per example;
* :func:`rmia_offline` — RMIA (Zarifzadeh et al., 2024, https://arxiv.org/abs/2312.03262),
  offline variant: likelihood ratios against the pool's other examples;
* :func:`loss_threshold` — the global baseline, negative cross-entropy.

The signals and the keep matrix (:func:`true_class_margin`, :func:`loss_threshold`,
:func:`make_keep_matrix`) live in :mod:`supjax_app.attacks.signals`; they are re-exported
here.

:func:`rmia_offline` and :func:`loss_threshold` take the logits and labels (they need the
probabilities), the LiRA attacks the margins.

**Balanced shadow sets.** Leaving the target out removes one shadow from the target's own
side only. With an estimated mean this biases the online score *against* members (the side
with fewer shadows has the noisier mean, so the target looks farther from it): at ``N = 8``
scores without any membership signal would give an AUC well below 0.5. So, for each
(target, example), one shadow of the *other* side is dropped as well: every example ``i``
keeps ``n_in[i] - 1`` IN and ``n_out[i] - 1`` OUT shadows whatever the target's membership
(``n_in``, ``n_out`` counted over all ``N`` models); the online attack further trims both
sides to ``min(n_in[i], n_out[i]) - 1`` so that they are equally noisy. The shadows kept on
a side are the first ones in the cyclic order ``t + 1, t + 2, ..., N - 1, 0, ..., t - 1``
(a choice that does not look at the scores). ``balance=False`` gives the plain leave-one-out
sets, to show the bias.

**Global statistics** of a side — the fixed-variance standard deviation (pooled within
examples, ddof 1 per example) and the side's mean used by the fallbacks — are computed per
target over all its shadows on that side, unbalanced: one number shared alike by the
target's members and non-members, so it needs no balancing.

**Fallbacks (never NaN).** Standard deviations are floored at ``1e-6``. A side of an
example with no shadow takes the other side's mean shifted by the average IN - OUT gap of
this target's shadows (or that side's global mean when neither side has a shadow). A
per-example variance needs 2 shadows on a side; with fewer, the side's global (pooled
within-example) standard deviation is used.

>>> import numpy as np
>>> keep = make_keep_matrix(4, 6, seed=0)
>>> keep.sum(axis=0).tolist()
[2, 2, 2, 2, 2, 2]
>>> scores = np.arange(24.0).reshape(4, 6) + 3.0 * keep
>>> lira_online(scores, keep).shape
(4, 6)
"""

from __future__ import annotations

import numbers
from typing import Any, NamedTuple

import numpy as np
from scipy.special import log_expit

from supjax_app.attacks.signals import _check_int, _check_real, loss_threshold, make_keep_matrix, true_class_margin

__all__ = [
    "PER_EXAMPLE_VARIANCE_MIN_MODELS",
    "lira_offline",
    "lira_online",
    "loss_threshold",
    "make_keep_matrix",
    "rmia_offline",
    "true_class_margin",
]

#: With ``fixed_variance=None`` the LiRA attacks fit a variance per example from this many
#: models on (``N >= 64``), and one global variance per side below.
PER_EXAMPLE_VARIANCE_MIN_MODELS = 64

# Smallest standard deviation of a Gaussian fit: keeps (x - mu) / sd finite when shadows tie.
_MIN_STD = 1e-6


# --------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------


def _check_scores_keep(scores: Any, keep: Any) -> tuple[np.ndarray, np.ndarray]:
    arr = _check_real(scores, "scores")
    if arr.ndim != 2 or arr.shape[0] < 2 or arr.shape[1] < 1:
        raise ValueError(
            f"scores must be 2-D of shape (N, P) with N >= 2 models and P >= 1 examples, got shape {arr.shape}"
        )
    k = np.asarray(keep)
    if k.dtype != np.bool_:
        raise ValueError(f"keep must be a boolean array (True = in the model's training set), got dtype {k.dtype}")
    if k.shape != arr.shape:
        raise ValueError(f"keep must have the shape of scores {arr.shape}, got {k.shape}")
    return arr, k


def _check_fixed_variance(fixed_variance: Any, n_models: int) -> bool:
    if fixed_variance is None:
        return n_models < PER_EXAMPLE_VARIANCE_MIN_MODELS
    if not isinstance(fixed_variance, (bool, np.bool_)):
        raise TypeError(f"fixed_variance must be True, False or None (automatic), got {fixed_variance!r}")
    return bool(fixed_variance)


# --------------------------------------------------------------------------
# Shadow sets
# --------------------------------------------------------------------------


class _Side(NamedTuple):
    """One side (IN or OUT) of every example, precomputed once per attack."""

    member: np.ndarray  # (N, P) bool: model m is on this side for example i
    rank: np.ndarray  # (N, P) int: how many of the side's models have a smaller index
    total: np.ndarray  # (P,) models on this side
    s1: np.ndarray  # (P,) sum of the side's centred scores
    s2: np.ndarray  # (P,) sum of their squares


class _Pool(NamedTuple):
    """The scores, centred per example (for exact sums of squares), and both sides."""

    values: np.ndarray  # (N, P) as given
    shift: np.ndarray  # (P,) mean over all models per example
    v: np.ndarray  # (N, P) values - shift
    v2: np.ndarray  # (N, P) v ** 2
    sides: tuple[_Side, _Side]  # (IN, OUT)


def _pool(values: np.ndarray, keep: np.ndarray) -> _Pool:
    shift = values.mean(axis=0)
    v = values - shift
    v2 = v * v

    def side(member: np.ndarray) -> _Side:
        cum = np.cumsum(member, axis=0, dtype=np.int32)
        return _Side(member, cum - member, cum[-1], _column_sums(v, member), _column_sums(v2, member))

    return _Pool(values, shift, v, v2, (side(keep), side(~keep)))


def _column_sums(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``(values * mask).sum(axis=0)`` without the temporary array."""
    return np.einsum("np,np->p", values, mask)


def _kept(side: _Side, target: int, k: np.ndarray) -> np.ndarray:
    """``(N, P)`` mask: per example, the side's first ``k[i]`` models in the cyclic order after ``target``.

    The order is ``target + 1, ..., N - 1, 0, ..., target``; the target comes last, and is
    never kept since ``k`` is below the side's size when the target is on it.
    """
    first = side.rank[target] + side.member[target]  # rank of the side's first model after target
    stop = first + k  # keep ranks first, ..., stop - 1, wrapping around past the last rank
    in_range = (side.rank >= first) & (side.rank < stop)
    return side.member & (in_range | (side.rank < stop - side.total))


# --------------------------------------------------------------------------
# Gaussian fits
# --------------------------------------------------------------------------


class _Fit(NamedTuple):
    """One side of one target, per example: shadows used, their mean, and the side's global numbers."""

    count: np.ndarray  # (P,) shadows used
    mean: np.ndarray  # (P,) their mean (raw scale; meaningless where count == 0)
    sq_dev: np.ndarray  # (P,) their sum of squared deviations
    pooled_std: float  # pooled within-example sd over all the target's shadows on this side
    total: int  # number of (shadow, example) entries on this side
    total_sum: float  # their sum (raw scale)


def _moments(count: np.ndarray, s1: np.ndarray, s2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centred mean (0 where count == 0) and sum of squared deviations from count, sum, sum of squares."""
    mean = s1 / np.maximum(count, 1)
    return mean, np.maximum(s2 - s1 * mean, 0.0)


def _pooled_std(pool: _Pool, side: _Side, target: int, stats: tuple[np.ndarray, np.ndarray]) -> float:
    """Pooled within-example sd (ddof 1 per example) of all the target's shadows on a side.

    Falls back to the sd of all those entries when no example has two, to 1.0 when fewer
    than two entries exist; floored at ``_MIN_STD``.
    """
    count, sq_dev = stats
    dof = np.maximum(count - 1, 0).sum()
    if dof > 0:
        var = sq_dev.sum() / dof
    elif count.sum() > 1:
        others = np.arange(pool.values.shape[0]) != target
        var = pool.values[side.member & others[:, None]].var(ddof=1)
    else:
        var = 1.0
    return max(float(np.sqrt(var)), _MIN_STD)


def _side_fit(pool: _Pool, side: _Side, target: int, k: np.ndarray | None) -> _Fit:
    """Fit one side for ``target``: its ``k`` balanced shadows per example (all of them when None)."""
    on = side.member[target]
    count_all = side.total - on
    s1_all = side.s1 - on * pool.v[target]
    mean_all, sq_dev_all = _moments(count_all, s1_all, side.s2 - on * pool.v2[target])
    if k is None:
        count, mean, sq_dev = count_all, mean_all, sq_dev_all
    else:
        kept = _kept(side, target, k)
        count = k
        mean, sq_dev = _moments(k, _column_sums(pool.v, kept), _column_sums(pool.v2, kept))
    return _Fit(
        count=count,
        mean=mean + pool.shift,
        sq_dev=sq_dev,
        pooled_std=_pooled_std(pool, side, target, (count_all, sq_dev_all)),
        total=int(count_all.sum()),
        total_sum=float((s1_all + count_all * pool.shift).sum()),
    )


def _std(fit: _Fit, fixed_variance: bool) -> np.ndarray:
    """Per example sd: the pooled one, or the example's own (ddof 1) where it has 2 shadows; floored."""
    if fixed_variance:
        return np.full(fit.mean.shape, fit.pooled_std)
    own = np.sqrt(fit.sq_dev / np.maximum(fit.count - 1, 1))
    return np.maximum(np.where(fit.count >= 2, own, fit.pooled_std), _MIN_STD)


def _means(fit_in: _Fit, fit_out: _Fit) -> tuple[np.ndarray, np.ndarray]:
    """IN and OUT means per example, filling a side without shadows (see the module docstring)."""
    g_in = fit_in.total_sum / fit_in.total if fit_in.total else fit_out.total_sum / fit_out.total
    g_out = fit_out.total_sum / fit_out.total if fit_out.total else g_in
    fill_in = np.where(fit_out.count > 0, fit_out.mean + (g_in - g_out), g_in)
    fill_out = np.where(fit_in.count > 0, fit_in.mean - (g_in - g_out), g_out)
    return np.where(fit_in.count > 0, fit_in.mean, fill_in), np.where(fit_out.count > 0, fit_out.mean, fill_out)


def _gaussian_fits(
    pool: _Pool, target: int, per_side: tuple[np.ndarray, np.ndarray] | None, fixed_variance: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(mu_in, std_in, mu_out, std_out)`` per example for ``target``."""
    k_in, k_out = per_side if per_side is not None else (None, None)
    fit_in = _side_fit(pool, pool.sides[0], target, k_in)
    fit_out = _side_fit(pool, pool.sides[1], target, k_out)
    mu_in, mu_out = _means(fit_in, fit_out)
    return mu_in, _std(fit_in, fixed_variance), mu_out, _std(fit_out, fixed_variance)


def _per_side_counts(keep: np.ndarray, equal: bool) -> tuple[np.ndarray, np.ndarray]:
    """Shadows kept per example on each side: ``n - 1`` each, or ``min(n_in, n_out) - 1`` both."""
    n_in = keep.sum(axis=0, dtype=np.int32)
    n_out = keep.shape[0] - n_in
    if equal:
        both = np.maximum(np.minimum(n_in, n_out) - 1, 0)
        return both, both
    return np.maximum(n_in - 1, 0), np.maximum(n_out - 1, 0)


def _gaussian_logpdf(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    return -0.5 * ((x - mean) / std) ** 2 - np.log(std) - 0.5 * np.log(2.0 * np.pi)


# --------------------------------------------------------------------------
# Attacks
# --------------------------------------------------------------------------


def _prepare(scores: Any, keep: Any, fixed_variance: Any, balance: bool, equal: bool):
    """Checked scores, the per-side pools, the balanced shadow counts and the variance mode."""
    values, keep = _check_scores_keep(scores, keep)
    fixed = _check_fixed_variance(fixed_variance, values.shape[0])
    per_side = _per_side_counts(keep, equal=equal) if balance else None
    return values, _pool(values, keep), per_side, fixed


def lira_offline(scores: Any, keep: Any, *, fixed_variance: bool | None = True, balance: bool = True) -> np.ndarray:
    """Offline LiRA, leave-one-out: ``(N, P)`` z-statistics ``(x - mu_out) / sd_out``.

    For target ``t`` and example ``i``, ``x = scores[t, i]`` is compared with a Gaussian
    fitted to the OUT shadows' scores of example ``i`` (mean; standard deviation pooled over
    the examples when ``fixed_variance``, per example otherwise, ``None`` = per example from
    ``N >= 64`` models on). The one-sided test's confidence is ``Phi(z)``; the score is ``z``
    itself, a strictly increasing function of it that does not saturate at 1. Each example
    keeps ``n_out - 1`` OUT shadows whether or not it is a member of the target (see the
    module docstring for the balancing and the fallbacks).

    >>> import numpy as np
    >>> keep = make_keep_matrix(8, 500, seed=0)
    >>> rng = np.random.default_rng(0)
    >>> scores = 3.0 * rng.normal(size=500) + rng.normal(size=(8, 500)) + 2.0 * keep
    >>> z = lira_offline(scores, keep)
    >>> round(float(z[keep].mean()), 1), round(float(z[~keep].mean()), 1)
    (2.0, 0.0)
    """
    values, pool, per_side, fixed = _prepare(scores, keep, fixed_variance, balance, equal=False)
    out = np.empty_like(values)
    for t in range(values.shape[0]):
        _, _, mu_out, std_out = _gaussian_fits(pool, t, per_side, fixed)
        out[t] = (values[t] - mu_out) / std_out
    return out


def lira_online(scores: Any, keep: Any, *, fixed_variance: bool | None = None, balance: bool = True) -> np.ndarray:
    """Online LiRA, leave-one-out: ``(N, P)`` Gaussian log-likelihood ratios IN vs OUT.

    ``log N(x; mu_in, sd_in) - log N(x; mu_out, sd_out)`` with the means fitted per example
    to its IN and OUT shadows and the standard deviations pooled over the examples per side
    (``fixed_variance=True``) or fitted per example (``False``); ``None`` picks per example
    from ``N >= 64`` models on (:data:`PER_EXAMPLE_VARIANCE_MIN_MODELS`). Both sides keep
    ``min(n_in, n_out) - 1`` shadows per example (see the module docstring).

    >>> import numpy as np
    >>> keep = make_keep_matrix(8, 500, seed=0)
    >>> rng = np.random.default_rng(0)
    >>> scores = 3.0 * rng.normal(size=500) + rng.normal(size=(8, 500)) + 2.0 * keep
    >>> llr = lira_online(scores, keep)
    >>> round(float(llr[keep].mean()), 1), round(float(llr[~keep].mean()), 1)
    (1.9, -1.9)
    """
    values, pool, per_side, fixed = _prepare(scores, keep, fixed_variance, balance, equal=True)
    out = np.empty_like(values)
    for t in range(values.shape[0]):
        mu_in, std_in, mu_out, std_out = _gaussian_fits(pool, t, per_side, fixed)
        x = values[t]
        out[t] = _gaussian_logpdf(x, mu_in, std_in) - _gaussian_logpdf(x, mu_out, std_out)
    return out


def rmia_offline(
    logits: Any,
    labels: Any,
    keep: Any,
    *,
    a: float = 0.3,
    gamma: float = 1.0,
    population: int | None = None,
    seed: int = 0,
    balance: bool = True,
) -> np.ndarray:
    """Offline RMIA, leave-one-out: ``(N, P)`` fractions in ``[0, 1]`` of a population beaten.

    ``logits`` ``(N, P, C)`` and ``labels`` ``(P,)`` are as in :func:`true_class_margin`;
    ``p`` is the true-class probability (``sigmoid`` of the margin, in log space), and
    example ``x``'s ratio for target ``t`` is
    ``p_t(x) / Pr(x)``, where ``Pr(x) = ((1 + a) * mean_OUT p(x) + (1 - a)) / 2`` approximates
    the average over IN and OUT models from the OUT shadows alone (``a`` in ``[0, 1]``,
    0.3 by default as in the paper's reference code; tune it as the paper does). The score
    is the fraction of population examples ``z != x`` with ``ratio(x) / ratio(z) > gamma``.
    The population is the pool's other examples (all of them, or a seeded sample of
    ``population`` of them, the same for every target); its ratios use the same target and
    the same balanced OUT shadows (``n_out - 1`` per example; without any, the target's
    average OUT probability).

    >>> import numpy as np
    >>> keep = make_keep_matrix(4, 50, seed=0)
    >>> logits = np.stack([np.zeros((4, 50)) + 2.0 * keep, np.zeros((4, 50))], axis=-1)
    >>> s = rmia_offline(logits, np.zeros(50, int), keep)
    >>> bool(s[keep].min() > s[~keep].max())
    True
    """
    if np.ndim(logits) != 3:
        raise ValueError(
            f"logits must have shape (N, P, C): N models, P examples, C classes, got shape {np.shape(logits)}"
        )
    values, keep = _check_scores_keep(true_class_margin(logits, labels), keep)
    if isinstance(a, bool) or not isinstance(a, numbers.Real) or not 0.0 <= a <= 1.0:
        raise ValueError(f"a must be a float in [0, 1], got {a!r}")
    if isinstance(gamma, bool) or not isinstance(gamma, numbers.Real) or not 0.0 < gamma < np.inf:
        raise ValueError(f"gamma must be a finite float > 0, got {gamma!r}")
    seed = _check_int(seed, "seed", 0)
    n_models, pool_size = values.shape
    if population is None:
        ref = np.arange(pool_size)
    else:
        size = _check_int(population, "population", 1)
        if size > pool_size:
            raise ValueError(f"population must be an int in 1..{pool_size} (the pool size), got {size}")
        ref = np.sort(np.random.default_rng(seed).choice(pool_size, size, replace=False))
    in_ref = np.zeros(pool_size, dtype=bool)
    in_ref[ref] = True
    prob = _pool(np.exp(log_expit(values)), keep)
    k_out = _per_side_counts(keep, equal=False)[1] if balance else None
    log_gamma = float(np.log(gamma))
    out = np.empty_like(values)
    for t in range(n_models):
        fit = _side_fit(prob, prob.sides[1], t, k_out)
        fallback = fit.total_sum / fit.total if fit.total else float(np.delete(prob.values, t, axis=0).mean())
        mean_out = np.where(fit.count > 0, fit.mean, fallback)
        log_ratio = log_expit(values[t]) - np.log(0.5 * ((1.0 + a) * mean_out + (1.0 - a)))
        beaten = np.searchsorted(np.sort(log_ratio[ref]), log_ratio - log_gamma, side="left")
        self_counted = in_ref & (log_gamma < 0.0)  # x beats itself only when gamma < 1
        out[t] = (beaten - self_counted) / np.maximum(len(ref) - in_ref, 1)
    return out
