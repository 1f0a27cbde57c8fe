"""Options of ``supjax train --dp`` and their checks (each names the option it guards).

Defaults (epochs 25, expected batch 512, lr 2, clip 0.1, ``end_epoch`` = epochs, upper bound 2.4,
masked clipping): the best of the candidates of :data:`supjax_app.dp.select.GRID` (R), each scored by
DP + suppressed's accuracy on a validation split of Fashion-MNIST (10000 of the 60000 training images
held out, seeded; trained on the other 50000 at ε = 3, δ = 1e-5; the test split never used):
``docs/dp-fashion-mnist/selection*.json``. Momentum 0.9, tanh and the clip follow Tramèr and Boneh
2021 and Papernot et al. 2021; the grid was bounded by the 30-minute CPU budget of the full
three-model run.

>>> cfg = DPConfig(data="fashion-mnist")
>>> cfg.validate(), cfg.resolved_delta(60000), cfg.activation
(True, 1e-05, 'tanh')
>>> DPConfig(epsilon=3.0, noise_multiplier=1.0).validate()
Traceback (most recent call last):
...
ValueError: --noise-multiplier and --epsilon cannot both be given: --epsilon picks the noise multiplier
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Any

from supjax.schedule import SuppressSchedule
from supjax_app.dp.average import check_decay
from supjax_app.train.config import TARGET_INTERVAL, TrainConfig

__all__ = [
    "ACTIVATIONS",
    "DEFAULT_EPSILON",
    "DPConfig",
]

#: Activations ``--activation`` accepts (tanh is the usual choice for DP-SGD: Papernot et al. 2021).
ACTIVATIONS = ("tanh", "relu")
#: ε targeted when neither ``--epsilon`` nor ``--noise-multiplier`` is given.
DEFAULT_EPSILON = 3.0


def _real(option: str, value: Any, ok: Any, allowed: str) -> None:
    good = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if not good or not ok(float(value)):
        raise ValueError(f"{option} must be {allowed}, got {value!r}")


@dataclasses.dataclass(frozen=True)
class DPConfig:
    """Everything ``supjax train --dp`` needs: DP-SGD, suppression and the reference run.

    ``epsilon``/``noise_multiplier``: at most one; neither means ε = :data:`DEFAULT_EPSILON`.
    ``end_epoch``: last epoch of the suppression window, in [start epoch, ``epochs``]; ``None``
    means ``epochs``. With ``end_epoch < epochs`` the epochs after it train with the masks held
    (no more suppress operations, see :meth:`schedule`).
    ``upper_bound``: every suppressed layer's :attr:`supjax.LayerRule.upper_bound` (kept weights are
    clipped to it at each operation; MindArmour's default is 1.2, which bound fc3 in candidate A).
    ``masked_clipping``: DP + suppressed clips each per-example gradient after multiplying it by
    the current keep-masks (:func:`~supjax_app.dp.train.suppressed_clipping`), so the clipping
    norm is not spent on the weights suppression discards; the same ε.
    ``ema_decay``: release the DP models' debiased moving average of their iterates with this
    decay (:mod:`supjax_app.dp.average`; the suppressed model's average keeps its zeros) instead
    of the last iterate; the same ε. ``None``: the last iterate.
    ``delta`` of ``None`` is ``1 / n`` rounded down to a power of ten. ``reference_lr`` and
    ``reference_batch_size`` are the non-private dense run's (plain SGD with momentum).

    >>> DPConfig(clip=0).validate()
    Traceback (most recent call last):
    ...
    ValueError: --clip must be a number > 0, got 0
    """

    data: str = "digits"
    data_dir: str | None = None
    train_size: int | None = None
    test_size: int | None = None
    epochs: int = 25
    batch_size: int = 512
    lr: float = 2.0
    momentum: float = 0.9
    clip: float = 0.1
    epsilon: float | None = None
    noise_multiplier: float | None = None
    delta: float | None = None
    activation: str = "tanh"
    sparse_end: float = 0.95
    upper_bound: float = 2.4
    masked_clipping: bool = True
    start_epoch: int | None = None
    end_epoch: int | None = None
    ema_decay: float | None = None
    mask_times: int | None = None
    seed: int = 0
    reference_lr: float = 0.05
    reference_batch_size: int = 128
    out: str = "supjax-report"
    quick: bool = False

    def validate(self) -> bool:
        """Raise ``ValueError`` naming the first bad option; return ``True`` otherwise.

        Checks that need the data (``--delta <= 1/n``, ``--batch-size <= n``) are in
        :meth:`validate_for`.
        """
        if self.epsilon is not None and self.noise_multiplier is not None:
            raise ValueError("--noise-multiplier and --epsilon cannot both be given: "
                             "--epsilon picks the noise multiplier")
        if self.epsilon is not None:
            _real("--epsilon", self.epsilon, lambda v: v > 0, "a number > 0")
        if self.noise_multiplier is not None:
            _real("--noise-multiplier", self.noise_multiplier, lambda v: v > 0, "a number > 0")
        if self.delta is not None:
            _real("--delta", self.delta, lambda v: 0 < v < 1, "a number in (0, 1/n] (n: training examples)")
        _real("--clip", self.clip, lambda v: v > 0, "a number > 0")
        _real("--lr", self.lr, lambda v: 0 < v <= 100, "a number in (0, 100]")
        _real("--momentum", self.momentum, lambda v: 0 <= v < 1, "a number in [0, 1)")
        _real("--upper-bound", self.upper_bound, lambda v: v > 0, "a number > 0")
        if self.ema_decay is not None:
            check_decay("--ema-decay", self.ema_decay)
        if not isinstance(self.masked_clipping, bool):
            raise TypeError(f"--masked-clipping must be True or False, got {self.masked_clipping!r}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"--activation must be one of {', '.join(ACTIVATIONS)}, got {self.activation!r}")
        self.suppression().validate()  # --epochs, --sparse-end, --start-epoch, --mask-times, --seed
        if self.end_epoch is not None:
            start = self.suppression().resolved_start_epoch()
            ok = isinstance(self.end_epoch, numbers.Integral) and not isinstance(self.end_epoch, bool)
            if not ok or not start <= self.end_epoch <= self.epochs:
                raise ValueError(f"--end-epoch must be an integer in [{start}, {self.epochs}] (the suppression "
                                 f"start epoch .. --epochs), got {self.end_epoch!r}")
        for option, value in (("--batch-size", self.batch_size), ("reference batch size", self.reference_batch_size)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
                raise ValueError(f"{option} must be an integer >= 1, got {value!r}")
        _real("reference learning rate", self.reference_lr, lambda v: 0 < v <= 0.5, "a number in (0, 0.5]")
        return True

    def validate_for(self, n: int) -> bool:
        """The checks that need ``n``, the number of training examples.

        >>> DPConfig(delta=1e-3).validate_for(5000)
        Traceback (most recent call last):
        ...
        ValueError: --delta must be a number in (0, 1/n] = (0, 0.0002] for n = 5000 training examples, got 0.001
        """
        self.validate()
        if self.delta is not None and self.delta > 1.0 / n:
            raise ValueError(f"--delta must be a number in (0, 1/n] = (0, {1.0 / n:g}] for n = {n} training "
                             f"examples, got {self.delta!r}")
        if self.batch_size > n:
            raise ValueError(f"--batch-size must be an integer in [1, {n}] (the training examples), got {self.batch_size}")
        return True

    def resolved_delta(self, n: int) -> float:
        """``--delta``, or ``1 / n`` rounded down to a power of ten."""
        from supjax_app.dp.accounting import default_delta  # dp_accounting takes ~1 s to import: only with --dp

        return float(self.delta) if self.delta is not None else default_delta(n)

    def target_epsilon(self) -> float | None:
        """The ε to calibrate the noise for (``None`` when ``--noise-multiplier`` is given).

        >>> DPConfig().target_epsilon(), DPConfig(noise_multiplier=1.0).target_epsilon()
        (3.0, None)
        """
        if self.noise_multiplier is not None:
            return None
        return DEFAULT_EPSILON if self.epsilon is None else float(self.epsilon)

    def suppression(self) -> TrainConfig:
        """The :class:`TrainConfig` of the shared suppression options (checks, start-epoch rule).

        >>> DPConfig(epochs=10).suppression().resolved_start_epoch()
        3
        """
        return TrainConfig(epochs=self.epochs, sparse_end=self.sparse_end, start_epoch=self.start_epoch,
                           mask_times=self.mask_times, seed=self.seed, batch_size=self.batch_size)

    def released(self) -> str:
        """What the DP models release: ``"last iterate"``, or ``"ema D"`` with ``--ema-decay D``.

        >>> DPConfig().released(), DPConfig(ema_decay=0.99).released()
        ('last iterate', 'ema 0.99')
        """
        return "last iterate" if self.ema_decay is None else f"ema {self.ema_decay:g}"

    def resolved_end_epoch(self) -> int:
        """``--end-epoch``, or ``epochs``."""
        return self.epochs if self.end_epoch is None else int(self.end_epoch)

    def schedule(self, steps_per_epoch: int) -> SuppressSchedule:
        """The suppression schedule for ``steps_per_epoch`` optimizer steps per epoch.

        The window runs from the start epoch (``--start-epoch``, or the epoch at 30 % of
        ``epochs``, as ``supjax train``) to :meth:`resolved_end_epoch`, with one operation about
        every :data:`~supjax_app.train.config.TARGET_INTERVAL` steps of the window unless
        ``--mask-times``. ``end_epoch == epochs`` (the default) is ``supjax train``'s schedule,
        MindArmour's behaviour; ``end_epoch < epochs`` sets ``stop_after_end``: no operation
        (and no suppression noise) after ``end_epoch``, the kept weights train under the masks
        held fixed.

        >>> s = DPConfig(epochs=10).schedule(48)
        >>> (s.start_step, s.end_step, s.mask_times, s.stop_after_end)
        (97, 480, 26, False)
        >>> s = DPConfig(epochs=10, end_epoch=7).schedule(48)
        >>> (s.start_step, s.end_step, s.mask_times, s.stop_after_end)
        (97, 336, 16, True)
        """
        self.validate()
        if isinstance(steps_per_epoch, bool) or not isinstance(steps_per_epoch, numbers.Integral) or steps_per_epoch < 1:
            raise ValueError("steps per epoch (training samples // --batch-size) must be an integer >= 1, "
                             f"got {steps_per_epoch!r}")
        start, end = self.suppression().resolved_start_epoch(), self.resolved_end_epoch()
        all_steps = (end - start + 1) * steps_per_epoch
        mask_times = self.mask_times
        if mask_times is None:
            mask_times = max(1, round(all_steps / TARGET_INTERVAL))
        elif mask_times > all_steps:
            raise ValueError(f"--mask-times must be an integer in [1, {all_steps}] (the steps of the suppression "
                             f"phase), got {mask_times!r}")
        return SuppressSchedule.from_epochs(start_epoch=start, end_epoch=end, batch_num=steps_per_epoch,
                                            mask_times=mask_times, sparse_start=0.0, sparse_end=self.sparse_end,
                                            stop_after_end=end < self.epochs)

    def to_json(self) -> dict[str, Any]:
        """All options as JSON-ready values."""
        return dataclasses.asdict(self)
