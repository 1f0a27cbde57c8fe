"""``supjax bench``'s MindSpore figures: compat_mindspore and MindArmour 2.0.0 against supjax.

Registered in the ``supjax.bench`` entry-point group as :data:`FIGURES`, so that ``supjax
bench`` finds them where this package is installed without any supjax module importing it.

* :func:`measure_reference_speedup`: MindArmour's ``update_mask`` over supjax's operation;
* :func:`measure_compat_step_ratio`: compat's training step over MindArmour's
  (:func:`measure_step_ratio`);
* :func:`~compat_mindspore.bench_tutorial.measure_tutorial_speedup`: MindArmour's tutorial
  training per step over supjax's fit loop.

Both sides train the same LeNet5 (same initial weights, same batch) under the tutorial's
five-layer suppression with ``nn.SGD``, masks active (one operation done, corrections
reset). The reference runs in PYNATIVE_MODE (it refuses GRAPH_MODE); compat runs in the
requested mode. Each figure is the median of ``repeats`` timings of ``steps`` calls, after
``warmup`` calls (which include GRAPH_MODE and JAX compilation). See :func:`measure_step_ratio`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import io
import logging
import statistics
import time
from typing import Any, Callable

import mindspore as ms
from mindspore import Tensor, nn

from compat_mindspore._lenet import LeNet5, init_lenet, lenet_data, lenet_mask_layers, weights_first
from compat_mindspore.bench_tutorial import measure_tutorial_speedup

__all__ = [
    "FIGURES",
    "LENET5_MINDSPORE_SHAPES",
    "StepTiming",
    "measure_compat_step_ratio",
    "measure_reference_speedup",
    "measure_step_ratio",
    "measure_tutorial_speedup",
]

#: LeNet5's suppressed weights in MindSpore layout (OIHW / out-in).
LENET5_MINDSPORE_SHAPES = {
    "conv1": (6, 1, 5, 5), "conv2": (16, 6, 5, 5), "fc1": (120, 400), "fc2": (84, 120), "fc3": (10, 84),
}


def _quick_counts() -> Any:
    """The repeat counts of ``supjax bench --quick`` (for the doctests)."""
    from supjax_app.bench.timing import Counts

    return Counts(quick=True)


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


@contextlib.contextmanager
def _quiet_mindarmour():
    """Silence MindArmour's INFO logs and its import banner (stdout)."""
    logger = logging.getLogger("MA")
    level = logger.level
    logger.setLevel(logging.ERROR)

    def errors_only(record: logging.LogRecord) -> bool:  # MindArmour sets its level back to INFO as it runs
        return record.levelno >= logging.ERROR

    logger.addFilter(errors_only)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        logger.removeFilter(errors_only)
        logger.setLevel(level)


def measure_reference_speedup(counts: Any, seed: int = 0) -> dict[str, Any] | None:
    """MindArmour's ``update_mask`` over our operation, on the same LeNet5 weights; None without it.

    >>> fig = measure_reference_speedup(_quick_counts(), seed=0)
    >>> fig is None or fig["median"] > 0  # None where mindarmour is not installed
    True
    """
    if importlib.util.find_spec("mindarmour") is None:
        return None
    from supjax_app.bench.operation import LATER, SPARSITIES, operation_timer, random_weights
    from supjax_app.bench.timing import interleave, paired_ratios, stats
    from supjax_app.models import lenet5_rules

    with _quiet_mindarmour():
        from mindarmour.privacy.sup_privacy import MaskLayerDes, SuppressCtrl
        from mindspore import Parameter

    weights = random_weights(LENET5_MINDSPORE_SHAPES, seed)
    rules = lenet5_rules()

    class _Weight(nn.Cell):
        def __init__(self, value):
            super().__init__()
            self.weight = Parameter(Tensor(value), name="weight")

        def construct(self, x):
            return x

    class _LeNet5Weights(nn.Cell):
        def __init__(self):
            super().__init__()
            for name, value in weights.items():
                setattr(self, name, _Weight(value))

        def construct(self, x):
            return x

    previous_mode = ms.get_context("mode")
    ms.set_context(mode=ms.PYNATIVE_MODE)  # the reference refuses GRAPH_MODE
    try:
        def fresh_ctrl():
            # a new network and new MaskLayerDes each time: a SuppressCtrl renames the network's
            # parameters and marks its MaskLayerDes used, and a second one would do nothing
            net = _LeNet5Weights()
            descs = [
                MaskLayerDes(f"{name}.weight", i, rule.is_add_noise, rule.is_lower_clip, rule.min_num,
                             rule.upper_bound)
                for i, (name, rule) in enumerate(zip(weights, rules))
            ]
            with _quiet_mindarmour():
                return net, SuppressCtrl(net, descs, end_epoch=10, batch_num=10, start_epoch=1, mask_times=10,
                                         lr=0.05, sparse_end=0.95, sparse_start=0.0)

        def reference(r: int) -> float:
            # a fresh controller, one untimed operation, then the timed one: an operation in
            # the middle of training (the first one from all-kept masks is slower still)
            net, ctrl = fresh_ctrl()
            with _quiet_mindarmour():
                ctrl.update_mask(net, 1, target_sparse=SPARSITIES[0])
                start = time.perf_counter()
                ctrl.update_mask(net, 2, target_sparse=LATER[r % len(LATER)])
                elapsed = time.perf_counter() - start
            recorded = [len(cell.sparse_pos_list) for cell in ctrl.grads_mask_list]
            if min(recorded) < 2:
                raise RuntimeError("MindArmour's update_mask did not operate: the timing would be meaningless")
            return elapsed

        _, ours_run = operation_timer(weights, rules, after=SPARSITIES[0])
        reference(0)  # warm-up
        times = interleave(
            # ours: the median of three back-to-back calls (the first call after MindArmour's
            # seconds-long Python loop pays for waking XLA's idle worker threads)
            {"reference": reference, "ours": lambda r: statistics.median(ours_run(LATER[r % len(LATER)]) for _ in range(3))},
            counts.reference_repeats,
        )
    finally:
        ms.set_context(mode=previous_mode)
    speedup = stats(paired_ratios(times["reference"], times["ours"]))
    return {
        **speedup,
        "detail": {
            "reference_ms": stats([t * 1e3 for t in times["reference"]]),
            "ours_ms": stats([t * 1e3 for t in times["ours"]]),
            "ratio_of_medians": statistics.median(times["reference"]) / statistics.median(times["ours"]),
            "what": "MindArmour 2.0.0 SuppressCtrl.update_mask (PYNATIVE) / jitted suppress_operation, "
                    "same LeNet5 weights in MindSpore layout, both after one operation at "
                    f"{SPARSITIES[0]}, targets {list(LATER)}, paired rounds",
        },
    }


def measure_compat_step_ratio(counts: Any, seed: int = 0, mode: str = "graph") -> tuple[dict | None, str]:
    """compat_mindspore's step time over MindArmour's, or ``(None, why)`` when not measurable.

    >>> fig, why = measure_compat_step_ratio(_quick_counts(), seed=0, mode="graph")
    >>> (fig is None) == bool(why)  # (None, reason) without MindSpore and mindarmour
    True
    """
    if importlib.util.find_spec("mindarmour") is None:
        return None, "mindarmour is not installed in this environment"
    from supjax_app.bench.timing import stats

    kwargs = dict(steps=2, warmup=1, repeats=2) if counts.quick else dict(steps=5, warmup=2, repeats=5)
    timings = []
    for _ in range(counts.compat_calls):
        with _quiet_mindarmour():
            timings.append(measure_step_ratio(mode=mode, seed=seed, **kwargs))
    ratios = [t.step_ratio for t in timings]
    return {
        **stats(ratios),
        "detail": {
            "mode": mode,
            "reference_step_ms": stats([t.reference_step_s * 1e3 for t in timings]),
            "compat_step_ms": stats([t.compat_step_s * 1e3 for t in timings]),
            "update_mask_ratio": stats([t.update_mask_ratio for t in timings]),
            "what": "measure_step_ratio (each call: median of its own repeats); "
                    f"median/min/max over {counts.compat_calls} calls",
        },
    }, ""


#: What ``supjax bench`` calls (entry point ``supjax.bench``): figure name -> measuring function.
FIGURES: dict[str, Callable[..., Any]] = {
    "reference_speedup": measure_reference_speedup,
    "compat_step_ratio": measure_compat_step_ratio,
    "tutorial_speedup": measure_tutorial_speedup,
}
