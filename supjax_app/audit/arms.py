"""The CLI's arms on LeNet5 and how their hyperparameters are chosen on the validation split.

Arms (``supjax audit --arms``):

* ``dense``: ``optax.sgd(lr)``;
* ``suppressed``: ``chain(sgd(lr), supjax.suppress(tutorial rules, schedule))``, the schedule
  scaled to the epochs as in ``supjax train`` (from 30 % of training, an operation about every
  15 steps), one arm per ``--sparse-end`` value;
* ``pruned``: the same schedule with lower clipping, upper clipping and noise off (plain
  magnitude suppression), so the report tells what clipping and noise add;
* ``dpsgd``: ``chain(differentially_private_aggregate(clip, sigma), sgd(lr))`` on per-example
  gradients (optax's DP-SGD), sigma chosen so that its validation accuracy is within one point
  of the suppressed arm's;
* ``dpsgd_suppressed``: ``chain(<DP-SGD>, supjax.suppress(...))``. Suppression reads only the
  privatised, aggregated update, the released parameters and its own state — never the data —
  so it is post-processing of the DP-SGD mechanism and the DP-SGD ε still holds.

Learning rates come from fixed grids, chosen by validation accuracy (never by the attack's
numbers); every choice is recorded in the report.

>>> [a for a in ARM_KINDS]
['dense', 'suppressed', 'pruned', 'dpsgd', 'dpsgd_suppressed']
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import optax

import supjax
from supjax_app.audit.training import Arm, batch_order, steps_per_epoch, train_arm
from supjax_app.models import lenet5_rules
from supjax_app.train.config import TrainConfig
from supjax_app.train.loop import make_predict

__all__ = [
    "ARM_KINDS",
    "DP_LR_GRID",
    "LR_GRID",
    "NOISE_GRID",
    "QUICK_GRIDS",
    "arm_name",
    "make_arm",
    "pruned_rules",
    "suppress_schedule",
    "validation_accuracy",
]

ARM_KINDS = ("dense", "suppressed", "pruned", "dpsgd", "dpsgd_suppressed")
#: SGD learning rates tried for the non-private arms (``--quick``: the second and last).
LR_GRID = (0.05, 0.1, 0.2, 0.4)
#: SGD learning rates tried for DP-SGD (on the clipped, averaged gradient; larger is usual).
DP_LR_GRID = (0.1, 0.2, 0.4, 0.8)
#: DP-SGD noise multipliers tried, from the most private down (``--quick``: 1.0 and 0.3).
NOISE_GRID = (0.1, 0.2, 0.3, 0.5, 0.7, 1.0, 1.4, 2.0)
#: The grids of ``--quick`` (a smoke run).
QUICK_GRIDS = {"lr": (0.1, 0.4), "dp_lr": (0.2,), "noise": (0.3, 1.0)}


def arm_name(kind: str, sparse_end: float | None = None, noise: float | None = None) -> str:
    """Report name of an arm: ``suppressed@0.95``, ``dpsgd@sigma=1.4`` or just ``kind``.

    >>> arm_name("suppressed", 0.95), arm_name("dense"), arm_name("dpsgd", noise=1.4)
    ('suppressed@0.95', 'dense', 'dpsgd@sigma=1.4')
    """
    if sparse_end is not None and kind in ("suppressed", "pruned"):
        return f"{kind}@{sparse_end:g}"
    if noise is not None:
        return f"{kind}@sigma={noise:g}"
    return kind


def suppress_schedule(epochs: int, per_epoch: int, sparse_end: float) -> supjax.SuppressSchedule:
    """The ``supjax train`` schedule for ``epochs`` of ``per_epoch`` steps (one rule, in TrainConfig).

    >>> s = suppress_schedule(60, 15, 0.95)
    >>> s.start_step, s.end_step, s.sparse_end
    (256, 900, 0.95)
    """
    return TrainConfig(epochs=epochs, sparse_end=sparse_end).schedule(per_epoch)


def pruned_rules() -> tuple[supjax.LayerRule, ...]:
    """The tutorial's rules with lower clipping, upper clipping (bound 1e30) and noise off.

    >>> [(r.is_lower_clip, r.is_add_noise, r.upper_bound) for r in pruned_rules()][0]
    (False, False, 1e+30)
    """
    return tuple(supjax.LayerRule(r.pattern, is_add_noise=False, is_lower_clip=False, min_num=r.min_num,
                                  upper_bound=1e30) for r in lenet5_rules())


def make_arm(kind: str, lr: float, *, schedule: supjax.SuppressSchedule | None = None,
             noise: float | None = None, clip: float = 1.0, seed: int = 0, name: str | None = None) -> Arm:
    """The :class:`~supjax_app.audit.training.Arm` of ``kind`` (see the module docstring).

    >>> make_arm("dpsgd", 0.5, noise=1.0).per_example, make_arm("dense", 0.1).settings
    (True, {'lr': 0.1})
    """
    if kind not in ARM_KINDS:
        raise ValueError(f"kind must be one of {ARM_KINDS}, got {kind!r}")
    private = kind.startswith("dpsgd")
    if private and (noise is None or noise < 0):
        raise ValueError(f"noise must be a number >= 0 for {kind}, got {noise!r}")
    suppressed = kind in ("suppressed", "pruned", "dpsgd_suppressed")
    if suppressed and schedule is None:
        raise ValueError(f"schedule is required for {kind}")
    rules = pruned_rules() if kind == "pruned" else lenet5_rules()

    def make_tx() -> optax.GradientTransformation:
        parts = []
        if private:
            parts.append(optax.contrib.differentially_private_aggregate(clip, noise, key=seed))
        parts.append(optax.sgd(lr))
        if suppressed:
            parts.append(supjax.suppress(rules, schedule, seed=seed))
        return optax.chain(*parts)

    settings: dict[str, Any] = {"lr": lr}
    if private:
        settings.update(noise_multiplier=noise, clip=clip)
    if suppressed:
        settings.update(sparse_end=schedule.sparse_end, start_step=schedule.start_step,
                        end_step=schedule.end_step, mask_times=schedule.mask_times)
    return Arm(name or kind, make_tx, per_example=private, settings=settings)


def validation_accuracy(
    apply: Callable, arm: Arm, init: Callable[[int], Any], x_pool: np.ndarray, y_pool: np.ndarray,
    x_val: np.ndarray, y_val: np.ndarray, *, epochs: int, batch_size: int, seeds: Sequence[int],
    strategy: str = "sequential", predict: Callable[[Any, np.ndarray], np.ndarray] | None = None,
) -> float:
    """Mean validation accuracy of models trained like the audit's on random halves of the pool.

    Tuning models use their own seeds and halves; nothing here sees the attack's scores.
    ``predict(params, x) -> logits`` (default: from ``apply``, made once per call; pass one
    made by :func:`~supjax_app.train.loop.make_predict` to compile it only once).
    """
    rows = np.stack([np.random.default_rng([s, 11]).permutation(len(x_pool)) < len(x_pool) // 2 for s in seeds])
    per_epoch = steps_per_epoch(rows, batch_size)
    orders = np.stack([batch_order(r, epochs, batch_size, s, per_epoch) for r, s in zip(rows, seeds)])
    params = train_arm(apply, arm, [init(1_000_000 + s) for s in seeds], x_pool, y_pool, orders, strategy=strategy)
    predict = predict or make_predict(lambda p, x, _rng: apply(p, x))
    return float(np.mean([np.mean(predict(p, x_val).argmax(-1) == y_val) for p in params]))
