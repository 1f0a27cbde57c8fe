"""``supjax audit`` on LeNet5: choose hyperparameters, train every arm, attack, write the report.

>>> from supjax_app.audit.config import AuditConfig
>>> AuditConfig(quick=True).validate()
True
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np

from supjax_app.attacks.lira import make_keep_matrix
from supjax_app.audit.arms import (
    DP_LR_GRID, LR_GRID, NOISE_GRID, QUICK_GRIDS, arm_name, make_arm, suppress_schedule, validation_accuracy,
)
from supjax_app.audit.config import AuditConfig
from supjax_app.audit.core import audit
from supjax_app.audit.split import AuditData, audit_split
from supjax_app.audit.training import steps_per_epoch
from supjax_app.data import load_dataset
from supjax_app.dp.accounting import PLD_MIN_NOISE, dpsgd_epsilon
from supjax_app.models import init_params, lenet5_for
from supjax_app.train.loop import make_predict

__all__ = ["choose_hyperparameters", "load_audit_data", "run_audit"]


def load_audit_data(config: AuditConfig) -> AuditData:
    """The data set ``config`` names, split into pool (with canaries), validation and test.

    >>> d = load_audit_data(AuditConfig(quick=True))
    >>> d.x_pool.shape, int(d.canary.sum()), d.x_val.shape[0]
    ((400, 8, 8, 1), 20, 300)
    """
    cfg = config.resolved()
    kwargs = {"seed": cfg.seed} if cfg.data == "digits" else {}
    ds = load_dataset(cfg.data, cfg.data_dir, **kwargs)
    return audit_split(ds, cfg.pool, cfg.validation, cfg.canary_fraction, cfg.seed)


def _best(scores: dict[float, float]) -> float:
    return max(scores, key=lambda k: (scores[k], -k))


def choose_hyperparameters(config: AuditConfig, data: AuditData, init, apply, say=print) -> dict[str, Any]:
    """Learning rate per arm and the DP-SGD noise, chosen on the validation split only.

    * each arm's learning rate (every ``suppressed@s``/``pruned@s`` its own): the best
      validation accuracy over its grid (2 tuning models, 1 with ``--quick``, whose grids are
      smaller: ``QUICK_GRIDS``);
    * the DP-SGD noise multiplier and learning rate: each noise tried with every learning rate
      of ``DP_LR_GRID`` (its best counts), the largest noise of ``NOISE_GRID`` whose validation
      accuracy is at least the suppressed arm's minus one point (the most private DP-SGD at
      matched accuracy), found by bisection (accuracy falls as noise grows); if none is, the
      most accurate one tried, and the report says so.
    """
    cfg = config.resolved()
    seeds = (cfg.seed * 7 + 1,) if cfg.quick else (cfg.seed * 7 + 1, cfg.seed * 7 + 2)
    lr_grid, dp_lr_grid, noise_grid = ((QUICK_GRIDS["lr"], QUICK_GRIDS["dp_lr"], QUICK_GRIDS["noise"]) if cfg.quick
                                       else (LR_GRID, DP_LR_GRID, NOISE_GRID))
    per_epoch = (cfg.pool // 2) // cfg.batch_size  # tuning models train on exact halves of the pool

    predict = make_predict(lambda p, x, _rng: apply(p, x))

    def acc(arm) -> float:
        return validation_accuracy(apply, arm, init, data.x_pool, data.y_pool, data.x_val, data.y_val,
                                   epochs=cfg.epochs, batch_size=cfg.batch_size, seeds=seeds, strategy=cfg.strategy,
                                   predict=predict)

    grids: dict[str, dict[float, float]] = {}
    wanted = set(cfg.arms)
    private = bool(wanted & {"dpsgd", "dpsgd_suppressed"})
    for kind in ("dense", "suppressed", "pruned"):
        if kind not in wanted and not (kind == "suppressed" and private):
            continue
        for s in (None,) if kind == "dense" else cfg.sparse_ends if kind in wanted else cfg.sparse_ends[:1]:
            schedule = None if s is None else suppress_schedule(cfg.epochs, max(1, per_epoch), s)
            name = arm_name(kind, s)
            grids[name] = {lr: acc(make_arm(kind, lr, schedule=schedule, seed=cfg.seed)) for lr in lr_grid}
            say(f"validation accuracy of {name} by learning rate: {grids[name]}")
    chosen: dict[str, Any] = {"lr": {k: _best(v) for k, v in grids.items()}, "validation_accuracy": grids}
    if wanted & {"dpsgd", "dpsgd_suppressed"}:
        reference = arm_name("suppressed", cfg.sparse_ends[0])
        goal = grids[reference][chosen["lr"][reference]] - 0.01
        by_noise: dict[float, dict[float, float]] = {}
        grid = sorted(noise_grid)
        low, high = 0, len(grid) - 1  # bisect for the largest noise that matches (accuracy falls with noise)
        while low <= high:
            mid = (low + high) // 2
            noise = grid[mid]
            by_noise[noise] = {lr: acc(make_arm("dpsgd", lr, noise=noise, clip=cfg.dp_clip, seed=cfg.seed))
                               for lr in dp_lr_grid}
            say(f"validation accuracy of dpsgd (sigma {noise}) by learning rate (goal >= {goal:.4f}): "
                f"{by_noise[noise]}")
            if max(by_noise[noise].values()) >= goal:
                low = mid + 1
            else:
                high = mid - 1
        best = {noise: max(accs.values()) for noise, accs in by_noise.items()}
        matched = [n for n, a in best.items() if a >= goal]
        noise = max(matched) if matched else _best(best)
        chosen["lr"]["dpsgd"] = _best(by_noise[noise])
        chosen["dp"] = {"noise_multiplier": noise, "matched": bool(matched), "goal_validation_accuracy": goal,
                        "validation_accuracy_by_noise_and_lr": by_noise}
    return chosen


def _arms(cfg: AuditConfig, chosen: dict[str, Any], per_epoch: int) -> list:
    arms = []
    lr = chosen["lr"]
    for kind in cfg.arms:
        if kind == "dense":
            arms.append(make_arm("dense", lr["dense"], seed=cfg.seed))
        elif kind in ("suppressed", "pruned"):
            for s in cfg.sparse_ends:
                arms.append(make_arm(kind, lr[arm_name(kind, s)], schedule=suppress_schedule(cfg.epochs, per_epoch, s),
                                     seed=cfg.seed, name=arm_name(kind, s)))
        else:
            noise = chosen["dp"]["noise_multiplier"]
            schedule = suppress_schedule(cfg.epochs, per_epoch, cfg.sparse_ends[0])
            arms.append(make_arm(kind, lr["dpsgd"], schedule=schedule, noise=noise, clip=cfg.dp_clip,
                                 seed=cfg.seed))
            if kind == "dpsgd" and cfg.dp_curve and not cfg.quick:  # DP-SGD as a curve over epsilon
                for factor in (0.5, 2.0):
                    arms.append(make_arm(kind, lr["dpsgd"], noise=noise * factor, clip=cfg.dp_clip, seed=cfg.seed,
                                         name=arm_name(kind, noise=noise * factor)))
    return arms


def _epsilons(arms: list, cfg: AuditConfig, keep: np.ndarray, per_epoch: int) -> dict[str, Any]:
    """DP-SGD epsilon of each private arm at delta = 1/pool, RDP and (from ``PLD_MIN_NOISE``) PLD."""
    out: dict[str, Any] = {}
    logging.getLogger("absl").setLevel(logging.ERROR)  # RDP orders that do not converge are dropped, loudly
    for arm in arms:
        if not arm.per_example:
            continue
        sigma = arm.settings["noise_multiplier"]
        q, steps, delta = cfg.batch_size / int(keep.sum(1).min()), cfg.epochs * per_epoch, 1.0 / cfg.pool
        out[arm.name] = {
            "rdp": dpsgd_epsilon(sigma, q, steps, delta, accountant="rdp"),
            "pld": dpsgd_epsilon(sigma, q, steps, delta, accountant="pld") if sigma >= PLD_MIN_NOISE else None,
            "delta": delta, "sampling_rate": q, "steps": steps,
        }
    return out


def _train_evaluator(data: AuditData, init, apply, cfg: AuditConfig, lr: float):
    """A LeNet5 trained on the validation split (disjoint from the pool): the inversion's judge."""
    from supjax_app.audit.training import batch_order, train_arm

    arm = make_arm("dense", lr, seed=cfg.seed)
    rows = np.ones((1, len(data.x_val)), bool)
    order = batch_order(rows[0], max(cfg.epochs, 30), cfg.batch_size, cfg.seed + 99)[None]
    (params,) = train_arm(apply, arm, [init(cfg.seed + 99)], data.x_val, data.y_val, order)
    fn = jax.jit(apply)
    accuracy = float(np.mean(np.asarray(fn(params, data.x_test)).argmax(-1) == data.y_test))
    return (lambda x: fn(params, x)), accuracy


def run_audit(config: AuditConfig, say=print, progress=None) -> dict[str, Any]:
    """Run the whole audit ``config`` describes; write the report files; return the report dict."""
    from supjax_app.audit.report import build_report, write_outputs

    config.validate()
    cfg = config.resolved()
    started = time.perf_counter()
    data = load_audit_data(cfg)
    model = lenet5_for(data.x_pool.shape[1:], data.num_classes)

    def init(seed: int):
        return init_params(model, data.x_pool.shape[1:], seed)

    def apply(params, x):
        return model.apply({"params": params}, x)

    keep = make_keep_matrix(cfg.models, cfg.pool, seed=cfg.seed)
    per_epoch = steps_per_epoch(keep, cfg.batch_size)
    say(f"audit: {data.name}, pool {cfg.pool} ({int(data.canary.sum())} canaries), {cfg.models} models per arm, "
        f"{cfg.epochs} epochs of {per_epoch} steps")
    t0 = time.perf_counter()
    chosen = choose_hyperparameters(cfg, data, init, apply, say=say)
    tuning_s = time.perf_counter() - t0
    arms = _arms(cfg, chosen, per_epoch)
    epsilons = _epsilons(arms, cfg, keep, per_epoch)  # before training: a failure here costs nothing
    result = audit(init, apply, arms, data.x_pool, data.y_pool, keep, epochs=cfg.epochs, batch_size=cfg.batch_size,
                   x_test=data.x_test, y_test=data.y_test, canary=data.canary, attacks=cfg.attacks,
                   fpr_targets=cfg.fpr_targets, bootstrap=cfg.bootstrap, seed=cfg.seed, strategy=cfg.strategy,
                   progress=progress)
    inversion = None
    if cfg.inversion:
        from supjax_app.audit.inversion_section import inversion_section

        evaluator, evaluator_accuracy = _train_evaluator(data, init, apply, cfg, chosen["lr"].get("dense", 0.05))
        inversion = inversion_section(model, result, data, evaluator, evaluator_accuracy, cfg)
    report = build_report(cfg, data, chosen, result, epsilons, inversion,
                          timings={"tuning_s": tuning_s, "total_s": time.perf_counter() - started})
    write_outputs(report, result, data, inversion, Path(cfg.out))
    return report
