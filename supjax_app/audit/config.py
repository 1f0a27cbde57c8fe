"""What ``supjax audit`` is asked to do (its options), checked before any training.

>>> AuditConfig(models=1).validate()
Traceback (most recent call last):
...
ValueError: --models must be an even integer in [2, 4096], got 1
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Any

from supjax_app.audit.training import STRATEGIES

__all__ = [
    "ARM_NAMES",
    "ATTACK_NAMES",
    "AuditConfig",
    "DEFAULT",
    "QUICK",
]

#: Arms ``--arms`` accepts, in report order.
ARM_NAMES = ("dense", "suppressed", "pruned", "dpsgd", "dpsgd_suppressed")
#: Attacks ``--attacks`` accepts (scores of every (target, example) pair, leave-one-out).
ATTACK_NAMES = ("loss", "lira_offline", "lira_online", "rmia")

#: Settings of the default run and of ``--quick`` (digits): (models, pool, epochs).
DEFAULT = {"models": 16, "pool": 1000, "epochs": 60}
QUICK = {"models": 4, "pool": 400, "epochs": 20}

_FASHION_POOL = 2000


def _fail(option: str, allowed: str, value: Any) -> None:
    raise ValueError(f"{option} must be {allowed}, got {value!r}")


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _check_int(option: str, value: Any, low: int, high: int) -> None:
    if not _is_int(value) or not low <= value <= high:
        _fail(option, f"an integer in [{low}, {high}]", value)


def _check_names(option: str, names: tuple[str, ...], allowed: tuple[str, ...]) -> None:
    bad = [n for n in names if n not in allowed]
    if not names or bad or len(set(names)) != len(names):
        _fail(option, f"distinct names from {', '.join(allowed)}", ",".join(names))


@dataclasses.dataclass(frozen=True)
class AuditConfig:
    """Every option of ``supjax audit``; ``None`` means "the default for the data set / --quick".

    ``pool`` examples of the training split form the audit pool (each model trains on a
    random half); ``validation`` further examples, disjoint from the pool, choose each
    arm's learning rate and the DP-SGD noise; the inversion evaluator trains on them too.

    >>> cfg = AuditConfig(quick=True).resolved()
    >>> cfg.models, cfg.pool, cfg.epochs, cfg.validate()
    (4, 400, 20, True)
    """

    data: str = "digits"
    data_dir: str | None = None
    models: int | None = None
    pool: int | None = None
    validation: int = 300
    epochs: int | None = None
    batch_size: int = 32
    canary_fraction: float = 0.05
    arms: tuple[str, ...] = ARM_NAMES
    attacks: tuple[str, ...] = ATTACK_NAMES
    sparse_ends: tuple[float, ...] = (0.95,)
    fpr_targets: tuple[float, ...] = (0.001, 0.01)
    dp_clip: float = 1.0
    dp_curve: bool = True
    bootstrap: int = 200
    strategy: str = "sequential"
    inversion: bool = True
    inversion_weights: str = "default"
    legacy: bool = True
    seed: int = 0
    out: str = "supjax-audit"
    quick: bool = False

    def resolved(self) -> "AuditConfig":
        """The config with every ``None`` replaced by its default.

        >>> AuditConfig(data="fashion-mnist").resolved().pool
        2000
        """
        base = QUICK if self.quick else DEFAULT
        pool = base["pool"] if self.data == "digits" or self.quick else _FASHION_POOL
        return dataclasses.replace(
            self,
            models=self.models if self.models is not None else base["models"],
            pool=self.pool if self.pool is not None else pool,
            epochs=self.epochs if self.epochs is not None else base["epochs"],
        )

    def validate(self) -> bool:
        """Raise ``ValueError`` naming the first bad option (and its range); ``True`` otherwise."""
        cfg = self.resolved()
        if not _is_int(cfg.models) or not 2 <= cfg.models <= 4096 or cfg.models % 2:
            _fail("--models", "an even integer in [2, 4096]", cfg.models)
        _check_int("--pool", cfg.pool, 20, 10_000_000)
        _check_int("--validation", cfg.validation, 20, 10_000_000)
        _check_int("--epochs", cfg.epochs, 1, 10_000)
        _check_int("--batch-size", cfg.batch_size, 1, cfg.pool // 2)
        if not _is_real(cfg.canary_fraction) or not 0.0 <= cfg.canary_fraction <= 0.5:
            _fail("--canary-fraction", "a number in [0, 0.5]", cfg.canary_fraction)
        _check_names("--arms", cfg.arms, ARM_NAMES)
        _check_names("--attacks", cfg.attacks, ATTACK_NAMES)
        if not cfg.sparse_ends or not all(_is_real(s) and 0.0 < s < 1.0 for s in cfg.sparse_ends):
            _fail("--sparse-end", "numbers in the open interval (0, 1)", cfg.sparse_ends)
        if not cfg.fpr_targets or not all(_is_real(f) and 0.0 < f < 1.0 for f in cfg.fpr_targets):
            _fail("--fpr", "numbers in the open interval (0, 1)", cfg.fpr_targets)
        if not _is_real(cfg.dp_clip) or cfg.dp_clip <= 0:
            _fail("--dp-clip", "a positive number", cfg.dp_clip)
        _check_int("--bootstrap", cfg.bootstrap, 10, 100_000)
        if cfg.strategy not in STRATEGIES:
            _fail("--strategy", f"one of {', '.join(STRATEGIES)}", cfg.strategy)
        if cfg.inversion_weights not in ("default", "tutorial"):
            _fail("--inversion-weights", "'default' (1, 0.2, 5) or 'tutorial' (1, 0.1, 5)", cfg.inversion_weights)
        _check_int("--seed", cfg.seed, 0, 2**31 - 1)
        return True

    def to_json(self) -> dict[str, Any]:
        """All options as JSON-ready values (after defaults are resolved)."""
        out = dataclasses.asdict(self.resolved())
        for key in ("arms", "attacks", "sparse_ends", "fpr_targets"):
            out[key] = list(out[key])
        return out
