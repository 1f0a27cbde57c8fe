"""Time compat_mindspore's training step and suppress operation against MindArmour 2.0.0's.

Both sides train the same LeNet5 (same initial weights, same batch) under the tutorial's
five-layer suppression with ``nn.SGD``, masks active (one operation done, corrections
reset). The reference runs in PYNATIVE_MODE (it refuses GRAPH_MODE); compat runs in the
requested mode. Each figure is the median of ``repeats`` timings of ``steps`` calls, after
``warmup`` calls (which include GRAPH_MODE and JAX compilation). See :func:`measure_step_ratio`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import statistics
import time
from typing import Any, Callable

import mindspore as ms
from mindspore import Tensor, nn

from compat_mindspore._lenet import LeNet5, init_lenet, lenet_data, lenet_mask_layers, weights_first

__all__ = ["StepTiming", "measure_step_ratio"]


@dataclasses.dataclass(frozen=True)
class StepTiming:
    """Median wall-clock seconds of one training step and one ``update_mask``, per side.

    >>> timing = StepTiming("graph", reference_step_s=0.020, compat_step_s=0.005,
    ...                     reference_update_mask_s=2.0, compat_update_mask_s=0.01)
    >>> timing.step_ratio, timing.update_mask_ratio  # compat / reference: below 1, compat is faster
    (0.25, 0.005)
    """

    compat_mode: str
    reference_step_s: float
    compat_step_s: float
    reference_update_mask_s: float
    compat_update_mask_s: float

    @property
    def step_ratio(self) -> float:
        """compat step time / reference step time (below 1: compat is faster)."""
        return self.compat_step_s / self.reference_step_s

    @property
    def update_mask_ratio(self) -> float:
        """compat ``update_mask`` time / reference ``update_mask`` time."""
        return self.compat_update_mask_s / self.reference_update_mask_s


def _reference_api() -> Any:
    """``mindarmour.privacy.sup_privacy``, imported without its banner on stdout."""
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            import mindarmour.privacy.sup_privacy as api
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError("measure_step_ratio needs mindarmour==2.0.0 (the reference)") from error
    return api


def _median_time(call: Callable[[], object], count: int, warmup: int, repeats: int) -> float:
    for _ in range(warmup):
        call()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(count):
            call()
        samples.append((time.perf_counter() - start) / count)
    return statistics.median(samples)


def _setup(api: Any, seed: int, compat: bool) -> tuple[Any, nn.Cell, Any]:
    """A LeNet5, its controller (masks active) and the model's train cell."""
    net = LeNet5()
    init_lenet(net, seed=seed)
    extra = {"reference_parity": True, "seed": seed} if compat else {}
    ctrl = api.SuppressPrivacyFactory().create(
        networks=net, mask_layers=lenet_mask_layers(api.MaskLayerDes), policy="local_train",
        end_epoch=4, batch_num=10, start_epoch=2, mask_times=3, lr=0.05, sparse_end=0.90,
        sparse_start=0.0, **extra,
    )
    model = api.SuppressModel(
        network=net, loss_fn=nn.SoftmaxCrossEntropyWithLogits(sparse=True, reduction="mean"),
        optimizer=nn.SGD(weights_first(net), 0.05),
    )
    model.link_suppress_ctrl(ctrl)
    ctrl.update_status(2, 11, 1)
    ctrl.update_mask(ctrl.networks, 11, target_sparse=0.5)
    ctrl.reset_zeros()
    return ctrl, net, model._train_network


def measure_step_ratio(
    mode: str = "graph",
    batch_size: int = 16,
    steps: int = 5,
    warmup: int = 2,
    repeats: int = 5,
    seed: int = 0,
) -> StepTiming:
    """Time one training step and one ``update_mask`` of compat_mindspore and of MindArmour.

    Args:
        mode: compat's MindSpore mode, ``"graph"`` or ``"pynative"`` (the reference always
            runs in PYNATIVE_MODE).
        batch_size: images per step.
        steps: steps per timing.
        warmup: untimed steps first (compilation).
        repeats: timings; the median is reported.
        seed: initial weights and data.

    Returns:
        StepTiming, with ``step_ratio`` and ``update_mask_ratio`` (compat / reference).

    Raises:
        ImportError: mindarmour 2.0.0 is not installed.
        ValueError: ``mode`` is not ``"graph"`` or ``"pynative"``.

    >>> with contextlib.redirect_stdout(io.StringIO()):  # MindArmour prints as it goes  # doctest: +SKIP
    ...     timing = measure_step_ratio(mode="graph", steps=3, warmup=1, repeats=2, seed=0)
    >>> timing.compat_mode, timing.step_ratio > 0, timing.update_mask_ratio > 0  # doctest: +SKIP
    ('graph', True, True)
    >>> measure_step_ratio(mode="eager")
    Traceback (most recent call last):
    ...
    ValueError: mode must be 'graph' or 'pynative', got 'eager'
    """
    if mode not in ("graph", "pynative"):
        raise ValueError(f"mode must be 'graph' or 'pynative', got {mode!r}")
    import compat_mindspore as compat_api

    reference_api = _reference_api()
    images, labels = lenet_data(seed, batch_size, 1)
    x, y = Tensor(images), Tensor(labels)
    previous = ms.get_context("mode")
    try:
        ms.set_context(mode=ms.PYNATIVE_MODE)
        ref_ctrl, _, ref_cell = _setup(reference_api, seed, compat=False)
        with contextlib.redirect_stdout(io.StringIO()):
            ref_step = _median_time(lambda: ref_cell(x, y), steps, warmup, repeats)
            ref_op = _median_time(lambda: ref_ctrl.update_mask(ref_ctrl.networks, 12), 1, 1, repeats)
        ms.set_context(mode=ms.GRAPH_MODE if mode == "graph" else ms.PYNATIVE_MODE)
        ctrl, _, cell = _setup(compat_api, seed, compat=True)
        step = _median_time(lambda: cell(x, y), steps, warmup, repeats)
        op = _median_time(lambda: ctrl.update_mask(ctrl.networks, 12), 1, 1, repeats)
    finally:
        ms.set_context(mode=previous)
    return StepTiming(mode, ref_step, step, ref_op, op)
