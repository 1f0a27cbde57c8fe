"""The schedule as the compiled step holds it: one row per planned operation, never per step.

The timing of :mod:`supjax.schedule` is a pure function of the step count, so the steps at
which operations happen are known on the host before training: every ``min_gap`` steps from
the start of the window, plus the extra final operation (SPEC.md section 2). For each of
them, and for the operations after the window (which all aim at ``sparse_end``), the target
sparsity and every layer's stop count are computed once, on the host, in float64 exactly as
the reference computes them. That is ``mask_times + 2`` rows at most, whatever the length of
the schedule: a 1e6-step schedule compiles to the same program size as a 1e3-step one.

Inside ``jit`` :func:`operation_targets` finds the row of the step's offset. An offset that
no row plans (a state carried over from another schedule) falls back to the same formula in
float32 on the device, within float32 rounding of the reference.

The per-step tables of :func:`schedule_tables` (read by :func:`targets_at`) are what the
transformation held before: O(steps), kept for adapters and tests, no longer compiled in.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from supjax.schedule import SuppressSchedule, next_sparsity, stop_counts

__all__ = [
    "OperationTables",
    "ScheduleTables",
    "operation_tables",
    "operation_targets",
    "planned_operation_steps",
    "schedule_tables",
    "targets_at",
]

#: Up to this many rows the lookup compares against every row (no loop in the program).
_COMPARE_ALL_ROWS = 4096


def planned_operation_steps(schedule: SuppressSchedule) -> tuple[int, ...]:
    """The steps ``<= end_step`` at which an operation happens, in order (host, O(mask_times)).

    The same decisions as :func:`supjax.schedule.advance_schedule` run on steps 1, 2, ...,
    taken an operation at a time: the next one is ``min_gap`` steps after the previous one
    (not before ``start_step``), or the final step if that comes first.

    >>> from supjax import SuppressSchedule
    >>> from supjax.schedule_plan import operation_tables, operation_targets, planned_operation_steps
    >>> planned_operation_steps(SuppressSchedule.from_epochs(3, 10, 20, mask_times=10))
    (41, 57, 73, 89, 105, 121, 137, 153, 169, 185, 198)
    """
    final = schedule.final_step
    prev, steps = 0, []
    while True:
        step = max(schedule.start_step, prev + schedule.min_gap)
        if final is not None and prev < final < step and final >= schedule.start_step:
            step = final
        if step > schedule.end_step:
            return tuple(steps)
        steps.append(step)
        prev = step


class OperationTables(NamedTuple):
    """Per planned operation: its step offset from ``start_step``, target sparsity, stop counts.

    ``offsets`` int32[K] (increasing; the last row, offset ``all_steps``, serves every
    operation after the window), ``sparsity`` float32[K], ``stops`` int32[K, layers], and
    for the float32 fallback ``sizes`` int32[layers] and ``caps`` int32[layers] (the most
    a layer may lose, ``stop_count(size, min_num, 1.0)``, as the reference computes it).

    >>> from supjax import SuppressSchedule
    >>> from supjax.schedule_plan import operation_tables, operation_targets, planned_operation_steps
    >>> t = operation_tables(SuppressSchedule.from_steps(1, 10, 5, sparse_end=0.5), (100,), (-1,))
    >>> t.offsets.tolist(), t.stops[:, 0].tolist()
    ([1, 3, 5, 7, 9, 10], [13, 32, 43, 48, 49, 50])
    """

    offsets: np.ndarray
    sparsity: np.ndarray
    stops: np.ndarray
    sizes: np.ndarray
    caps: np.ndarray


def operation_tables(
    schedule: SuppressSchedule, sizes: Sequence[int], min_nums: Sequence[int]
) -> OperationTables:
    """The :class:`OperationTables` of ``schedule`` for layers of ``sizes``/``min_nums`` (cached).

    Sparsity as :func:`~supjax.schedule.next_sparsity` gives it, each operation starting
    from the previous one's (float64, then stored as float32); stop counts from the float64
    value, so they equal the reference's bit for bit. With ``schedule.reach_sparse_end`` the
    last operation of the window aims at ``sparse_end`` itself.

    >>> from supjax import SuppressSchedule
    >>> from supjax.schedule_plan import operation_tables, operation_targets, planned_operation_steps
    >>> s = SuppressSchedule.from_epochs(1, 2, 640, mask_times=10)
    >>> operation_tables(s, (1280,), (-1,)).stops[-2:, 0].tolist()
    [1151, 1152]
    >>> s = SuppressSchedule.from_epochs(1, 2, 640, mask_times=10, reach_sparse_end=True)
    >>> operation_tables(s, (1280,), (-1,)).stops[-2:, 0].tolist()
    [1152, 1152]
    """
    return _operation_tables(schedule, tuple(int(n) for n in sizes), tuple(int(m) for m in min_nums))


@functools.lru_cache(maxsize=32)
def _operation_tables(schedule: SuppressSchedule, sizes: tuple[int, ...], min_nums: tuple[int, ...]) -> OperationTables:
    steps = planned_operation_steps(schedule)
    offsets = [step - schedule.start_step for step in steps] + [schedule.all_steps]
    values, previous = [], 0.0
    for offset in offsets:
        previous = next_sparsity(schedule, schedule.start_step + offset, schedule.start_step, previous)
        values.append(previous)
    if schedule.reach_sparse_end:
        values[-2] = schedule.sparse_end  # the window's last operation; steps is never empty
    stops = np.stack([stop_counts(sizes, min_nums, s) for s in values]).reshape(len(values), len(sizes))
    return OperationTables(
        offsets=np.asarray(offsets, np.int32),
        sparsity=np.asarray(values, np.float32),
        stops=stops.astype(np.int32),
        sizes=np.asarray(sizes, np.int32),
        caps=stop_counts(sizes, min_nums, 1.0).astype(np.int32),
    )


def operation_targets(
    schedule: SuppressSchedule, tables: OperationTables, cur_step: Any, start_step: Any, previous: Any
) -> tuple[jax.Array, jax.Array]:
    """Target sparsity (never below ``previous``) and stop counts of an operation at ``cur_step``.

    Reads the row whose offset is ``cur_step - start_step`` (offsets past the window read
    the last row); works inside ``jit``. An offset no row plans gets the float32 formula.

    >>> from supjax import SuppressSchedule
    >>> from supjax.schedule_plan import operation_tables, operation_targets, planned_operation_steps
    >>> s = SuppressSchedule.from_steps(1, 10, 5, sparse_end=0.5)
    >>> t = operation_tables(s, (100,), (-1,))
    >>> target, stops = operation_targets(s, t, 4, 1, 0.0)  # step 4 is planned: offset 3
    >>> round(float(target), 6), stops.tolist()
    (0.3285, [32])
    >>> target, stops = operation_targets(s, t, 3, 1, 0.0)  # offset 2 is not: float32 formula
    >>> round(float(target), 6), stops.tolist()
    (0.244, [24])
    """
    offsets = jnp.asarray(tables.offsets)
    offset = jnp.clip(jnp.asarray(cur_step, jnp.int32) - start_step, 0, schedule.all_steps)
    method = "compare_all" if len(tables.offsets) <= _COMPARE_ALL_ROWS else "scan"
    row = jnp.clip(jnp.searchsorted(offsets, offset, side="right", method=method) - 1, 0)
    planned = offsets[row] == offset
    # the fallback: next_sparsity and stop_count in float32
    frac = 1.0 - offset.astype(jnp.float32) / jnp.float32(schedule.all_steps)
    curve = schedule.sparse_end + (schedule.sparse_start - schedule.sparse_end) * frac**3
    formula = jnp.maximum(jnp.float32(schedule.sparse_start), jnp.minimum(curve, schedule.sparse_end))
    sparsity = jnp.where(planned, jnp.asarray(tables.sparsity)[row], formula.astype(jnp.float32))
    estimate = jnp.floor(jnp.asarray(tables.sizes, jnp.float32) * formula).astype(jnp.int32)
    estimate = jnp.minimum(jnp.asarray(tables.caps), estimate)
    stops = jnp.where(planned, jnp.asarray(tables.stops)[row], estimate)
    return jnp.maximum(jnp.asarray(previous, jnp.float32), sparsity), stops


class ScheduleTables(NamedTuple):
    """Per step offset ``cur_step - start_step = 0 .. all_steps``: target sparsity and stop counts.

    ``sparsity`` is float32[all_steps + 1], ``stops`` int32[all_steps + 1, layers];
    :func:`schedule_tables` builds them. They hold the reference's curve: the schedule's
    ``reach_sparse_end`` is not applied (use :func:`operation_tables` for that).

    >>> from supjax.schedule import SuppressSchedule
    >>> from supjax.schedule_plan import schedule_tables
    >>> t = schedule_tables(SuppressSchedule.from_steps(1, 10, 5, sparse_end=0.5), (100,), (-1,))
    >>> t.sparsity.shape, t.stops[-1].tolist()
    ((11,), [50])
    """

    sparsity: np.ndarray
    stops: np.ndarray


def schedule_tables(
    schedule: SuppressSchedule, sizes: Sequence[int], min_nums: Sequence[int]
) -> ScheduleTables:
    """Target sparsity and per-layer stop counts for every step offset, computed once.

    Computed on the host in float64 exactly as the reference computes them (so the stop
    counts match it bit for bit), then the sparsity is stored as float32; cached per
    schedule and layer sizes. :func:`targets_at` reads them inside ``jit``.

    >>> from supjax.schedule import SuppressSchedule
    >>> from supjax.schedule_plan import schedule_tables
    >>> t = schedule_tables(SuppressSchedule.from_steps(1, 4, 2, sparse_end=0.5), (10, 10), (-1, 8))
    >>> t.stops.tolist()
    [[0, 0], [2, 1], [4, 1], [4, 1], [5, 1]]
    """
    return _step_tables(schedule, tuple(int(n) for n in sizes), tuple(int(m) for m in min_nums))


@functools.lru_cache(maxsize=32)
def _step_tables(schedule: SuppressSchedule, sizes: tuple[int, ...], min_nums: tuple[int, ...]) -> ScheduleTables:
    sparsity = schedule.sparsity_table()
    stops = np.stack([stop_counts(sizes, min_nums, float(s)) for s in sparsity])
    return ScheduleTables(sparsity.astype(np.float32), stops.reshape(len(sparsity), len(sizes)))


def targets_at(
    schedule: SuppressSchedule, tables: ScheduleTables, cur_step: Any, start_step: Any, previous: Any
) -> tuple[jax.Array, jax.Array]:
    """Target sparsity (never below ``previous``) and stop counts of an operation at ``cur_step``.

    ``start_step`` is where suppression started; offsets past the window read its last row.

    >>> from supjax.schedule import SuppressSchedule
    >>> from supjax.schedule_plan import schedule_tables, targets_at
    >>> s = SuppressSchedule.from_steps(1, 4, 2, sparse_end=0.5)
    >>> target, stops = targets_at(s, schedule_tables(s, (10,), (-1,)), 3, 1, 0.0)
    >>> round(float(target), 4), stops.tolist()
    (0.4375, [4])
    """
    offset = jnp.clip(cur_step - start_step, 0, schedule.all_steps)
    target = jnp.maximum(previous, jnp.asarray(tables.sparsity)[offset])
    return target, jnp.asarray(tables.stops)[offset]
