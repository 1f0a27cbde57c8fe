"""``supjax bench``: how much suppression costs, measured on this machine.

Five figures, each the median of several timed runs after a warm-up (min and max beside it):

* ``step_overhead_ratio``: a jitted LeNet5 train step (batch 32, 28x28x1 inputs, SGD, the
  tutorial's five weight layers suppressed) through ``optax.chain(sgd, suppress(...))`` on a
  step without an operation, divided by the same step with bare ``optax.sgd``. The two run
  interleaved in one process; the figure is the median of the per-round ratios. Goal <= 1.05.
* ``lenet5_operation_ms``: one jitted :func:`~supjax.suppress_operation` over LeNet5's five
  layers (150, 2400, 48000, 10080 and 840 weights). Goal <= 5 ms.
* ``reference_speedup``: MindArmour 2.0.0's ``SuppressCtrl.update_mask`` on the same weights
  (MindSpore layout) divided by our operation; ``null`` unless mindarmour is installed. Goal >= 200.
* ``selection_ratio``: one suppress operation on a single layer of 1e7 weights (the large path,
  exact count selection) divided by one jitted elementwise pass ``w * 2`` over it; the ratios
  at 1e4, 1e5 and 1e6 are in ``figures.selection_ratio.detail.by_size``. Goal <= 8.
* ``compat_step_ratio``: ``compat_mindspore``'s training step over MindArmour's on the same
  network and data (``compat_mindspore.bench.measure_step_ratio``, GRAPH_MODE); ``null``
  unless MindSpore, mindarmour and compat_mindspore are importable. Goal <= 0.5.

The JSON holds those five keys as plain numbers (or ``null``) and, under ``figures``, each
figure's ``median``/``min``/``max``, its goal, whether the median meets it, and details.

``python -m supjax_app.bench.figures --json bench.json`` or ``supjax bench --json bench.json``;
``--quick`` runs everything with tiny repeat counts (a smoke test, not a measurement).
Run it on an otherwise idle machine: the min/max beside each median show how noisy it was
(``environment.load_average`` records the load), and ``phase_s`` how long each figure took.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import gc
import importlib.metadata
import io
import json
import os
import platform
import statistics
import sys
import time
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "GOALS",
    "add_arguments",
    "main",
    "measure_lenet5_operation",
    "mindspore_figures",
    "measure_selection_ratio",
    "measure_step_overhead",
    "run",
    "run_bench",
]

#: Goal of each headline figure: (comparison, bound), judged on the median.
GOALS: dict[str, tuple[str, float]] = {
    "step_overhead_ratio": ("<=", 1.05),
    "lenet5_operation_ms": ("<=", 5.0),
    "reference_speedup": (">=", 200.0),
    "selection_ratio": ("<=", 8.0),
    "compat_step_ratio": ("<=", 0.5),
}

_UNITS = {
    "step_overhead_ratio": "x",
    "lenet5_operation_ms": "ms",
    "reference_speedup": "x",
    "selection_ratio": "x",
    "compat_step_ratio": "x",
}

#: LeNet5's suppressed weights in Flax layout (HWIO / in-out).
LENET5_FLAX_SHAPES = {
    "conv1": (5, 5, 1, 6), "conv2": (5, 5, 6, 16), "fc1": (400, 120), "fc2": (120, 84), "fc3": (84, 10),
}

#: Single-layer sizes of ``selection_ratio`` (the goal is judged at the largest).
SELECTION_SIZES = (10_000, 100_000, 1_000_000, 10_000_000)
QUICK_SELECTION_SIZES = (10_000, 200_000)

_SPARSITIES = (0.3, 0.5, 0.7, 0.9)  # targets cycled through the timed operations
_LATER = _SPARSITIES[1:]  # targets of operations timed after one at _SPARSITIES[0]


class _Counts:
    """Repeat counts of one bench run."""

    def __init__(self, quick: bool) -> None:
        self.quick = quick
        self.step_rounds = 3 if quick else 21
        self.step_batch = 2 if quick else 10  # train steps per timed sample
        self.step_warmup = 1 if quick else 3
        self.op_repeats = 3 if quick else 30
        self.select_repeats = 2 if quick else 7
        self.reference_repeats = 1 if quick else 5
        self.compat_calls = 1 if quick else 3


# --------------------------------------------------------------------------- timing helpers


def _stats(values: Sequence[float]) -> dict[str, float]:
    """Median, min and max of some samples (and how many there were)."""
    values = [float(v) for v in values]
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "samples": len(values)}


def _timed(call: Callable[[], Any]) -> float:
    """Wall-clock seconds of ``call()``, waiting for its JAX results."""
    start = time.perf_counter()
    jax.block_until_ready(call())
    return time.perf_counter() - start


@contextlib.contextmanager
def _no_gc():
    """Keep Python's garbage collector out of the timed region."""
    enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _interleave(samplers: dict[str, Callable[[int], float]], rounds: int) -> dict[str, list[float]]:
    """Call every sampler once per round, rotating the order from round to round.

    ``samplers[name](round)`` returns one timing in seconds. Interleaving lets load changes on
    a shared machine hit all of them alike; rotating removes any first/last-in-round bias.
    """
    names = list(samplers)
    out: dict[str, list[float]] = {name: [] for name in names}
    with _no_gc():
        for r in range(rounds):
            shift = r % len(names)
            for name in names[shift:] + names[:shift]:
                out[name].append(samplers[name](r))
    return out


def _paired_ratios(num: Sequence[float], den: Sequence[float]) -> list[float]:
    return [a / b for a, b in zip(num, den)]


# --------------------------------------------------------------------------- LeNet5


def _lenet5_model():
    """The project's Flax LeNet5 for 28x28x1 inputs (``supjax_app.models``), or a local one."""
    try:
        from supjax_app.models import lenet5_for

        return lenet5_for((28, 28, 1), num_classes=10)
    except ImportError:  # pragma: no cover - the train extra ships flax and the model
        return _local_lenet5()


def _local_lenet5():  # pragma: no cover - used only without supjax_app.train
    import flax.linen as nn

    class LeNet5(nn.Module):
        @nn.compact
        def __call__(self, x):
            x = nn.max_pool(nn.relu(nn.Conv(6, (5, 5), padding="SAME", name="conv1")(x)), (2, 2), (2, 2))
            x = nn.max_pool(nn.relu(nn.Conv(16, (5, 5), padding="VALID", name="conv2")(x)), (2, 2), (2, 2))
            x = x.reshape((x.shape[0], -1))
            x = nn.relu(nn.Dense(120, name="fc1")(x))
            x = nn.relu(nn.Dense(84, name="fc2")(x))
            return nn.Dense(10, name="fc3")(x)

    return LeNet5()


def lenet5_rules():
    """The tutorial's five rules (``supjax_app.models.lenet5_rules`` when available)."""
    from supjax.layers import LayerRule

    try:
        from supjax_app.models import lenet5_rules as rules

        return tuple(rules())
    except ImportError:  # pragma: no cover
        return (
            LayerRule("conv1/kernel", is_lower_clip=True, min_num=10),
            LayerRule("conv2/kernel", is_lower_clip=True, min_num=50),
            LayerRule("fc1/kernel"),
            LayerRule("fc2/kernel"),
            LayerRule("fc3/kernel", min_num=50),
        )


def _random_masks(state, seed: int):
    """``state`` with half of every keep-mask suppressed (a realistic mid-training state)."""
    rng = np.random.default_rng(seed)
    masks = tuple(jnp.asarray(rng.random(m.shape) < 0.5) for m in state.keep_masks)
    return state._replace(keep_masks=masks)


def measure_step_overhead(counts: _Counts, seed: int = 0) -> dict[str, Any]:
    """Time bare SGD, ``chain(sgd, suppress)`` and ``chain(suppress_gradients, sgd)`` steps.

    The suppressed steps never operate (the schedule starts at step 1e6) but carry masks with
    half the weights suppressed, so they do all a non-operating step does.

    >>> fig = measure_step_overhead(_Counts(quick=True), seed=0)  # doctest: +SKIP
    >>> sorted(fig), sorted(fig["detail"]["step_ms"]), fig["median"] > 0  # doctest: +SKIP
    (['detail', 'max', 'median', 'min', 'samples'], ['bare', 'suppress'], True)
    """
    import optax

    from supjax import SuppressSchedule, SuppressState, find_suppress_state, suppress, suppress_gradients

    model = _lenet5_model()
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

    times = _interleave({name: sampler(name) for name in variants}, counts.step_rounds)
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
        returns_ms[name] = _stats(samples)
    for name in variants:
        if name != "bare" and int(find_suppress_state(runs[name][2]).operations):
            raise RuntimeError(f"the {name} step operated while timed")
    ratio = _stats(_paired_ratios(times["suppress"], times["bare"]))
    ratio_gradients = (
        _stats(_paired_ratios(times["suppress_gradients"], times["bare"])) if "suppress_gradients" in times else None
    )
    return {
        **ratio,
        "detail": {
            "step_ms": {name: _stats([t * 1e3 for t in ts]) for name, ts in times.items()},
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


# --------------------------------------------------------------------------- one operation


def _lenet5_weights(shapes: dict[str, tuple[int, ...]], seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {name: rng.normal(0.0, 0.1, shape).astype(np.float32) for name, shape in shapes.items()}


def _operation_timer(
    weights: dict[str, np.ndarray], rules, reference_parity: bool = False, after: float | None = None
):
    """A jitted operation over ``weights`` (``name/kernel`` paths), and its plans.

    Returns ``(plans, run)`` where ``run(sparsity)`` times one operation (targets from
    ``_SPARSITIES``) from fresh masks, or from the state an operation at ``after`` left.
    """
    from supjax.layers import select_layers
    from supjax.operation import plan_layers, suppress_operation
    from supjax.schedule import stop_count

    params = {name: {"kernel": jnp.asarray(w)} for name, w in weights.items()}
    plans = plan_layers(select_layers(params, rules), reference_parity)
    ws = [params[p.path_name.split("/")[0]]["kernel"] for p in plans]
    keeps = [jnp.ones(w.shape, bool) for w in ws]
    counts = jnp.zeros(len(plans), jnp.int32)
    key = jax.random.PRNGKey(0)
    operation = jax.jit(
        lambda w, k, c, s, key: suppress_operation(plans, w, k, c, s, key, reference_parity)
    )
    stops = {
        s: jnp.asarray([stop_count(p.size, p.rule.min_num, s) for p in plans], jnp.int32)
        for s in _SPARSITIES
    }
    for s in _SPARSITIES:  # compile, then warm up every target once
        jax.block_until_ready(operation(ws, keeps, counts, stops[s], key))
    if after is not None:
        first = operation(ws, keeps, counts, stops[after], key)
        keeps, counts = list(first.keep), first.counts
        ws = [w - d for w, d in zip(ws, first.delta)]  # where that operation's step lands
        jax.block_until_ready(ws)

    def run(sparsity: float) -> float:
        return _timed(lambda: operation(ws, keeps, counts, stops[sparsity], key))

    return plans, run


def measure_lenet5_operation(counts: _Counts, seed: int = 0) -> dict[str, Any]:
    """Time one operation over LeNet5's five layers (Flax layout), and each layer alone.

    >>> fig = measure_lenet5_operation(_Counts(quick=True), seed=0)  # doctest: +SKIP
    >>> {path: layer["size"] for path, layer in fig["detail"]["layers"].items()}  # doctest: +SKIP
    {'conv1/kernel': 150, 'conv2/kernel': 2400, 'fc1/kernel': 48000, 'fc2/kernel': 10080, 'fc3/kernel': 840}
    """
    rules = lenet5_rules()
    weights = _lenet5_weights(LENET5_FLAX_SHAPES, seed)
    plans, run = _operation_timer(weights, rules)
    samplers = {"all": lambda r: run(_SPARSITIES[r % len(_SPARSITIES)])}
    if not counts.quick:
        for name, rule in zip(weights, rules):
            _, layer_run = _operation_timer({name: weights[name]}, [rule])
            samplers[name] = lambda r, f=layer_run: f(_SPARSITIES[r % len(_SPARSITIES)])
        _, parity_run = _operation_timer(weights, rules, reference_parity=True)
        samplers["reference_parity"] = lambda r: parity_run(_SPARSITIES[r % len(_SPARSITIES)])
    times = _interleave(samplers, counts.op_repeats)
    ms = {name: _stats([t * 1e3 for t in ts]) for name, ts in times.items()}
    return {
        **ms.pop("all"),
        "detail": {
            "layers": {p.path_name: {"size": p.size, "path": p.method} for p in plans},
            "per_layer_ms": {k: v for k, v in ms.items() if k != "reference_parity"},
            "reference_parity_ms": ms.get("reference_parity"),
            "what": "jitted suppress_operation over the five LeNet5 weights (Flax layout), fresh masks, "
                    f"targets cycled through {list(_SPARSITIES)}",
        },
    }


# --------------------------------------------------------------------------- MindSpore figures


def mindspore_figures() -> dict[str, Callable[..., Any]] | None:
    """The MindArmour/compat measurements, from the ``supjax.bench`` entry-point group.

    ``compat_mindspore`` registers ``compat_mindspore.bench:FIGURES`` there: a mapping
    ``{"reference_speedup": f(counts, seed), "compat_step_ratio": f(counts, seed, mode)}``.
    None when no such package is installed (or it cannot be imported here, e.g. without
    MindSpore), so that supjax's application never imports compat_mindspore by name.

    >>> figs = mindspore_figures()
    >>> figs is None or sorted(figs) == ["compat_step_ratio", "reference_speedup"]
    True
    """
    for entry in importlib.metadata.entry_points(group="supjax.bench"):
        try:
            return dict(entry.load())
        except ImportError:
            return None
    return None


# --------------------------------------------------------------------------- selection ratio


def measure_selection_ratio(
    counts: _Counts, sizes: Sequence[int] = SELECTION_SIZES, seed: int = 0
) -> dict[str, Any]:
    """One operation on a single layer of each size over one ``w * 2`` pass, interleaved.

    >>> fig = measure_selection_ratio(_Counts(quick=True), sizes=(1_000,), seed=0)
    >>> fig["detail"]["size"], sorted(fig["detail"]["by_size"]), fig["median"] > 0
    (1000, ['1000'], True)
    """
    from supjax.layers import LayerRule

    double = jax.jit(lambda w: w * 2)
    by_size: dict[str, Any] = {}
    for size in sizes:
        weights = _lenet5_weights({"layer": (int(size),)}, seed)
        plans, run = _operation_timer(weights, [LayerRule("layer/kernel")])
        w = jnp.asarray(weights["layer"])
        jax.block_until_ready(double(w))
        times = _interleave(
            {
                "operation": lambda r: run(_SPARSITIES[r % len(_SPARSITIES)]),
                "double": lambda r: _timed(lambda: double(w)),
            },
            counts.select_repeats,
        )
        by_size[str(int(size))] = {
            **_stats(_paired_ratios(times["operation"], times["double"])),
            "path": plans[0].method,
            "operation_ms": _stats([t * 1e3 for t in times["operation"]]),
            "double_ms": _stats([t * 1e3 for t in times["double"]]),
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


# --------------------------------------------------------------------------- the report


def _goal_met(key: str, value: float | None) -> bool | None:
    if value is None:
        return None
    op, bound = GOALS[key]
    return value <= bound if op == "<=" else value >= bound


def _environment() -> dict[str, Any]:
    return {
        "jax": jax.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "backend": jax.default_backend(),
        "devices": jax.device_count(),
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def run_bench(
    quick: bool = False,
    sizes: Sequence[int] | None = None,
    reference: bool = True,
    compat: bool = True,
    compat_mode: str = "graph",
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Measure every figure and return the JSON report (a dict).

    >>> report = run_bench(quick=True, sizes=(10_000,), reference=False, compat=False)  # doctest: +SKIP
    >>> report["reference_speedup"], report["figures"]["compat_step_ratio"]["note"]  # doctest: +SKIP
    (None, 'skipped (--no-compat)')
    >>> report["step_overhead_ratio"] > 0, report["quick"]  # doctest: +SKIP
    (True, True)
    """
    counts = _Counts(quick)
    say = progress or (lambda _msg: None)
    if sizes is None:
        sizes = QUICK_SELECTION_SIZES if quick else SELECTION_SIZES
    started = time.perf_counter()
    figures: dict[str, dict[str, Any] | None] = {}
    notes: dict[str, str] = {}
    phase_s: dict[str, float] = {}
    clock = [time.perf_counter()]

    def done(key: str) -> None:
        now = time.perf_counter()
        phase_s[key] = now - clock[0]
        clock[0] = now

    say("LeNet5 train step: bare SGD vs suppress (interleaved)")
    figures["step_overhead_ratio"] = measure_step_overhead(counts, seed)
    done("step_overhead_ratio")
    say("one suppress operation over LeNet5's five layers")
    figures["lenet5_operation_ms"] = measure_lenet5_operation(counts, seed)
    done("lenet5_operation_ms")
    if reference:
        say("MindArmour update_mask vs ours")
        plugin = mindspore_figures()
        figures["reference_speedup"] = None if plugin is None else plugin["reference_speedup"](counts, seed)
        if figures["reference_speedup"] is None:
            notes["reference_speedup"] = "mindarmour is not installed in this environment"
    else:
        figures["reference_speedup"] = None
        notes["reference_speedup"] = "skipped (--no-reference)"
    done("reference_speedup")
    say(f"selection ratio at sizes {list(sizes)}")
    figures["selection_ratio"] = measure_selection_ratio(counts, sizes, seed)
    done("selection_ratio")
    if compat:
        say("compat_mindspore step vs MindArmour step")
        plugin = mindspore_figures()
        if plugin is None:
            figures["compat_step_ratio"], why = None, "compat_mindspore (with MindSpore) is not installed in this environment"
        else:
            figures["compat_step_ratio"], why = plugin["compat_step_ratio"](counts, seed, compat_mode)
        if why:
            notes["compat_step_ratio"] = why
    else:
        figures["compat_step_ratio"] = None
        notes["compat_step_ratio"] = "skipped (--no-compat)"
    done("compat_step_ratio")

    report: dict[str, Any] = {}
    for key in GOALS:
        fig = figures[key]
        report[key] = None if fig is None else float(fig["median"])
    report["figures"] = {}
    for key, fig in figures.items():
        op, bound = GOALS[key]
        entry = {"goal": f"{op} {bound:g}", "unit": _UNITS[key]}
        if fig is None:
            entry.update(median=None, min=None, max=None, met=None, note=notes.get(key, ""))
        else:
            entry.update(fig)
            entry["met"] = _goal_met(key, fig["median"])
        report["figures"][key] = entry
    report["goals_met"] = {key: report["figures"][key]["met"] for key in GOALS}
    report["quick"] = bool(quick)
    report["environment"] = _environment()
    report["elapsed_s"] = time.perf_counter() - started
    report["phase_s"] = phase_s
    report["timestamp"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    return report


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "ms":
        return f"{value:.3f}"
    return f"{value:.3f}" if value < 100 else f"{value:.0f}"


def _rows(report: dict[str, Any]) -> list[tuple[str, ...]]:
    rows = []
    for key in GOALS:
        fig = report["figures"][key]
        met = fig["met"]
        verdict = "n/a" if met is None else ("met" if met else "NOT met")
        unit = fig["unit"]
        rows.append((key, _fmt(fig["median"], unit), _fmt(fig["min"], unit), _fmt(fig["max"], unit),
                     fig["goal"] + ("" if unit == "x" else f" {unit}"), verdict))
    return rows


_HEADER = ("figure", "median", "min", "max", "goal", "")


def format_table(report: dict[str, Any]) -> str:
    """The plain-text table of a report.

    >>> rep = {"figures": {k: {"median": None, "min": None, "max": None, "met": None,
    ...        "unit": "x", "goal": f"{GOALS[k][0]} {GOALS[k][1]:g}"} for k in GOALS}}
    >>> format_table(rep).splitlines()[0].split()[:4]
    ['figure', 'median', 'min', 'max']
    """
    rows = [_HEADER, *_rows(report)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(_HEADER))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def print_table(report: dict[str, Any], file=None) -> None:
    """Print the table with rich when it is installed, else as plain text."""
    file = file or sys.stdout
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        print(format_table(report), file=file)
        return
    table = Table(title="supjax bench" + (" (--quick: smoke run, not a measurement)" if report.get("quick") else ""))
    for i, name in enumerate(_HEADER):
        table.add_column(name, justify="left" if i in (0, 4, 5) else "right")
    for row in _rows(report):
        style = {"met": "green", "NOT met": "red"}.get(row[-1])
        table.add_row(*row[:-1], f"[{style}]{row[-1]}[/]" if style else row[-1])
    Console(file=file).print(table)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``supjax bench``'s options to ``parser``.

    >>> parser = argparse.ArgumentParser(prog="supjax bench")
    >>> add_arguments(parser)
    >>> args = parser.parse_args(["--quick", "--sizes", "1e4", "1e6", "--no-compat"])
    >>> args.quick, args.sizes, args.no_compat, args.compat_mode, args.json
    (True, [10000.0, 1000000.0], True, 'graph', None)
    """
    parser.add_argument("--json", metavar="PATH", default=None,
                        help="write the figures as JSON to PATH")
    parser.add_argument("--quick", action="store_true",
                        help="tiny repeat counts and small layers: a smoke run (CI), not a measurement")
    parser.add_argument("--sizes", type=float, nargs="+", metavar="N", default=None,
                        help="single-layer sizes of the selection ratio (default 1e4 1e5 1e6 1e7; "
                             "the goal is judged at the largest)")
    parser.add_argument("--no-reference", action="store_true",
                        help="do not time MindArmour's update_mask even when it is installed")
    parser.add_argument("--no-compat", action="store_true",
                        help="do not time compat_mindspore's step even when MindSpore is installed")
    parser.add_argument("--compat-mode", choices=("graph", "pynative"), default="graph",
                        help="MindSpore mode of compat_mindspore's timed step (default graph)")
    parser.add_argument("--seed", type=int, default=0, help="seed of weights and data (default 0)")


def run(args: argparse.Namespace) -> int:
    """Run the bench for parsed arguments; print the table, write the JSON; return 0.

    Returns 2, before measuring anything, when ``--sizes`` holds a size below 1.

    >>> parser = argparse.ArgumentParser(prog="supjax bench")
    >>> add_arguments(parser)
    >>> run(parser.parse_args(["--sizes", "0"]))  # the error message goes to stderr
    2
    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "bench.json")
    >>> with contextlib.redirect_stdout(io.StringIO()):  # the table  # doctest: +SKIP
    ...     status = run(parser.parse_args(["--quick", "--no-compat", "--json", path]))
    >>> status, json.load(open(path))["figures"]["compat_step_ratio"]["note"]  # doctest: +SKIP
    (0, 'skipped (--no-compat)')
    """
    sizes = None if args.sizes is None else [int(s) for s in args.sizes]
    if sizes is not None and any(s < 1 for s in sizes):
        print("supjax bench: error: --sizes must be positive", file=sys.stderr)
        return 2
    report = run_bench(
        quick=args.quick,
        sizes=sizes,
        reference=not args.no_reference,
        compat=not args.no_compat,
        compat_mode=args.compat_mode,
        seed=args.seed,
        progress=lambda msg: print(f"supjax bench: {msg} ...", file=sys.stderr, flush=True),
    )
    print_table(report)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(report, fh, indent=2)
            fh.write("\n")
        print(f"supjax bench: wrote {args.json}", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m supjax_app.bench.figures [--json PATH] [--quick] ...``.

    >>> main(["--quick", "--sizes", "-1"])  # rejected before any measurement
    2
    >>> import tempfile
    >>> path, table = os.path.join(tempfile.mkdtemp(), "bench.json"), io.StringIO()
    >>> with contextlib.redirect_stdout(table):  # doctest: +SKIP
    ...     status = main(["--quick", "--no-reference", "--no-compat", "--json", path])
    >>> status, "step_overhead_ratio" in table.getvalue(), json.load(open(path))["quick"]  # doctest: +SKIP
    (0, True, True)
    """
    parser = argparse.ArgumentParser(prog="supjax bench", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
