"""How ``supjax bench`` times things: repeat counts, samples, interleaved rounds, paired ratios.

Shared by the JAX figures (:mod:`supjax_app.bench.figures`) and the MindSpore ones
(``compat_mindspore.bench``), so that every figure is summarised the same way: the median of
several timed samples after a warm-up, with min and max beside it.

>>> samples = interleave({"a": lambda r: 2.0 + r, "b": lambda r: 1.0 + r}, rounds=3)
>>> stats(paired_ratios(samples["a"], samples["b"]))["median"]
1.5
"""

from __future__ import annotations

import contextlib
import gc
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import jax

__all__ = [
    "Counts",
    "interleave",
    "paired_ratios",
    "stats",
    "timed",
]


class Counts:
    """Repeat counts of one bench run: tiny with ``quick`` (a smoke run), else a measurement.

    >>> Counts(quick=True).step_rounds, Counts(quick=False).step_rounds
    (3, 21)
    """

    def __init__(self, quick: bool) -> None:
        self.quick = quick
        self.step_rounds = 3 if quick else 21
        self.step_batch = 2 if quick else 10  # train steps per timed sample
        self.step_warmup = 1 if quick else 3
        self.op_repeats = 3 if quick else 30
        self.select_repeats = 2 if quick else 7
        self.reference_repeats = 1 if quick else 5
        self.compat_calls = 1 if quick else 3


def stats(values: Sequence[float]) -> dict[str, float]:
    """Median, min and max of some samples (and how many there were).

    >>> stats([3, 1, 2])
    {'median': 2.0, 'min': 1.0, 'max': 3.0, 'samples': 3}
    """
    values = [float(v) for v in values]
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "samples": len(values)}


def timed(call: Callable[[], Any]) -> float:
    """Wall-clock seconds of ``call()``, waiting for its JAX results.

    >>> import jax.numpy as jnp
    >>> timed(lambda: jnp.ones(3) * 2) > 0
    True
    """
    start = time.perf_counter()
    jax.block_until_ready(call())
    return time.perf_counter() - start


@contextlib.contextmanager
def _no_gc() -> Iterator[None]:
    """Keep Python's garbage collector out of the timed region."""
    enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def interleave(samplers: dict[str, Callable[[int], float]], rounds: int) -> dict[str, list[float]]:
    """Call every sampler once per round, rotating the order from round to round.

    ``samplers[name](round)`` returns one timing in seconds. Interleaving lets load changes on
    a shared machine hit all of them alike; rotating removes any first/last-in-round bias. The
    garbage collector stays off meanwhile.

    >>> order = []
    >>> samples = interleave({n: lambda r, n=n: order.append(n) or float(r) for n in "ab"}, rounds=2)
    >>> order, samples
    (['a', 'b', 'b', 'a'], {'a': [0.0, 1.0], 'b': [0.0, 1.0]})
    """
    names = list(samplers)
    out: dict[str, list[float]] = {name: [] for name in names}
    with _no_gc():
        for r in range(rounds):
            shift = r % len(names)
            for name in names[shift:] + names[:shift]:
                out[name].append(samplers[name](r))
    return out


def paired_ratios(num: Sequence[float], den: Sequence[float]) -> list[float]:
    """Round-by-round ratios ``num[i] / den[i]`` of two interleaved sample lists.

    >>> paired_ratios([2.0, 3.0], [1.0, 2.0])
    [2.0, 1.5]
    """
    return [a / b for a, b in zip(num, den)]
