"""The JAX figures of ``supjax bench``, and where the MindSpore ones come from.

Each figure is the median of several timed runs after a warm-up (min and max beside it):

* ``step_overhead_ratio`` (:func:`measure_step_overhead`): a jitted LeNet5 train step
  (batch 32, 28x28x1 inputs, SGD, the tutorial's five weight layers suppressed) through
  ``optax.chain(sgd, suppress(...))`` on a step without an operation, divided by the same
  step with bare ``optax.sgd``. The two run interleaved in one process; the figure is the
  median of the per-round ratios. Goal <= 1.05.
* ``lenet5_operation_ms`` (:func:`measure_lenet5_operation`): one jitted
  :func:`supjax.engine.suppress_operation` over LeNet5's five layers (150, 2400, 48000, 10080
  and 840 weights). Goal <= 5 ms.
* ``selection_ratio`` (:func:`measure_selection_ratio`): one suppress operation on a single
  layer of 1e7 weights (the large path, exact count selection) divided by one jitted
  elementwise pass ``w * 2`` over it; the ratios at 1e4, 1e5 and 1e6 are in
  ``figures.selection_ratio.detail.by_size``. Goal <= 8.
* ``reference_speedup`` and ``compat_step_ratio`` come from :func:`mindspore_figures`
  (``compat_mindspore.bench``, where it is installed).

The report, its goals and table are in :mod:`supjax_app.bench.report`, the command line in
:mod:`supjax_app.bench.cli`.

>>> [int(np.prod(shape)) for shape in LENET5_FLAX_SHAPES.values()]  # LeNet5's suppressed weights
[150, 2400, 48000, 10080, 840]
"""

from __future__ import annotations

import importlib
import importlib.metadata
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from supjax import (
    LayerRule,
    SuppressSchedule,
    SuppressState,
    find_suppress_state,
    suppress,
    suppress_gradients,
)
from supjax_app.bench.operation import SPARSITIES, operation_timer, random_weights
from supjax_app.bench.timing import Counts, interleave, paired_ratios, stats, timed
from supjax_app.models import lenet5_for, lenet5_rules

__all__ = [
    "LENET5_FLAX_SHAPES",
    "QUICK_SELECTION_SIZES",
    "SELECTION_SIZES",
    "measure_lenet5_operation",
    "measure_selection_ratio",
    "measure_step_overhead",
    "mindspore_figures",
]

#: LeNet5's suppressed weights in Flax layout (HWIO / in-out).
LENET5_FLAX_SHAPES = {
    "conv1": (5, 5, 1, 6), "conv2": (5, 5, 6, 16), "fc1": (400, 120), "fc2": (120, 84), "fc3": (84, 10),
}

#: Single-layer sizes of ``selection_ratio`` (the goal is judged at the largest).
SELECTION_SIZES = (10_000, 100_000, 1_000_000, 10_000_000)
#: The same under ``--quick``.
QUICK_SELECTION_SIZES = (10_000, 200_000)


def _random_masks(state: SuppressState, seed: int) -> SuppressState:
    """``state`` with half of every keep-mask suppressed (a realistic mid-training state)."""
    rng = np.random.default_rng(seed)
    masks = tuple(jnp.asarray(rng.random(m.shape) < 0.5) for m in state.keep_masks)
    return state._replace(keep_masks=masks)


def measure_step_overhead(counts: Counts, seed: int = 0) -> dict[str, Any]:
    """Time bare SGD, ``chain(sgd, suppress)`` and ``chain(suppress_gradients, sgd)`` steps.

    The suppressed steps never operate (the schedule starts at step 1e6) but carry masks with
    half the weights suppressed, so they do all a non-operating step does.

    >>> fig = measure_step_overhead(Counts(quick=True), seed=0)  # doctest: +SKIP
    >>> sorted(fig), sorted(fig["detail"]["step_ms"]), fig["median"] > 0  # doctest: +SKIP
    (['detail', 'max', 'median', 'min', 'samples'], ['bare', 'suppress'], True)
    """
    model = lenet5_for((28, 28, 1), num_classes=10)
    rng = np.random.default_rng(seed)
    x = jnp.asarray(rng.random((32, 28, 28, 1), dtype=np.float32))
    y = jnp.asarray(rng.integers(0, 10, 32).astype(np.int32))
    params = model.init(jax.random.PRNGKey(seed), x[:1])["params"]
    lr = 0.05
    rules = list(lenet5_rules())
    schedule = SuppressSchedule.from_steps(1_000_000, 1_000_099, 10)  # no operation while timed

    def loss_fn(p, xb, yb):
        logits = model.apply({"params": p}, xb)
        return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()

    def make(tx):
        @jax.jit
        def step(p, opt_state, xb, yb):
            grads = jax.grad(loss_fn)(p, xb, yb)
            updates, opt_state = tx.update(grads, opt_state, p)
            return optax.apply_updates(p, updates), opt_state

        return step

    def with_masks(opt_state):
        return jax.tree_util.tree_map(
            lambda s: _random_masks(s, seed) if isinstance(s, SuppressState) else s,
            opt_state, is_leaf=lambda s: isinstance(s, SuppressState),
        )

    variants = {
        "bare": optax.sgd(lr),
        "suppress": optax.chain(optax.sgd(lr), suppress(rules, schedule)),
    }
    if not counts.quick:  # one more 20 s compilation: not worth it in a smoke run
        variants["suppress_gradients"] = optax.chain(suppress_gradients(rules, schedule, lr), optax.sgd(lr))
    runs: dict[str, list] = {}
    for name, tx in variants.items():
        step = make(tx)
        state = with_masks(tx.init(params))
        p = params
        for _ in range(counts.step_warmup):  # compile and warm up
            p, state = step(p, state, x, y)
        jax.block_until_ready(p)
        runs[name] = [step, params, state]

    def sampler(name):
        def sample(_round):
            step, p, state = runs[name]
            start = time.perf_counter()
            for _ in range(counts.step_batch):
                p, state = step(p, state, x, y)
            jax.block_until_ready(p)
            elapsed = (time.perf_counter() - start) / counts.step_batch
            runs[name][1:] = [p, state]
            return elapsed

        return sample

    times = interleave({name: sampler(name) for name in variants}, counts.step_rounds)
    returns_ms = {}  # how long one call takes to return: short when JAX dispatches asynchronously
    for name in variants:
        step, p, state = runs[name]
        samples = []
        for _ in range(max(3, counts.step_batch)):
            jax.block_until_ready((p, state))
            start = time.perf_counter()
            p, state = step(p, state, x, y)
            samples.append((time.perf_counter() - start) * 1e3)
        jax.block_until_ready(p)
        runs[name][1:] = [p, state]
        returns_ms[name] = stats(samples)
    for name in variants:
        if name != "bare" and int(find_suppress_state(runs[name][2]).operations):
            raise RuntimeError(f"the {name} step operated while timed")
    ratio = stats(paired_ratios(times["suppress"], times["bare"]))
    ratio_gradients = (
        stats(paired_ratios(times["suppress_gradients"], times["bare"])) if "suppress_gradients" in times else None
    )
    return {
        **ratio,
        "detail": {
            "step_ms": {name: stats([t * 1e3 for t in ts]) for name, ts in times.items()},
            "ratio_of_medians": statistics.median(times["suppress"]) / statistics.median(times["bare"]),
            "call_returns_ms": returns_ms,
            "suppress_gradients_ratio": ratio_gradients,
            "batch": 32,
            "input": [28, 28, 1],
            "steps_per_sample": counts.step_batch,
            "rounds": counts.step_rounds,
            "what": "median over interleaved rounds of (chain(sgd, suppress) step time / sgd step time); "
                    "no operation on the timed steps, half of each mask suppressed",
        },
    }


def measure_lenet5_operation(counts: Counts, seed: int = 0) -> dict[str, Any]:
    """Time one operation over LeNet5's five layers (Flax layout), and each layer alone.

    >>> fig = measure_lenet5_operation(Counts(quick=True), seed=0)  # doctest: +SKIP
    >>> {path: layer["size"] for path, layer in fig["detail"]["layers"].items()}  # doctest: +SKIP
    {'conv1/kernel': 150, 'conv2/kernel': 2400, 'fc1/kernel': 48000, 'fc2/kernel': 10080, 'fc3/kernel': 840}
    """
    rules = lenet5_rules()
    weights = random_weights(LENET5_FLAX_SHAPES, seed)
    plans, run = operation_timer(weights, rules)
    samplers = {"all": lambda r: run(SPARSITIES[r % len(SPARSITIES)])}
    if not counts.quick:
        for name, rule in zip(weights, rules):
            _, layer_run = operation_timer({name: weights[name]}, [rule])
            samplers[name] = lambda r, f=layer_run: f(SPARSITIES[r % len(SPARSITIES)])
        _, parity_run = operation_timer(weights, rules, reference_parity=True)
        samplers["reference_parity"] = lambda r: parity_run(SPARSITIES[r % len(SPARSITIES)])
    times = interleave(samplers, counts.op_repeats)
    ms = {name: stats([t * 1e3 for t in ts]) for name, ts in times.items()}
    return {
        **ms.pop("all"),
        "detail": {
            "layers": {p.path_name: {"size": p.size, "path": p.method} for p in plans},
            "per_layer_ms": {k: v for k, v in ms.items() if k != "reference_parity"},
            "reference_parity_ms": ms.get("reference_parity"),
            "what": "jitted suppress_operation over the five LeNet5 weights (Flax layout), fresh masks, "
                    f"targets cycled through {list(SPARSITIES)}",
        },
    }


def measure_selection_ratio(
    counts: Counts, sizes: Sequence[int] = SELECTION_SIZES, seed: int = 0
) -> dict[str, Any]:
    """One operation on a single layer of each size over one ``w * 2`` pass, interleaved.

    >>> fig = measure_selection_ratio(Counts(quick=True), sizes=(1_000,), seed=0)
    >>> fig["detail"]["size"], sorted(fig["detail"]["by_size"]), fig["median"] > 0
    (1000, ['1000'], True)
    """
    double = jax.jit(lambda w: w * 2)
    by_size: dict[str, Any] = {}
    for size in sizes:
        weights = random_weights({"layer": (int(size),)}, seed)
        plans, run = operation_timer(weights, [LayerRule("layer/kernel")])
        w = jnp.asarray(weights["layer"])
        jax.block_until_ready(double(w))
        times = interleave(
            {
                "operation": lambda r: run(SPARSITIES[r % len(SPARSITIES)]),
                "double": lambda r, w=w: timed(lambda: double(w)),
            },
            counts.select_repeats,
        )
        by_size[str(int(size))] = {
            **stats(paired_ratios(times["operation"], times["double"])),
            "path": plans[0].method,
            "operation_ms": stats([t * 1e3 for t in times["operation"]]),
            "double_ms": stats([t * 1e3 for t in times["double"]]),
        }
        del w, weights
    largest = str(int(max(sizes)))
    return {
        **{k: by_size[largest][k] for k in ("median", "min", "max", "samples")},
        "detail": {
            "size": int(largest),
            "by_size": by_size,
            "what": "one jitted suppress_operation on a single float32 layer (default mode: above "
                    "100000 the large path, exact count selection) / one jitted w * 2, paired rounds",
        },
    }


def mindspore_figures() -> dict[str, Callable[..., Any]] | None:
    """The MindArmour/compat measurements, from the ``supjax.bench`` entry-point group.

    ``compat_mindspore`` registers ``compat_mindspore.bench:FIGURES`` there: a mapping
    ``{"reference_speedup": f(counts, seed), "compat_step_ratio": f(counts, seed, mode),
    "tutorial_speedup": f(counts, seed)}``.
    None when no such package is installed (or it cannot be imported here, e.g. without
    MindSpore), so that supjax's application never imports compat_mindspore by name.

    >>> figs = mindspore_figures()
    >>> figs is None or {"compat_step_ratio", "reference_speedup", "tutorial_speedup"} <= set(figs)
    True
    """
    for entry in importlib.metadata.entry_points(group="supjax.bench"):
        try:
            return dict(entry.load())
        except ImportError:
            return None
    return None
