"""``supjax bench``'s ``tutorial_speedup``: MindArmour's tutorial training against supjax's fit loop.

Registered with the other MindSpore figures in :data:`compat_mindspore.bench.FIGURES`.

>>> TUTORIAL_INTERVAL
15
"""

from __future__ import annotations

import importlib.util
import time
from typing import Any

import mindspore as ms
from mindspore import nn

from compat_mindspore._lenet import LeNet5, init_lenet, lenet_data, lenet_mask_layers, make_dataset, weights_first

__all__ = ["TUTORIAL_INTERVAL", "measure_tutorial_speedup"]

#: Steps between two operations in MindArmour's tutorial (8 epochs x 1875 steps / 1000 operations).
TUTORIAL_INTERVAL = 15


def _reference_tutorial_epoch(api: Any, seed: int, steps: int, batch_size: int) -> float:
    """Seconds of one ``SuppressModel.train`` epoch with a ``SuppressMasker`` (PYNATIVE), from a fresh model.

    Suppression is on from the first step with an operation every :data:`TUTORIAL_INTERVAL` steps,
    as in the tutorial's suppression phase.
    """
    net = LeNet5()
    init_lenet(net, seed=seed)
    ctrl = api.SuppressPrivacyFactory().create(
        networks=net, mask_layers=lenet_mask_layers(api.MaskLayerDes), policy="local_train",
        end_epoch=10, batch_num=steps, start_epoch=1, mask_times=10 * steps // TUTORIAL_INTERVAL,
        lr=0.05, sparse_end=0.90, sparse_start=0.0,
    )
    model = api.SuppressModel(
        network=net, loss_fn=nn.SoftmaxCrossEntropyWithLogits(sparse=True, reduction="mean"),
        optimizer=nn.SGD(weights_first(net), 0.05),
    )
    model.link_suppress_ctrl(ctrl)
    masker = api.SuppressMasker(model=model, suppress_ctrl=ctrl)
    images, labels = lenet_data(seed, batch_size, steps)
    data = make_dataset(images, labels, batch_size)
    start = time.perf_counter()
    model.train(1, data, callbacks=[masker], dataset_sink_mode=False)
    return time.perf_counter() - start


def measure_tutorial_speedup(counts: Any, seed: int = 0) -> dict[str, Any] | None:
    """MindArmour's tutorial training (per step) over supjax's fit loop on the same shapes; None without it.

    Both train a LeNet5 (32x32x1, batch 32, SGD 0.05) through one epoch with suppression on and
    an operation every :data:`TUTORIAL_INTERVAL` steps: MindArmour with ``SuppressModel`` and
    ``SuppressMasker`` in PYNATIVE_MODE (``model.train``), supjax with
    ``supjax_app.train.loop.fit`` and ``chain(sgd, suppress)``. Each side is warmed up first
    (an untimed epoch; for supjax the step compiles before its timed epoch).

    ``detail.ceiling`` is MindArmour's step over a bare jitted SGD step of the same LeNet5 on the
    same shapes (no suppression, no fit loop: :func:`supjax_app.bench.runs.bare_step_timer`), timed
    in the same rounds: the most any suppression and loop could reach on this machine.

    >>> from supjax_app.bench.timing import Counts
    >>> fig = measure_tutorial_speedup(Counts(quick=True), seed=0)  # doctest: +SKIP
    >>> fig is None or fig["median"] > 0  # doctest: +SKIP
    True
    """
    if importlib.util.find_spec("mindarmour") is None:
        return None
    from compat_mindspore.bench import _quiet_mindarmour, _reference_api
    from supjax import SuppressSchedule
    from supjax_app.bench.runs import bare_step_timer, fit_seconds_per_step
    from supjax_app.bench.timing import interleave, paired_ratios, stats

    steps = TUTORIAL_INTERVAL if counts.quick else 3 * TUTORIAL_INTERVAL
    rounds = 1 if counts.quick else 3
    batch, shape = 32, (32, 32, 1)
    schedule = SuppressSchedule.from_steps(1, 10 * steps, 10 * steps // TUTORIAL_INTERVAL, sparse_end=0.90)
    previous = ms.get_context("mode")
    ms.set_context(mode=ms.PYNATIVE_MODE)  # the reference refuses GRAPH_MODE
    try:
        with _quiet_mindarmour():
            api = _reference_api()
            if not counts.quick:
                _reference_tutorial_epoch(api, seed, TUTORIAL_INTERVAL, batch)  # warm-up

            def reference(_round: int) -> float:
                with _quiet_mindarmour():
                    return _reference_tutorial_epoch(api, seed, steps, batch) / steps

            times = interleave({
                "reference": reference,
                "ours": lambda r: fit_seconds_per_step(shape, batch, steps, schedule, seed),
                "bare": bare_step_timer(shape, batch, steps, seed),
            }, rounds)
    finally:
        ms.set_context(mode=previous)
    return {
        **stats(paired_ratios(times["reference"], times["ours"])),
        "detail": {
            "reference_step_ms": stats([t * 1e3 for t in times["reference"]]),
            "ours_step_ms": stats([t * 1e3 for t in times["ours"]]),
            "bare_step_ms": stats([t * 1e3 for t in times["bare"]]),
            "ceiling": stats(paired_ratios(times["reference"], times["bare"])),
            "steps": steps,
            "interval": TUTORIAL_INTERVAL,
            "what": "MindArmour 2.0.0 SuppressModel.train + SuppressMasker (PYNATIVE) per step / "
                    "supjax_app.train.loop.fit with chain(sgd, suppress) per step; LeNet5 32x32x1, batch 32, "
                    f"one epoch of {steps} steps with an operation every {TUTORIAL_INTERVAL} steps; ceiling: "
                    "the reference's step / a bare jitted SGD step on the same shapes in a Python loop",
        },
    }
