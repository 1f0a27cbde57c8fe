"""``supjax bench``'s report: every figure measured, judged against its goal, as JSON and a table.

The JSON holds the headline keys (:data:`GOALS`) as plain numbers (or ``null``) and,
under ``figures``, each figure's ``median``/``min``/``max``, its goal, whether the median meets
it, and details; ``environment`` records versions and the machine's load (the min/max beside
each median show how noisy it was), ``phase_s`` how long each figure took.

* ``reference_speedup``: MindArmour 2.0.0's ``SuppressCtrl.update_mask`` on LeNet5's weights
  (MindSpore layout) divided by our operation; ``null`` unless mindarmour is installed. Goal >= 200.
* ``compat_step_ratio``: ``compat_mindspore``'s training step over MindArmour's on the same
  network and data (``compat_mindspore.bench.measure_step_ratio``, GRAPH_MODE); ``null``
  unless MindSpore, mindarmour and compat_mindspore are importable. Goal <= 0.5.
* the three JAX figures: see :mod:`supjax_app.bench.figures`.
* :data:`FIGURES`, one measuring function each: ``compile_ratio``, ``train_loop_ratio`` and
  ``quick_seconds`` (:mod:`supjax_app.bench.runs`), and ``tutorial_speedup`` (MindArmour's
  tutorial training step, ``SuppressModel`` + ``SuppressMasker`` in PYNATIVE, over supjax's fit
  loop on the same shapes: ``compat_mindspore.bench.measure_tutorial_speedup``; ``null``
  without MindSpore and mindarmour). Goals 1.5, 1.15, 8 s and 50.
* ``dp_step_ratio`` (reported, no goal, not in the table): a DP-SGD step with per-example
  gradients over a non-private step, :mod:`supjax_app.bench.dp_step`.

>>> sorted(GOALS) == sorted(UNITS)
True
"""

from __future__ import annotations

import datetime
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from typing import IO, Any, NamedTuple

import jax
import numpy as np

from supjax_app.bench.figures import (
    QUICK_SELECTION_SIZES,
    SELECTION_SIZES,
    measure_lenet5_operation,
    measure_selection_ratio,
    measure_step_overhead,
    mindspore_figures,
)
from supjax_app.bench import runs
from supjax_app.bench.timing import Counts
from supjax_app.host import cpu_description

__all__ = [
    "FIGURES",
    "Figure",
    "GOALS",
    "UNITS",
    "format_table",
    "print_table",
    "run_bench",
]

class Figure(NamedTuple):
    """A headline figure measured by one function: its goal, unit and ``measure(counts, seed)``.

    ``measure`` returns the figure (``median``/``min``/``max``/``samples`` and a ``detail``)
    or ``None``; ``missing`` says why a ``None`` is missing.

    >>> FIGURES["compile_ratio"].goal
    ('<=', 1.5)
    """

    goal: tuple[str, float]
    unit: str
    measure: Callable[[Counts, int], dict[str, Any] | None]
    missing: str = ""


def _plugin(key: str) -> Callable[[Counts, int], dict[str, Any] | None]:
    """``compat_mindspore.bench``'s measure of ``key`` (through the entry point), or None without it."""
    def measure(counts: Counts, seed: int) -> dict[str, Any] | None:
        plugin = mindspore_figures()
        return None if plugin is None or key not in plugin else plugin[key](counts, seed)

    return measure


#: Figures measured after the five below, in this order (one line registers another one).
FIGURES: dict[str, Figure] = {
    "compile_ratio": Figure(("<=", 1.5), "x", runs.measure_compile_ratio),
    "train_loop_ratio": Figure(("<=", 1.15), "x", runs.measure_train_loop_ratio),
    "quick_seconds": Figure(("<=", 8.0), "s", runs.measure_quick_seconds),
    "tutorial_speedup": Figure((">=", 50.0), "x", _plugin("tutorial_speedup"),
                               "MindSpore, mindarmour and compat_mindspore are not installed in this environment"),
}

#: Goal of each headline figure: (comparison, bound), judged on the median.
GOALS: dict[str, tuple[str, float]] = {
    "step_overhead_ratio": ("<=", 1.05),
    "lenet5_operation_ms": ("<=", 5.0),
    "reference_speedup": (">=", 200.0),
    "selection_ratio": ("<=", 8.0),
    "compat_step_ratio": ("<=", 0.5),
    **{key: fig.goal for key, fig in FIGURES.items()},
}

#: Unit of each headline figure.
UNITS: dict[str, str] = {
    "step_overhead_ratio": "x",
    "lenet5_operation_ms": "ms",
    "reference_speedup": "x",
    "selection_ratio": "x",
    "compat_step_ratio": "x",
    **{key: fig.unit for key, fig in FIGURES.items()},
}


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
        "cpu": cpu_description(),
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
    counts = Counts(quick)
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
    for key, fig in FIGURES.items():
        say(key)
        figures[key] = fig.measure(counts, seed)
        if figures[key] is None:
            notes[key] = fig.missing
        done(key)

    report: dict[str, Any] = {}
    for key in GOALS:
        fig = figures[key]
        report[key] = None if fig is None else float(fig["median"])
    report["figures"] = {}
    for key, fig in figures.items():
        op, bound = GOALS[key]
        entry = {"goal": f"{op} {bound:g}", "unit": UNITS[key]}
        if fig is None:
            entry.update(median=None, min=None, max=None, met=None, note=notes.get(key, ""))
        else:
            entry.update(fig)
            entry["met"] = _goal_met(key, fig["median"])
        report["figures"][key] = entry
    from supjax_app.bench.dp_step import measure_dp_step_ratio  # reported, no goal (supjax train --dp)

    say("DP-SGD step (per-example gradients) vs non-private step")
    report["figures"]["dp_step_ratio"] = measure_dp_step_ratio(counts, seed)
    report["dp_step_ratio"] = report["figures"]["dp_step_ratio"]["median"]
    done("dp_step_ratio")
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


def _empty_report() -> dict[str, Any]:
    """A report whose every figure is missing (for the doctests)."""
    return {"figures": {k: {"median": None, "min": None, "max": None, "met": None,
                            "unit": UNITS[k], "goal": f"{GOALS[k][0]} {GOALS[k][1]:g}"} for k in GOALS}}


def format_table(report: dict[str, Any]) -> str:
    """The plain-text table of a report.

    >>> format_table(_empty_report()).splitlines()[0].split()[:4]
    ['figure', 'median', 'min', 'max']
    """
    rows = [_HEADER, *_rows(report)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(_HEADER))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def print_table(report: dict[str, Any], file: IO[str] | None = None) -> None:
    """Print the table with rich when it is installed, else as plain text.

    >>> import io
    >>> out = io.StringIO()
    >>> print_table(_empty_report(), file=out)
    >>> "lenet5_operation_ms" in out.getvalue()
    True
    """
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
