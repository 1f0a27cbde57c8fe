"""Benchmark ``supjax.kth_smallest.kth_smallest`` against one elementwise pass.

The figure of merit is the *pass ratio*: the time of one jitted
``kth_smallest(x, k)`` call (``k`` traced) divided by the time of one jitted
``x * 2`` over the same float32 array.  ``jnp.sort`` is timed for comparison.

Usage::

    PYTHONPATH=. python supjax_app/bench/selection.py [--sizes 1e4 1e6] [--repeats 9] [--no-sort]

or, from Python, ``measure_selection_ratio(sizes, repeats)``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from supjax.kth_smallest import kth_smallest

__all__ = ["measure_selection_ratio", "format_table", "main"]

DEFAULT_SIZES = (10_000, 100_000, 1_000_000, 10_000_000)


def _stats_ms(seconds: Sequence[float]) -> dict[str, float]:
    """Median/min/max of timings, in milliseconds."""
    ms = [s * 1e3 for s in seconds]
    return {"median": statistics.median(ms), "min": min(ms), "max": max(ms)}


def _time_call(fn: Callable[..., Any], *args: Any) -> float:
    """Wall-clock seconds of one call, waiting for the result."""
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    return time.perf_counter() - start


def measure_selection_ratio(
    sizes: Iterable[int] = DEFAULT_SIZES,
    repeats: int = 7,
    *,
    include_sort: bool = True,
    sort_repeats: int = 3,
    seed: int = 0,
) -> dict[int, dict[str, Any]]:
    """Time ``kth_smallest``, ``x * 2`` and ``jnp.sort`` on float32 arrays.

    For each size, the three jitted functions are warmed up, then run
    ``repeats`` times interleaved (so a noisy machine affects them alike),
    each ``kth_smallest`` call with a different traced ``k``.  The result is
    checked against ``np.partition`` once per size.

    Returns ``{size: {"kth_ms": stats, "double_ms": stats, "sort_ms": stats
    or None, "ratio": median kth / median x*2, "ratio_min": min kth / min
    x*2, "sort_ratio": median sort / median x*2 or None}}`` where each stats
    is ``{"median", "min", "max"}`` in milliseconds.

    >>> r = measure_selection_ratio([1000], repeats=3, include_sort=False)
    >>> r[1000]["ratio"] > 0
    True
    """
    rng = np.random.default_rng(seed)
    select = jax.jit(kth_smallest)
    double = jax.jit(lambda a: a * 2)
    sort = jax.jit(jnp.sort)
    results: dict[int, dict[str, Any]] = {}
    for size in (int(s) for s in sizes):
        host = np.abs(rng.standard_normal(size)).astype(np.float32)
        x = jax.device_put(host)
        ks = [jnp.int32(k) for k in rng.integers(1, size + 1, repeats + 1)]
        expected = np.partition(host, int(ks[0]) - 1)[int(ks[0]) - 1]
        got = np.asarray(jax.block_until_ready(select(x, ks[0])))
        if got.view(np.uint32) != expected.view(np.uint32):
            raise AssertionError(f"kth_smallest mismatch at size {size}")
        jax.block_until_ready(double(x))
        kth_times, double_times = [], []
        for k in ks[1:]:
            double_times.append(_time_call(double, x))
            kth_times.append(_time_call(select, x, k))
        sort_stats = None
        if include_sort:
            jax.block_until_ready(sort(x))
            sort_stats = _stats_ms([_time_call(sort, x) for _ in range(sort_repeats)])
        kth_stats, double_stats = _stats_ms(kth_times), _stats_ms(double_times)
        results[size] = {
            "kth_ms": kth_stats,
            "double_ms": double_stats,
            "sort_ms": sort_stats,
            "ratio": kth_stats["median"] / double_stats["median"],
            "ratio_min": kth_stats["min"] / double_stats["min"],
            "sort_ratio": (
                None if sort_stats is None else sort_stats["median"] / double_stats["median"]
            ),
        }
    return results


def format_table(results: dict[int, dict[str, Any]]) -> str:
    """Human-readable table of :func:`measure_selection_ratio` results."""

    def cell(stats: dict[str, float] | None) -> str:
        if stats is None:
            return f"{'-':>26}"
        return f"{stats['median']:8.3f} {stats['min']:8.3f} {stats['max']:8.3f}"

    header = (
        f"{'size':>10} | {'kth_smallest med/min/max':>26} | {'x*2 med/min/max':>26} | "
        f"{'jnp.sort med/min/max':>26} | {'ratio':>6} {'r(min)':>6} {'sort':>7}"
    )
    lines = [f"jax {jax.__version__}, {jax.devices()[0].platform}, times in ms", header]
    for size, r in results.items():
        sort_ratio = "-" if r["sort_ratio"] is None else f"{r['sort_ratio']:7.1f}"
        lines.append(
            f"{size:>10} | {cell(r['kth_ms'])} | {cell(r['double_ms'])} | "
            f"{cell(r['sort_ms'])} | {r['ratio']:6.2f} {r['ratio_min']:6.2f} {sort_ratio:>7}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    """Command-line entry point: print the ratio table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", type=float, default=list(DEFAULT_SIZES))
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--sort-repeats", type=int, default=3)
    parser.add_argument("--no-sort", action="store_true", help="skip timing jnp.sort")
    args = parser.parse_args(argv)
    results = measure_selection_ratio(
        [int(s) for s in args.sizes],
        args.repeats,
        include_sort=not args.no_sort,
        sort_repeats=args.sort_repeats,
    )
    print(format_table(results))


if __name__ == "__main__":
    main()
