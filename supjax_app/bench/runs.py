"""What a user waits for: compiling the train step, the fit loop, a whole ``supjax train --quick``.

Each figure is a ratio (or a wall time) measured in one process, the median of several rounds:

* ``compile_ratio`` (:func:`measure_compile_ratio`): lowering plus compiling ``supjax train``'s
  suppressed LeNet5 train step (28x28x1, batch 32, ``chain(sgd, suppress)``) over the same step
  with bare SGD, in-memory caches cleared and the persistent cache off. Goal <= 1.5. The same
  ratio for a 4-layer CNN with a 200704-weight dense layer is in the detail.
* ``train_loop_ratio`` (:func:`measure_train_loop_ratio`): ``supjax train``'s fit loop
  (:func:`supjax_app.train.loop.fit`, host batches, metrics, an evaluation per epoch) per step
  over a bare jitted SGD step called in a Python loop on device-resident batches. Goal <= 1.15.
* ``quick_seconds`` (:func:`measure_quick_seconds`): wall time of ``supjax train --quick`` in a
  fresh process with a warm compilation cache (the figure; goal <= 8 s) and with an empty one
  (``detail.cold_s``).

>>> sorted(CNN4_SHAPES)
['conv1', 'conv2', 'conv3', 'fc']
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from supjax import LayerRule, SuppressSchedule, suppress
from supjax_app.bench.timing import Counts, interleave, paired_ratios, stats
from supjax_app.models import init_params, lenet5_for, lenet5_rules
from supjax_app.train.loop import fit, init_state, make_predict, make_train_step

__all__ = [
    "CNN4_SHAPES",
    "QUICK_ARGS",
    "bare_step_timer",
    "fit_seconds_per_step",
    "measure_compile_ratio",
    "measure_quick_seconds",
    "measure_train_loop_ratio",
]

#: The 4-layer CNN of ``compile_ratio``'s detail (28x28x1 inputs): its dense layer holds 200704 weights.
CNN4_SHAPES = {"conv1": (3, 3, 1, 16), "conv2": (3, 3, 16, 32), "conv3": (3, 3, 32, 32), "fc": (6272, 32)}

#: ``supjax train`` options timed by ``quick_seconds`` (a smaller run under ``supjax bench --quick``).
QUICK_ARGS = ("--quick",)
_SMOKE_ARGS = ("--epochs", "1", "--start-epoch", "1", "--train-size", "160", "--test-size", "100",
               "--attacks", "none", "--attack-size", "50")


class _CNN4(nn.Module):
    """Three 3x3 convolutions (16, 32, 32 channels, SAME), a 2x2 max-pool, one dense layer to 32 classes."""

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        for name, (_, _, _, out) in list(CNN4_SHAPES.items())[:3]:
            x = nn.relu(nn.Conv(out, (3, 3), padding="SAME", name=name)(x))
        x = nn.max_pool(x, (2, 2), strides=(2, 2))
        return nn.Dense(CNN4_SHAPES["fc"][1], name="fc")(x.reshape(x.shape[0], -1))


def _lenet_apply(image_shape: Sequence[int]) -> tuple[Callable, Any, tuple[LayerRule, ...]]:
    model = lenet5_for(image_shape, 10)
    return (lambda p, x, rng: model.apply({"params": p}, x)), init_params(model, image_shape, 0), lenet5_rules()


def _cnn4_apply() -> tuple[Callable, Any, tuple[LayerRule, ...]]:
    model = _CNN4()
    rng = np.random.default_rng(0)
    params = {name: {"kernel": jnp.asarray(rng.normal(0, 0.05, shape).astype(np.float32)),
                     "bias": jnp.zeros(shape[-1], jnp.float32)} for name, shape in CNN4_SHAPES.items()}
    rules = tuple(LayerRule(f"{name}/kernel") for name in CNN4_SHAPES)
    return (lambda p, x, rng: model.apply({"params": p}, x)), params, rules


def _compile_seconds(apply_fn: Callable, params: Any, rules: Sequence[LayerRule], suppressed: bool,
                     image_shape: Sequence[int], fuse_layers: bool = True) -> tuple[float, float, int]:
    """Wall and process CPU seconds to lower and compile ``supjax train``'s step from scratch, and its HLO op count."""
    schedule = SuppressSchedule.from_steps(100, 1099, 100)
    tx = (optax.chain(optax.sgd(0.05), suppress(rules, schedule, fuse_layers=fuse_layers)) if suppressed
          else optax.sgd(0.05))
    return _step_compile_seconds(apply_fn, params, tx, [str(r.pattern) for r in rules], image_shape)


def _step_compile_seconds(apply_fn: Callable, params: Any, tx: optax.GradientTransformation, watch: Sequence[str],
                          image_shape: Sequence[int]) -> tuple[float, float, int]:
    """:func:`_compile_seconds` for any ``tx``: the train step (batch 32) with in-memory caches cleared."""
    step = make_train_step(apply_fn, tx, watch)
    state = init_state(params, tx, jax.random.PRNGKey(0), 0)
    x, y = np.zeros((32, *image_shape), np.float32), np.zeros(32, np.int32)
    jax.clear_caches()
    start, cpu = time.perf_counter(), time.process_time()
    lowered = step.lower(state, x, y)
    lowered.compile()
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    ops = sum(1 for line in lowered.as_text().splitlines() if " = " in line)
    return elapsed, cpu, ops


def measure_compile_ratio(counts: Counts, seed: int = 0) -> dict[str, Any]:
    """Compile time of the suppressed LeNet5 train step over the dense one (and the 4-layer CNN's).

    >>> fig = measure_compile_ratio(Counts(quick=True))  # doctest: +SKIP
    >>> fig["median"] > 0, sorted(fig["detail"]["cnn4"])  # doctest: +SKIP
    (True, ['cpu_ratio', 'dense_s', 'ratio', 'suppressed_s'])
    """
    del seed
    rounds = 1 if counts.quick else 3
    models = {"lenet5": (_lenet_apply((28, 28, 1)), (28, 28, 1)), "cnn4": (_cnn4_apply(), (28, 28, 1))}
    if counts.quick:
        del models["cnn4"]
    saved = jax.config.jax_enable_compilation_cache
    jax.config.update("jax_enable_compilation_cache", False)  # time compiling, not reading a cache
    try:
        ops: dict[str, int] = {}
        cpu: dict[str, list[float]] = {}

        def sampler(name: str, kind: str) -> Callable[[int], float]:
            (apply_fn, params, rules), shape = models[name]
            key = f"{name}_{kind}"

            def sample(_round: int) -> float:
                seconds, cpu_seconds, ops[key] = _compile_seconds(
                    apply_fn, params, rules, kind != "dense", shape, fuse_layers=kind != "per_layer")
                cpu.setdefault(key, []).append(cpu_seconds)
                return seconds

            return sample

        kinds = {"lenet5": ("dense", "suppressed", "per_layer"), "cnn4": ("dense", "suppressed")}
        samplers = {f"{name}_{kind}": sampler(name, kind) for name in models for kind in kinds[name]}
        samples = interleave(samplers, rounds)
    finally:
        jax.config.update("jax_enable_compilation_cache", saved)
    ratio = stats(paired_ratios(samples["lenet5_suppressed"], samples["lenet5_dense"]))
    detail: dict[str, Any] = {
        "lenet5": {"dense_s": stats(samples["lenet5_dense"]), "suppressed_s": stats(samples["lenet5_suppressed"]),
                   "per_layer_s": stats(samples["lenet5_per_layer"]),
                   "per_layer_ratio": stats(paired_ratios(samples["lenet5_per_layer"], samples["lenet5_dense"]))},
        "cpu_ratio": stats(paired_ratios(cpu["lenet5_suppressed"], cpu["lenet5_dense"])),
        "hlo_ops": ops,
        "rounds": rounds,
        "what": "lower+compile of supjax train's LeNet5 step (28x28x1, batch 32): chain(sgd, suppress) / sgd, "
                "(per_layer: suppress(..., fuse_layers=False), one operation per layer), "
                "wall clock (cpu_ratio: this process's CPU time, steadier on a loaded machine), in-memory "
                "caches cleared, persistent cache off, interleaved rounds",
    }
    if "cnn4" in models:
        detail["cnn4"] = {
            "dense_s": stats(samples["cnn4_dense"]), "suppressed_s": stats(samples["cnn4_suppressed"]),
            "ratio": stats(paired_ratios(samples["cnn4_suppressed"], samples["cnn4_dense"])),
            "cpu_ratio": stats(paired_ratios(cpu["cnn4_suppressed"], cpu["cnn4_dense"])),
        }
    return {**ratio, "detail": detail}


def _random_data(n: int, image_shape: Sequence[int], seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.random((n, *image_shape), dtype=np.float32), rng.integers(0, 10, n).astype(np.int32)


def fit_seconds_per_step(
    image_shape: Sequence[int], batch_size: int, steps: int, schedule: SuppressSchedule | None,
    seed: int = 0, test_fraction: float = 1 / 6,
) -> float:
    """Seconds per step of ``supjax train``'s fit loop on a LeNet5 (one epoch of ``steps`` steps).

    ``schedule`` None trains with bare SGD, else ``chain(sgd, suppress(lenet5_rules(), schedule))``.
    The test set (evaluated once, at the end of the epoch) is ``test_fraction`` of the train set,
    Fashion-MNIST's proportion. The step is compiled and run once before the timed epoch.

    >>> fit_seconds_per_step((8, 8, 1), 8, 4, None) > 0
    True
    """
    apply_fn, params, rules = _lenet_apply(image_shape)
    tx = optax.sgd(0.05) if schedule is None else optax.chain(optax.sgd(0.05), suppress(rules, schedule, seed=seed))
    watch = [str(r.pattern) for r in rules]
    step, predict = make_train_step(apply_fn, tx, watch), make_predict(apply_fn)
    x, y = _random_data(steps * batch_size, image_shape, seed)
    x_test, y_test = x[: max(1, int(len(x) * test_fraction))], y[: max(1, int(len(x) * test_fraction))]
    state = init_state(params, tx, jax.random.PRNGKey(seed), seed)
    jax.block_until_ready(step(state, x[:batch_size], y[:batch_size]))  # compile and warm up
    predict(params, x_test)
    _, history = fit(state, step, predict, x, y, x_test, y_test, epochs=1, batch_size=batch_size, watch=watch)
    return history.seconds / steps


def bare_step_timer(image_shape: Sequence[int], batch_size: int, steps: int, seed: int = 0) -> Callable[[int], float]:
    """A timer of LeNet5's bare jitted SGD step, the floor of any fit loop on the same shapes.

    Compiles the step (no suppression, ``optax.sgd(0.05)``) and puts ``steps`` random batches on
    the device, then returns ``timer(round) -> seconds per step``: the step called in a Python loop
    over those batches, from the same initial weights each round.

    >>> timer = bare_step_timer((8, 8, 1), 4, 3)
    >>> timer(0) > 0
    True
    """
    apply_fn, params, _ = _lenet_apply(image_shape)
    tx = optax.sgd(0.05)

    @jax.jit
    def step(p, opt_state, xb, yb):
        def loss(q):
            return optax.softmax_cross_entropy_with_integer_labels(apply_fn(q, xb, None), yb).mean()

        updates, opt_state = tx.update(jax.grad(loss)(p), opt_state, p)
        return optax.apply_updates(p, updates), opt_state

    opt_state = tx.init(params)
    x, y = _random_data(steps * batch_size, image_shape, seed)
    batches = [(jax.device_put(x[i * batch_size:(i + 1) * batch_size]),
                jax.device_put(y[i * batch_size:(i + 1) * batch_size])) for i in range(steps)]
    jax.block_until_ready(step(params, opt_state, *batches[0]))

    def timer(_round: int) -> float:
        p, s = params, opt_state
        start = time.perf_counter()
        for xb, yb in batches:
            p, s = step(p, s, xb, yb)
        jax.block_until_ready(p)
        return (time.perf_counter() - start) / steps

    return timer


def measure_train_loop_ratio(counts: Counts, seed: int = 0) -> dict[str, Any]:
    """``fit``'s time per step over a bare jitted SGD step looped on device batches (LeNet5, 28x28, batch 32).

    >>> fig = measure_train_loop_ratio(Counts(quick=True))  # doctest: +SKIP
    >>> fig["median"] > 0, sorted(fig["detail"]["step_ms"])  # doctest: +SKIP
    (True, ['bare', 'fit'])
    """
    shape, batch = (28, 28, 1), 32
    steps = 20 if counts.quick else 300
    rounds = 1 if counts.quick else 5
    bare = bare_step_timer(shape, batch, steps, seed)
    times = interleave({"fit": lambda r: fit_seconds_per_step(shape, batch, steps, None, seed), "bare": bare}, rounds)
    return {
        **stats(paired_ratios(times["fit"], times["bare"])),
        "detail": {
            "step_ms": {name: stats([t * 1e3 for t in ts]) for name, ts in times.items()},
            "steps": steps,
            "rounds": rounds,
            "what": "supjax_app.train.loop.fit (bare SGD, one epoch, host batches, metrics, one evaluation on "
                    "a test set 1/6 of the train set) per step / a jitted SGD step in a Python loop on "
                    "device-resident batches; LeNet5 28x28x1, batch 32",
        },
    }


def _train_seconds(args: Sequence[str], cache_home: Path, out: Path) -> float:
    """Wall seconds of ``python -m supjax_app train ARGS`` in a fresh process, cache under ``cache_home``."""
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "XDG_CACHE_HOME": str(cache_home),
           "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "supjax_app", "train", *args, "--out", str(out)],
                          env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"supjax train {' '.join(args)} failed: {done.stderr[-2000:]}")
    return elapsed


def measure_quick_seconds(counts: Counts, seed: int = 0) -> dict[str, Any]:
    """Wall time of ``supjax train --quick`` in a fresh process: warm compilation cache (the figure) and cold.

    Each round uses a new, empty cache folder: a cold run fills it, a warm run reuses it.
    Under ``supjax bench --quick`` a one-epoch run on 160 samples stands in for ``--quick``.

    >>> fig = measure_quick_seconds(Counts(quick=True))  # doctest: +SKIP
    >>> fig["median"] > 0, fig["detail"]["cold_s"]["median"] > 0  # doctest: +SKIP
    (True, True)
    """
    args = [*(_SMOKE_ARGS if counts.quick else QUICK_ARGS), "--seed", str(seed)]
    rounds = 1 if counts.quick else 2
    cold, warm = [], []
    for _ in range(rounds):
        with tempfile.TemporaryDirectory(prefix="supjax-bench-") as tmp:
            cold.append(_train_seconds(args, Path(tmp) / "cache", Path(tmp) / "out"))
            warm.append(_train_seconds(args, Path(tmp) / "cache", Path(tmp) / "out"))
    return {
        **stats(warm),
        "detail": {
            "cold_s": stats(cold),
            "warm_s": stats(warm),
            "saved_s": statistics.median(cold) - statistics.median(warm),
            "argv": ["supjax", "train", *args],
            "what": "wall time of a fresh `python -m supjax_app train` process with a warm persistent "
                    "compilation cache (the figure) and with an empty one (cold_s)",
        },
    }
