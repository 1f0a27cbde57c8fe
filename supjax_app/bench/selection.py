"""Benchmark ``supjax.kth_smallest.kth_smallest`` against one elementwise pass.

The figure of merit is the *pass ratio*: the time of one jitted
``kth_smallest(x, k)`` call (``k`` traced) divided by the time of one jitted
``x * 2`` over the same float32 array.  ``jnp.sort`` is timed for comparison.

Usage::

    python -m supjax_app.bench.selection [--sizes 1e4 1e6] [--repeats 9] [--no-sort]

or, from Python, ``measure_kth_smallest_ratio(sizes, repeats)``. (``supjax bench``'s
``selection_ratio`` times the whole suppress operation instead:
:func:`supjax_app.bench.figures.measure_selection_ratio`.)

>>> results = measure_kth_smallest_ratio([500], repeats=2, include_sort=False)
>>> format_table(results).splitlines()[2].split()[0]
'500'
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from supjax.kth_smallest import kth_smallest
from supjax_app.bench.timing import stats, timed

__all__ = ["DEFAULT_SIZES", "format_table", "main", "measure_kth_smallest_ratio"]

#: Array sizes of the sweep.
DEFAULT_SIZES = (10_000, 100_000, 1_000_000, 10_000_000)


def _stats_ms(seconds: Sequence[float]) -> dict[str, float]:
    """Median/min/max of timings, in milliseconds."""
    ms = stats([s * 1e3 for s in seconds])
    return {key: ms[key] for key in ("median", "min", "max")}


def measure_kth_smallest_ratio(
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

    >>> r = measure_kth_smallest_ratio([1000], repeats=3, include_sort=False)
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
            double_times.append(timed(lambda: double(x)))
            kth_times.append(timed(lambda: select(x, k)))
        sort_stats = None
        if include_sort:
            jax.block_until_ready(sort(x))
            sort_stats = _stats_ms([timed(lambda: sort(x)) for _ in range(sort_repeats)])
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
    """Human-readable table of :func:`measure_kth_smallest_ratio` results (times in ms).

    >>> stats_ms = {"median": 1.0, "min": 1.0, "max": 1.0}
    >>> row = {"kth_ms": stats_ms, "double_ms": stats_ms, "sort_ms": None, "ratio": 1.0,
    ...        "ratio_min": 1.0, "sort_ratio": None}
    >>> format_table({300: row}).splitlines()[2].split()[-3:]
    ['1.00', '1.00', '-']
    """

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


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m supjax_app.bench.selection [--sizes N ...] [--repeats R] [--no-sort]``.

    Prints the ratio table and returns 0.

    >>> import contextlib, io
    >>> out = io.StringIO()
    >>> with contextlib.redirect_stdout(out):
    ...     status = main(["--sizes", "300", "--repeats", "2", "--no-sort"])
    >>> status, out.getvalue().splitlines()[2].split()[0]
    (0, '300')
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", type=float, default=list(DEFAULT_SIZES))
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--sort-repeats", type=int, default=3)
    parser.add_argument("--no-sort", action="store_true", help="skip timing jnp.sort")
    args = parser.parse_args(argv)
    results = measure_kth_smallest_ratio(
        [int(s) for s in args.sizes],
        args.repeats,
        include_sort=not args.no_sort,
        sort_repeats=args.sort_repeats,
    )
    print(format_table(results))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
