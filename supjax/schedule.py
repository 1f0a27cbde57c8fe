"""When suppress operations happen and which sparsity each one aims at.

The schedule follows MindArmour 2.0.0 step for step (SPEC.md section 2): steps are counted
from 1, an operation happens whenever ``interval = all_steps / mask_times`` steps have
passed since the previous one, plus one extra operation two steps before the end of the
last epoch, and the target sparsity grows along a cubic curve from ``sparse_start`` to
``sparse_end``.

This module owns all the timing: the window and the final step (:func:`step_flags`, or
:func:`epoch_flags` for MindArmour's epoch arguments), the interval, the bookkeeping
(:func:`advance_schedule`), the target sparsity (:func:`next_sparsity`) and the stop counts
(:func:`stop_count`, :func:`stop_counts`). What the compiled step holds, one row per planned
operation, is built from these in :mod:`supjax.schedule_plan`.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from supjax._checks import check_bool, check_int, check_real

__all__ = [
    "FINAL_STEP_BEFORE_END",
    "ScheduleState",
    "SuppressSchedule",
    "advance_schedule",
    "epoch_flags",
    "next_sparsity",
    "step_flags",
    "stop_count",
    "stop_counts",
]

#: The extra end-of-training operation falls this many steps before the last step of the
#: last epoch (the reference's ``cur_step_in_epoch == batch_num - 2``).
FINAL_STEP_BEFORE_END = 2


@dataclasses.dataclass(frozen=True)
class SuppressSchedule:
    """Static description of a suppression schedule, in optimizer steps (1-based).

    By default it behaves as MindArmour 2.0.0 does, which is not quite what its words say:

    * the target sparsity follows the cubic curve, which reaches ``sparse_end`` only one
      step after ``end_step``; the window's last operation (the final step, two steps before
      the end of the last epoch, for :meth:`from_epochs`) therefore aims just below it.
      ``from_epochs(1, 2, 640, mask_times=10)`` ends the window at step 1278, aiming at
      ``0.9 - 0.9 * (3 / 1280) ** 3 = 0.89999999``, so a 1280-weight layer ends with 1151
      zeros, not the 1152 of 0.9.
      ``reach_sparse_end=True`` makes that last operation aim at ``sparse_end`` exactly
      (its stop count is ``stop_count(size, min_num, sparse_end)``).
    * once started, operations (with their clipping and noise) go on every ``min_gap``
      steps after ``end_step`` until training ends, aiming at ``sparse_end``.
      ``stop_after_end=True`` makes ``end_step`` the last step that may operate.

    Args:
      start_step: first step of the suppression window.
      end_step: last step of the window (``>= start_step``); the sparsity curve spans
        ``start_step .. end_step + 1``, see above for what happens after it.
      mask_times: number of suppress operations spread over the window.
      sparse_start: sparsity at the first operation, ``0 <= sparse_start < sparse_end``.
      sparse_end: sparsity the curve tends to (``< 1``); reached exactly only after the
        window, or at its last operation with ``reach_sparse_end``.
      final_step: step of the extra end-of-training operation, or ``None``.
      reach_sparse_end: the window's last operation aims at ``sparse_end`` exactly.
      stop_after_end: no operation after ``end_step``.

    >>> from supjax import SuppressSchedule
    >>> s = SuppressSchedule.from_epochs(start_epoch=3, end_epoch=10, batch_num=20, mask_times=10)
    >>> (s.start_step, s.end_step, s.final_step, s.interval)
    (41, 200, 198, 16.0)
    """

    start_step: int
    end_step: int
    mask_times: int
    sparse_start: float = 0.0
    sparse_end: float = 0.9
    final_step: int | None = None
    reach_sparse_end: bool = False
    stop_after_end: bool = False

    def __post_init__(self) -> None:
        check_int("start_step", self.start_step, low=1)
        check_int("end_step", self.end_step, low=self.start_step)
        check_int("mask_times", self.mask_times, low=1)
        check_real("sparse_end", self.sparse_end, low=0.0, high=1.0, low_open=True, high_open=True)
        check_real("sparse_start", self.sparse_start, low=0.0, high=self.sparse_end, high_open=True)
        if self.final_step is not None:
            check_int("final_step", self.final_step, low=1)
        check_bool("reach_sparse_end", self.reach_sparse_end)
        check_bool("stop_after_end", self.stop_after_end)
        object.__setattr__(self, "sparse_start", float(self.sparse_start))
        object.__setattr__(self, "sparse_end", float(self.sparse_end))

    @classmethod
    def from_epochs(
        cls,
        start_epoch: int,
        end_epoch: int,
        batch_num: int,
        mask_times: int,
        sparse_start: float = 0.0,
        sparse_end: float = 0.9,
        *,
        reach_sparse_end: bool = False,
        stop_after_end: bool = False,
    ) -> "SuppressSchedule":
        """The reference's epoch-based schedule (``SuppressPrivacyFactory.create`` arguments).

        ``0 < start_epoch <= end_epoch``; the extra operation falls on step ``batch_num - 2``
        of ``end_epoch`` (there is none when ``batch_num < 3``). That operation ends the
        window just below ``sparse_end`` unless ``reach_sparse_end=True``; operations go on
        after ``end_epoch`` unless ``stop_after_end=True`` (see the class).

        >>> from supjax import SuppressSchedule
        >>> SuppressSchedule.from_epochs(1, 2, 10, 4).all_steps
        20
        """
        start_epoch = check_int("start_epoch", start_epoch, low=1)
        end_epoch = check_int("end_epoch", end_epoch, low=start_epoch)
        batch_num = check_int("batch_num", batch_num, low=1)
        end_step = end_epoch * batch_num
        final = end_step - FINAL_STEP_BEFORE_END if batch_num > FINAL_STEP_BEFORE_END else None
        return cls(
            start_step=(start_epoch - 1) * batch_num + 1,
            end_step=end_step,
            mask_times=mask_times,
            sparse_start=sparse_start,
            sparse_end=sparse_end,
            final_step=final,
            reach_sparse_end=reach_sparse_end,
            stop_after_end=stop_after_end,
        )

    @classmethod
    def from_steps(
        cls,
        start_step: int,
        end_step: int,
        mask_times: int,
        sparse_start: float = 0.0,
        sparse_end: float = 0.9,
        *,
        reach_sparse_end: bool = False,
        stop_after_end: bool = False,
    ) -> "SuppressSchedule":
        """A schedule over plain step numbers, with no extra end-of-training operation.

        >>> from supjax import SuppressSchedule
        >>> SuppressSchedule.from_steps(100, 1099, 100, sparse_end=0.95).interval
        10.0
        """
        return cls(start_step, end_step, mask_times, sparse_start, sparse_end, None,
                   reach_sparse_end, stop_after_end)

    @property
    def all_steps(self) -> int:
        """Steps in the suppression window (the reference's ``mask_all_steps``)."""
        return self.end_step - self.start_step + 1

    @property
    def interval(self) -> float:
        """Steps between two operations, ``all_steps / mask_times`` (a float)."""
        return self.all_steps / self.mask_times

    @property
    def last_operation_step(self) -> int | None:
        """The last step that may operate: ``end_step`` with ``stop_after_end``, else ``None``.

        >>> from supjax import SuppressSchedule
        >>> SuppressSchedule.from_steps(1, 9, 3, stop_after_end=True).last_operation_step
        9
        """
        return self.end_step if self.stop_after_end else None

    @property
    def min_gap(self) -> int:
        """Smallest whole number of steps ``g`` with ``g >= interval``.

        ``cur - prev >= interval`` holds for whole steps exactly when ``cur - prev >= min_gap``.
        """
        return -(-self.all_steps // self.mask_times)

    def sparsity_table(self) -> np.ndarray:
        """Target sparsity for ``cur_step - start_step = 0 .. all_steps`` (float64, monotone).

        The curve itself, one value per step (``reach_sparse_end`` does not change it).

        >>> from supjax import SuppressSchedule
        >>> t = SuppressSchedule.from_steps(1, 10, 5, sparse_end=0.5).sparsity_table()
        >>> (float(t[0]), float(t[-1]))
        (0.0, 0.5)
        """
        values = [next_sparsity(self, cur_step=self.start_step + d, start_step=self.start_step)
                  for d in range(self.all_steps + 1)]
        return np.maximum.accumulate(np.asarray(values, dtype=np.float64))


def next_sparsity(
    schedule: SuppressSchedule,
    cur_step: int,
    start_step: int,
    previous: float = 0.0,
    target_sparse: float = 0.0,
) -> float:
    """Target sparsity of an operation at ``cur_step`` (Python float64, as the reference).

    ``s = end + (start - end) * (1 - (cur_step - start_step) / all_steps) ** 3``, replaced by
    ``target_sparse`` when that is positive, then kept monotone and capped:
    ``max(sparse_start, max(previous, min(s, sparse_end)))``. This is the reference's rule
    for any step; ``reach_sparse_end`` is applied by
    :func:`supjax.schedule_plan.operation_tables`, which knows which operation is the last.

    >>> from supjax.schedule import SuppressSchedule, next_sparsity
    >>> sched = SuppressSchedule.from_steps(1, 100, 10, sparse_end=0.9)
    >>> round(next_sparsity(sched, cur_step=51, start_step=1), 4)
    0.7875
    """
    if target_sparse > 0.0:
        s = float(target_sparse)
    else:
        frac = 1.0 - (cur_step + 0.0 - start_step) / schedule.all_steps
        s = schedule.sparse_end + (schedule.sparse_start - schedule.sparse_end) * math.pow(frac, 3)
    return max(schedule.sparse_start, max(previous, min(s, schedule.sparse_end)))


def stop_count(size: int, min_num: int, sparsity: float) -> int:
    """How many of ``size`` weights an operation at ``sparsity`` suppresses.

    ``int(size * min(1 - min(min_num, size) / size, sparsity))`` in float64, as the reference
    computes it (so ``1 - 80/100`` gives 19, not 20); ``min_num = -1`` sets no lower limit.

    >>> from supjax.schedule import stop_count
    >>> stop_count(100, -1, 0.5), stop_count(100, 80, 0.5)
    (50, 19)
    """
    floor = 1.0 - min(min_num, size) / size
    return int(size * min(floor, sparsity))


def stop_counts(sizes: Sequence[int], min_nums: Sequence[int], sparsity: float) -> np.ndarray:
    """:func:`stop_count` of every layer at one ``sparsity`` (int32, one entry per layer).

    >>> from supjax.schedule import stop_counts
    >>> stop_counts((100, 100), (-1, 80), 0.5).tolist()
    [50, 19]
    """
    return np.array([stop_count(n, m, sparsity) for n, m in zip(sizes, min_nums)], dtype=np.int32)


def step_flags(schedule: SuppressSchedule, cur_step: Any) -> tuple[Any, Any]:
    """Whether step ``cur_step`` lies in the window, and whether it is the final step.

    Step 0 (no step done yet) is in neither. Works on traced arrays and on Python ints.

    >>> from supjax.schedule import SuppressSchedule, step_flags
    >>> s = SuppressSchedule.from_epochs(3, 10, 20, mask_times=10)
    >>> [tuple(bool(f) for f in step_flags(s, c)) for c in (40, 41, 198, 201)]
    [(False, False), (True, False), (True, True), (False, False)]
    """
    has_step = cur_step >= 1
    in_window = has_step & (cur_step >= schedule.start_step) & (cur_step <= schedule.end_step)
    final = schedule.final_step if schedule.final_step is not None else -1
    return in_window, has_step & (cur_step == final)


def epoch_flags(
    schedule: SuppressSchedule, batch_num: int, cur_epoch: Any, cur_step_in_epoch: Any
) -> tuple[bool, bool]:
    """:func:`step_flags` from MindArmour's ``update_status`` arguments, as it decides them.

    For a schedule built by :meth:`SuppressSchedule.from_epochs` with this ``batch_num``:
    in the window when ``start_epoch <= cur_epoch <= end_epoch``, final when ``cur_epoch``
    is the end epoch and ``cur_step_in_epoch`` is ``batch_num - 2`` — from the epoch the
    caller reports, even where it disagrees with the step count.

    >>> from supjax.schedule import SuppressSchedule, epoch_flags
    >>> s = SuppressSchedule.from_epochs(3, 10, 20, mask_times=10)
    >>> epoch_flags(s, 20, 3, 1), epoch_flags(s, 20, 10, 18), epoch_flags(s, 20, 11, 18)
    ((True, False), (True, True), (False, False))
    """
    first = (cur_epoch - 1) * batch_num + 1
    last = cur_epoch * batch_num
    in_window = schedule.start_step <= first and last <= schedule.end_step
    in_last_epoch = last == schedule.end_step
    is_final = in_last_epoch and first - 1 + cur_step_in_epoch == schedule.end_step - FINAL_STEP_BEFORE_END
    return in_window, is_final


class ScheduleState(NamedTuple):
    """The schedule's bookkeeping: whether suppression started, where, and the last operation.

    >>> from supjax.schedule import ScheduleState, advance_schedule
    >>> state, operate = advance_schedule(ScheduleState(False, 0, 0), 10, True, False, 5)
    >>> [int(v) for v in state], bool(operate)  # started, start_step, prev_step
    ([1, 10, 10], True)
    """

    started: object
    start_step: object
    prev_step: object


def advance_schedule(
    state: ScheduleState,
    cur_step,
    in_window,
    is_final_step,
    min_gap: int,
    *,
    last_step: int | None = None,
) -> tuple[ScheduleState, object]:
    """One ``update_status`` of the reference, as a pure function of arrays.

    Called after step ``cur_step``; ``in_window`` says whether that step's epoch lies in
    ``[start_epoch, end_epoch]``, ``is_final_step`` whether it is the extra end-of-training
    step. Returns the new state and whether a suppress operation happens now. Works on
    traced JAX arrays (inside ``jit``) and, with NumPy, on plain Python numbers.
    ``last_step`` (``SuppressSchedule.last_operation_step``): no operation after it; ``None``
    (the reference) lets operations go on after the window.

    >>> from supjax.schedule import ScheduleState, advance_schedule
    >>> st = ScheduleState(False, 0, 0)
    >>> st, do_op = advance_schedule(st, 41, True, False, min_gap=16)
    >>> bool(st.started), int(st.start_step), bool(do_op)
    (True, 41, True)
    """
    xp = jnp if any(isinstance(v, jax.Array) for v in (*state, cur_step, in_window, is_final_step)) else np
    started = xp.asarray(state.started, dtype=bool)
    active = xp.asarray(in_window, dtype=bool) | started
    start_step = xp.where(active & ~started, cur_step, state.start_step)
    due = (xp.asarray(cur_step) - state.prev_step) >= min_gap
    do_op = active & (due | xp.asarray(is_final_step, dtype=bool))
    if last_step is not None:
        do_op = do_op & (xp.asarray(cur_step) <= last_step)
    prev_step = xp.where(do_op, cur_step, state.prev_step)
    new = ScheduleState(
        started=active,
        start_step=xp.asarray(start_step, xp.int32),
        prev_step=xp.asarray(prev_step, xp.int32),
    )
    return new, do_op
