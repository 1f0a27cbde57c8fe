"""Audit any model: train every arm's models on the keep matrix, score membership, summarise.

The API under ``supjax audit``: give it ``init(seed) -> params``, ``apply(params, x) -> logits``,
one :class:`~supjax_app.audit.training.Arm` per defence (your own optax chain, with or without
``supjax.suppress``) and the data; it trains N models per arm (model ``m`` of every arm has
the same initialisation, training set and batch order), attacks each model in turn with the
other N-1 as shadows, and returns every score and metric.

>>> import numpy as np, optax
>>> rng = np.random.default_rng(0)
>>> x = rng.normal(size=(40, 2, 2, 1)).astype(np.float32); y = (x[:, 0, 0, 0] > 0).astype(np.int32)
>>> apply = lambda p, xb: xb.reshape(len(xb), -1) @ p
>>> result = audit(lambda seed: np.zeros((4, 2), np.float32), apply, [Arm("dense", lambda: optax.sgd(0.1))],
...                x, y, make_keep_matrix(4, 40, seed=0), epochs=2, batch_size=4,
...                x_test=x, y_test=y, attacks=("loss",), bootstrap=20)
>>> sorted(result.metrics["dense"]["loss"]["all"])[:3]
['advantage', 'advantage_ci', 'auc']
"""

from __future__ import annotations

import time
from typing import Any, Callable, NamedTuple, Sequence

import jax
import numpy as np

from supjax_app.attacks.lira import lira_offline, lira_online, loss_threshold, make_keep_matrix, rmia_offline, true_class_margin
from supjax_app.attacks.metrics import bootstrap_intervals, epsilon_lower_bound, roc_summary
from supjax_app.audit.training import ApplyFn, Arm, batch_order, steps_per_epoch, train_arm
from supjax_app.train.loop import make_predict

__all__ = [
    "ArmOutcome",
    "AuditResult",
    "attack_scores",
    "audit",
    "evaluate_models",
    "make_keep_matrix",
    "summarise_scores",
]


class ArmOutcome(NamedTuple):
    """One arm's trained models and what they do on the pool and the test split.

    ``pool_logits`` is ``(N, P, C)``; accuracies and ``zeros`` (fraction of exactly-zero
    weights among leaves of rank >= 2) are per model; ``seconds`` is the arm's training time.

    >>> ArmOutcome._fields[:3]
    ('name', 'params', 'pool_logits')
    """

    name: str
    params: list
    pool_logits: np.ndarray
    test_accuracy: np.ndarray
    train_accuracy: np.ndarray
    zeros: np.ndarray
    seconds: float
    settings: dict


class AuditResult(NamedTuple):
    """Everything an audit measured: outcomes, raw scores ``scores[arm][attack]`` ``(N, P)``, metrics.

    >>> AuditResult._fields
    ('outcomes', 'scores', 'metrics', 'keep', 'canary')
    """

    outcomes: dict[str, ArmOutcome]
    scores: dict[str, dict[str, np.ndarray]]
    metrics: dict[str, dict[str, dict[str, Any]]]
    keep: np.ndarray
    canary: np.ndarray


def _zero_fraction(params: Any) -> float:
    weights = [np.asarray(leaf) for leaf in jax.tree_util.tree_leaves(params) if np.ndim(leaf) >= 2]
    return float(sum((w == 0).sum() for w in weights) / max(1, sum(w.size for w in weights)))


def evaluate_models(apply: ApplyFn, arm: Arm, params: list, x_pool: np.ndarray, y_pool: np.ndarray,
                    keep: np.ndarray, x_test: np.ndarray, y_test: np.ndarray, seconds: float) -> ArmOutcome:
    """Logits on the pool, test and train accuracy, zero fraction of each trained model.

    >>> import optax
    >>> x, y = np.eye(2, dtype=np.float32), np.array([0, 1])
    >>> out = evaluate_models(lambda p, xb: xb @ p, Arm("a", lambda: optax.sgd(1.0)), [np.eye(2, dtype=np.float32)],
    ...                       x, y, np.array([[True, False]]), x, y, 0.0)
    >>> out.pool_logits.shape, out.test_accuracy.tolist(), out.train_accuracy.tolist(), out.zeros.tolist()
    ((1, 2, 2), [1.0], [1.0], [0.5])
    """
    predict = make_predict(lambda p, x, _rng: apply(p, x))
    pool_logits = np.stack([predict(p, x_pool) for p in params]).astype(np.float32)
    correct = pool_logits.argmax(-1) == np.asarray(y_pool)[None]
    train_acc = (correct & keep).sum(1) / keep.sum(1)
    test_acc = np.array([np.mean(predict(p, x_test).argmax(-1) == y_test) for p in params])
    zeros = np.array([_zero_fraction(p) for p in params])
    return ArmOutcome(arm.name, params, pool_logits, test_acc, train_acc, zeros, seconds, dict(arm.settings))


def attack_scores(pool_logits: np.ndarray, labels: np.ndarray, keep: np.ndarray,
                  attacks: Sequence[str]) -> dict[str, np.ndarray]:
    """Leave-one-out membership scores ``(N, P)`` of each attack (higher = more likely member).

    ``"loss"``: global loss threshold (negative cross-entropy); ``"lira_offline"``/``"lira_online"``:
    LiRA on the float64 logit-scaled confidence; ``"rmia"``: RMIA offline.

    >>> logits = np.zeros((4, 6, 3)); keep = make_keep_matrix(4, 6, seed=0)
    >>> sorted(attack_scores(logits, np.zeros(6, int), keep, ("loss", "lira_online")))
    ['lira_online', 'loss']
    """
    out: dict[str, np.ndarray] = {}
    margins = None
    for name in attacks:
        if name == "loss":
            out[name] = loss_threshold(pool_logits, labels)
            continue
        if margins is None:
            margins = true_class_margin(pool_logits, labels)
        if name == "lira_offline":
            out[name] = lira_offline(margins, keep)
        elif name == "lira_online":
            out[name] = lira_online(margins, keep)
        elif name == "rmia":
            out[name] = rmia_offline(pool_logits, labels, keep)
        else:
            raise ValueError(f"attacks must name loss, lira_offline, lira_online or rmia, got {name!r}")
    return out


def _metrics(scores: np.ndarray, member: np.ndarray, fpr_targets: Sequence[float], bootstrap: int,
             seed: int) -> dict[str, Any]:
    summary = roc_summary(scores, member, fpr_targets)
    ci = bootstrap_intervals(scores, member, fpr_targets, n_boot=bootstrap, seed=seed)
    eps_fpr = max(f for f in fpr_targets if f <= 0.01) if min(fpr_targets) <= 0.01 else min(fpr_targets)
    out: dict[str, Any] = {
        "auc": float(summary["auc"]), "auc_ci": list(map(float, ci["auc"])),
        "advantage": float(summary["advantage"]), "advantage_ci": list(map(float, ci["advantage"])),
        "epsilon_lower_bound": float(epsilon_lower_bound(scores, member, eps_fpr)),
        "epsilon_lower_bound_fpr": eps_fpr,
        "pairs": int(member.size), "members": int(member.sum()),
    }
    for f in fpr_targets:
        out[f"tpr@{f:g}"] = float(summary["tpr_at_fpr"][f])
        out[f"tpr@{f:g}_ci"] = list(map(float, ci["tpr_at_fpr"][f]))
    return out


def summarise_scores(scores: np.ndarray, keep: np.ndarray, canary: np.ndarray, fpr_targets: Sequence[float],
                     bootstrap: int = 200, seed: int = 0) -> dict[str, dict[str, Any]]:
    """Metrics of one attack's ``(N, P)`` scores pooled over targets: ``all`` pairs and ``canaries`` only.

    >>> rng = np.random.default_rng(0); keep = make_keep_matrix(8, 500, seed=0)
    >>> m = summarise_scores(rng.normal(size=(8, 500)), keep, np.zeros(500, bool), (0.01,), bootstrap=20)
    >>> abs(m["all"]["auc"] - 0.5) < 0.05, m["canaries"] is None
    (True, True)
    """
    keep = np.asarray(keep, bool)
    out: dict[str, Any] = {"all": _metrics(scores.ravel(), keep.ravel(), fpr_targets, bootstrap, seed)}
    cols = np.asarray(canary, bool)
    both = cols.any() and keep[:, cols].any() and (~keep[:, cols]).any()
    out["canaries"] = (_metrics(scores[:, cols].ravel(), keep[:, cols].ravel(), fpr_targets, bootstrap, seed)
                       if both else None)
    return out


def audit(
    init: Callable[[int], Any],
    apply: ApplyFn,
    arms: Sequence[Arm],
    x_pool: np.ndarray,
    y_pool: np.ndarray,
    keep: np.ndarray,
    *,
    epochs: int,
    batch_size: int,
    x_test: np.ndarray,
    y_test: np.ndarray,
    canary: np.ndarray | None = None,
    attacks: Sequence[str] = ("loss", "lira_offline", "lira_online"),
    fpr_targets: Sequence[float] = (0.001, 0.01),
    bootstrap: int = 200,
    seed: int = 0,
    strategy: str = "sequential",
    sharding: Any = "auto",
    progress: Callable[[str, int, int], None] | None = None,
) -> AuditResult:
    """Train ``len(keep)`` models per arm, attack each leave-one-out, and summarise.

    Model ``m`` starts from ``init(seed * 100_003 + m)`` and visits its IN examples
    (``keep[m]``) in the order :func:`~supjax_app.audit.training.batch_order` gives for seed
    ``seed * 100_003 + m``, in every arm. ``progress(arm, done, total)`` reports steps.
    With ``strategy="vmap"`` the models are spread over all devices (``sharding="auto"``,
    a ``models`` mesh axis) when their number divides the models; pass a sharding or None.
    """
    keep = np.asarray(keep, bool)
    n_models = len(keep)
    if n_models < 2:
        raise ValueError(f"keep must have at least 2 rows (models), got {n_models}")
    if keep.shape[1] != len(x_pool) or len(y_pool) != len(x_pool):
        raise ValueError(f"keep must be (models, {len(x_pool)}) and y_pool of length {len(x_pool)}; "
                         f"got {keep.shape} and {len(y_pool)}")
    canary = np.zeros(len(x_pool), bool) if canary is None else np.asarray(canary, bool)
    per_epoch = steps_per_epoch(keep, batch_size)
    seeds = [seed * 100_003 + m for m in range(n_models)]
    orders = np.stack([batch_order(keep[m], epochs, batch_size, s, per_epoch) for m, s in enumerate(seeds)])
    inits = [init(s) for s in seeds]
    outcomes, scores, metrics = {}, {}, {}
    for arm in arms:
        total, done = n_models * orders.shape[1], [0]

        def tick(n: int, name: str = arm.name, total: int = total) -> None:
            done[0] += n
            if progress is not None:
                progress(name, done[0], total)

        start = time.perf_counter()
        params = train_arm(apply, arm, inits, x_pool, y_pool, orders, strategy=strategy, sharding=sharding,
                           on_step=tick)
        outcome = evaluate_models(apply, arm, params, x_pool, y_pool, keep, x_test, y_test,
                                  time.perf_counter() - start)
        outcomes[arm.name] = outcome
        scores[arm.name] = attack_scores(outcome.pool_logits, y_pool, keep, attacks)
        metrics[arm.name] = {name: summarise_scores(s, keep, canary, fpr_targets, bootstrap, seed)
                             for name, s in scores[arm.name].items()}
    return AuditResult(outcomes, scores, metrics, keep, canary)
