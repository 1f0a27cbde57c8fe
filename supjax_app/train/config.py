"""Options of ``supjax train`` and how the suppression schedule follows from them.

Every check names the command-line option it guards and the allowed range.

>>> cfg = TrainConfig(epochs=10)
>>> cfg.resolved_start_epoch(), cfg.validate()
(3, True)
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Any

from supjax.schedule import SuppressSchedule

__all__ = [
    "ATTACK_NAMES",
    "DEFAULT_EPOCHS",
    "QUICK_EPOCHS",
    "TrainConfig",
    "TARGET_INTERVAL",
    "START_FRACTION",
]

#: Epochs of the default run (digits, a few minutes on 2 CPU cores).
DEFAULT_EPOCHS = 30
#: Epochs of a ``--quick`` run.
QUICK_EPOCHS = 10
#: Suppression starts after this fraction of training (the tutorial: epoch 3 of 10).
START_FRACTION = 0.3
#: Steps between two suppress operations when ``--mask-times`` is not given: the middle
#: of the (10, 20) window the reference recommends (its tutorial has 15000 / 1000 = 15).
TARGET_INTERVAL = 15
#: Membership-inference attacks ``--attacks`` accepts (``loss_threshold`` always runs).
ATTACK_NAMES = ("lr", "knn", "mlp", "rf")

_MAX_EPOCHS = 1000


def _fail(option: str, allowed: str, value: Any) -> None:
    raise ValueError(f"{option} must be {allowed}, got {value!r}")


def _check_int(option: str, value: Any, low: int, high: int | None = None) -> None:
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if not ok or value < low or (high is not None and value > high):
        allowed = f"an integer in [{low}, {high}]" if high is not None else f"an integer >= {low}"
        _fail(option, allowed, value)


def _check_open_unit(option: str, value: Any) -> None:
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or not 0.0 < value < 1.0:
        _fail(option, "a number in the open interval (0, 1)", value)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything ``supjax train`` needs to know (its command-line options).

    ``start_epoch`` and ``mask_times`` of ``None`` mean "like the tutorial": suppression
    from 30 % of training to the end, one operation about every 15 steps.
    ``train_size``/``test_size`` of ``None`` use the whole split.

    >>> TrainConfig(sparse_end=1.5).validate()
    Traceback (most recent call last):
    ...
    ValueError: --sparse-end must be a number in the open interval (0, 1), got 1.5
    """

    data: str = "digits"
    data_dir: str | None = None
    epochs: int = DEFAULT_EPOCHS
    batch_size: int = 32
    lr: float = 0.05
    sparse_end: float = 0.95
    start_epoch: int | None = None
    mask_times: int | None = None
    seed: int = 0
    attacks: tuple[str, ...] = ATTACK_NAMES
    attack_size: int = 1000
    train_size: int | None = None
    test_size: int | None = None
    out: str = "supjax-report"
    checkpoint_dir: str | None = None
    checkpoint_every: int | None = None
    resume: bool = False
    quick: bool = False

    def validate(self) -> bool:
        """Raise ``ValueError`` naming the first bad option; return ``True`` otherwise."""
        _check_int("--epochs", self.epochs, 1, _MAX_EPOCHS)
        _check_int("--batch-size", self.batch_size, 1)
        ok = isinstance(self.lr, numbers.Real) and not isinstance(self.lr, bool) and math.isfinite(self.lr)
        if not ok or not 0.0 < self.lr <= 0.5:
            _fail("--lr", "a number in (0, 0.5] (the reference's range for its SGD learning rate)", self.lr)
        _check_open_unit("--sparse-end", self.sparse_end)
        if self.start_epoch is not None:
            _check_int("--start-epoch", self.start_epoch, 1, self.epochs)
        if self.mask_times is not None:
            _check_int("--mask-times", self.mask_times, 1)
        _check_int("--seed", self.seed, 0, 2**31 - 1)
        bad = [a for a in self.attacks if a not in ATTACK_NAMES]
        if bad or len(set(self.attacks)) != len(self.attacks):
            _fail("--attacks", f"distinct names from {', '.join(ATTACK_NAMES)} (or 'none')", ",".join(self.attacks))
        _check_int("--attack-size", self.attack_size, 10)
        for option, value in (("--train-size", self.train_size), ("--test-size", self.test_size)):
            if value is not None:
                _check_int(option, value, 10)
        if self.checkpoint_every is not None:
            _check_int("--checkpoint-every", self.checkpoint_every, 1)
        return True

    def resolved_start_epoch(self) -> int:
        """``--start-epoch``, or the epoch at 30 % of training (at least 1).

        >>> TrainConfig(epochs=20).resolved_start_epoch(), TrainConfig(epochs=2).resolved_start_epoch()
        (6, 1)
        """
        if self.start_epoch is not None:
            return self.start_epoch
        return max(1, min(self.epochs, round(START_FRACTION * self.epochs)))

    def schedule(self, steps_per_epoch: int) -> SuppressSchedule:
        """The suppression schedule for ``steps_per_epoch`` optimizer steps per epoch.

        >>> s = TrainConfig(epochs=10).schedule(100)
        >>> (s.start_step, s.end_step, s.mask_times, s.sparse_end)
        (201, 1000, 53, 0.95)
        """
        _check_int("steps per epoch (training samples // --batch-size)", steps_per_epoch, 1)
        start = self.resolved_start_epoch()
        all_steps = (self.epochs - start + 1) * steps_per_epoch
        mask_times = self.mask_times
        if mask_times is None:
            mask_times = max(1, round(all_steps / TARGET_INTERVAL))
        elif mask_times > all_steps:
            _fail("--mask-times", f"an integer in [1, {all_steps}] (the steps of the suppression phase)", mask_times)
        return SuppressSchedule.from_epochs(
            start_epoch=start,
            end_epoch=self.epochs,
            batch_num=steps_per_epoch,
            mask_times=mask_times,
            sparse_start=0.0,
            sparse_end=self.sparse_end,
        )

    def training_fields(self) -> dict[str, Any]:
        """The options that decide the trained weights (a resumed run must match them)."""
        keys = ("data", "data_dir", "epochs", "batch_size", "lr", "sparse_end", "start_epoch",
                "mask_times", "seed", "train_size", "test_size")
        return {k: getattr(self, k) for k in keys}

    def to_json(self) -> dict[str, Any]:
        """All options as JSON-ready values."""
        out = dataclasses.asdict(self)
        out["attacks"] = list(self.attacks)
        return out
