"""Options of ``supjax train --dp`` and their checks (each names the option it guards).

Defaults: the learning rate was chosen on a validation split of Fashion-MNIST (2 candidates,
``docs/dp-fashion-mnist/selection.json``); batch size, epochs and clip are fixed by the CPU budget
and the literature (Tramèr and Boneh 2021: clip 0.1, large batches, SGD with momentum).

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

from supjax_app.train.config import TrainConfig

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
    epochs: int = 3
    batch_size: int = 1024
    lr: float = 4.0
    momentum: float = 0.9
    clip: float = 0.1
    epsilon: float | None = None
    noise_multiplier: float | None = None
    delta: float | None = None
    activation: str = "tanh"
    sparse_end: float = 0.95
    start_epoch: int | None = None
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
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"--activation must be one of {', '.join(ACTIVATIONS)}, got {self.activation!r}")
        self.suppression().validate()  # --epochs, --sparse-end, --start-epoch, --mask-times, --seed
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
        """The :class:`TrainConfig` whose ``schedule()`` times suppression (the ``supjax train`` rule).

        >>> DPConfig(epochs=10).suppression().schedule(58).start_step
        117
        """
        return TrainConfig(epochs=self.epochs, sparse_end=self.sparse_end, start_epoch=self.start_epoch,
                           mask_times=self.mask_times, seed=self.seed, batch_size=self.batch_size)

    def to_json(self) -> dict[str, Any]:
        """All options as JSON-ready values."""
        return dataclasses.asdict(self)
