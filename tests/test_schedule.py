"""The schedule: operating steps and target sparsities, checked by hand and by simulation."""

import math
from fractions import Fraction

import numpy as np
import pytest

from supjax.schedule import (
    ScheduleState,
    SuppressSchedule,
    advance_schedule,
    next_sparsity,
    stop_count,
)


def reference_update_status(start_epoch, end_epoch, batch_num, mask_times, total_epochs):
    """A plain transcription of SPEC.md section 2 (the test oracle for the step list)."""
    interval = (end_epoch - start_epoch + 1) * batch_num / mask_times
    started, start_step, prev = False, 0, 0
    ops = []
    for cur in range(1, total_epochs * batch_num + 1):
        epoch = (cur - 1) // batch_num + 1
        in_epoch = (cur - 1) % batch_num + 1
        if start_epoch <= epoch <= end_epoch or started:
            if not started:
                started, start_step = True, cur
            if cur >= prev + interval:
                prev = cur
                ops.append(cur)
            elif epoch == end_epoch and in_epoch == batch_num - 2:
                prev = cur
                ops.append(cur)
        else:
            started = False
    return ops, start_step


def run_schedule(sched: SuppressSchedule, last_step: int):
    state = ScheduleState(False, 0, 0)
    ops = []
    for cur in range(1, last_step + 1):
        in_window = sched.start_step <= cur <= sched.end_step
        state, do_op = advance_schedule(state, cur, in_window, cur == sched.final_step, sched.min_gap)
        if bool(do_op):
            ops.append(cur)
    return ops, int(state.start_step)


def test_from_epochs_by_hand():
    s = SuppressSchedule.from_epochs(start_epoch=3, end_epoch=10, batch_num=20, mask_times=10)
    assert (s.start_step, s.end_step, s.all_steps, s.final_step) == (41, 200, 160, 198)
    assert s.interval == 16.0 and s.min_gap == 16
    ops, start = run_schedule(s, 200)
    assert start == 41
    assert ops == [41, 57, 73, 89, 105, 121, 137, 153, 169, 185, 198]


def test_operations_go_on_after_the_window():
    s = SuppressSchedule.from_epochs(1, 2, 10, 4)  # interval 5
    ops, _ = run_schedule(s, 40)
    assert ops == [5, 10, 15, 18, 23, 28, 33, 38]


@pytest.mark.parametrize(
    "start,end,batch,times,epochs",
    [(3, 10, 20, 10, 12), (1, 1, 7, 3, 2), (2, 5, 3, 100, 6), (1, 4, 2, 5, 5), (2, 3, 1, 1, 4),
     (3, 10, 1875, 1000, 10), (1, 3, 13, 7, 4)],
)
def test_steps_match_the_transcribed_reference(start, end, batch, times, epochs):
    s = SuppressSchedule.from_epochs(start, end, batch, times)
    expected, expected_start = reference_update_status(start, end, batch, times, epochs)
    got, got_start = run_schedule(s, epochs * batch)
    assert got == expected
    assert got_start == expected_start


def test_target_sparsity_by_hand():
    s = SuppressSchedule.from_epochs(3, 10, 20, 10, sparse_start=0.0, sparse_end=0.9)
    assert next_sparsity(s, 41, 41) == 0.0
    # d = 16 of 160: 0.9 - 0.9 * 0.9**3 = 0.2439
    assert next_sparsity(s, 57, 41) == pytest.approx(0.2439, abs=1e-12)
    assert next_sparsity(s, 201, 41) == 0.9  # end reached: capped
    assert next_sparsity(s, 500, 41) == 0.9  # beyond: the cube turns negative, still capped
    assert next_sparsity(s, 57, 41, previous=0.5) == 0.5  # monotone
    assert next_sparsity(s, 57, 41, target_sparse=0.7) == 0.7
    assert next_sparsity(s, 57, 41, target_sparse=0.95) == 0.9  # capped at sparse_end


def test_sparsity_table_is_monotone_and_exact():
    # start step 10, end step 54: all_steps = 45; s(d) = 0.95 - 0.85 * (1 - d/45)**3, taken
    # here in exact rational arithmetic (not the implementation's float formula) and compared
    # within 2 ulps of float64: d=1: 0.95 - 0.85 * 85184/91125 = 0.15541673525377229...
    s = SuppressSchedule.from_epochs(2, 6, 9, 13, sparse_start=0.1, sparse_end=0.95)
    assert (s.start_step, s.end_step, s.all_steps) == (10, 54, 45)
    table = s.sparsity_table()
    assert table.shape == (46,) and table.dtype == np.float64
    assert np.all(np.diff(table) >= 0)
    hand = {
        0: Fraction(1, 10),  # 0.95 - 0.85 * 1
        1: Fraction(95, 100) - Fraction(85, 100) * Fraction(44, 45) ** 3,
        7: Fraction(95, 100) - Fraction(85, 100) * Fraction(38, 45) ** 3,  # 0.43816241426611797...
        22: Fraction(95, 100) - Fraction(85, 100) * Fraction(23, 45) ** 3,  # 0.83650809327846365...
        44: Fraction(95, 100) - Fraction(85, 100) * Fraction(1, 45) ** 3,  # 0.94999067215363511...
        45: Fraction(95, 100),
    }
    assert float(hand[22]) == 0.8365080932784636 and float(hand[1]) == 0.15541673525377228
    for d, exact in hand.items():
        assert abs(float(table[d]) - float(exact)) <= 2 * math.ulp(float(exact)), (d, table[d], exact)


def test_stop_count_float64_like_the_reference():
    assert stop_count(100, -1, 0.5) == 50
    assert stop_count(100, 80, 0.5) == 19  # 1 - 0.8 = 0.19999999999999996
    assert stop_count(6, 5, 0.9) == 0
    assert stop_count(10, 20, 0.9) == 0  # min_num above the size: nothing may go
    assert stop_count(2400, 50, 0.9) == 2160


@pytest.mark.parametrize(
    "kwargs,err,message",
    [
        (dict(start_epoch=0, end_epoch=3, batch_num=2, mask_times=1), ValueError,
         "start_epoch must be in [1, inf], got 0"),
        (dict(start_epoch=4, end_epoch=3, batch_num=2, mask_times=1), ValueError,
         "end_epoch must be in [4, inf], got 3"),
        (dict(start_epoch=1, end_epoch=3, batch_num=0, mask_times=1), ValueError,
         "batch_num must be in [1, inf], got 0"),
        (dict(start_epoch=1, end_epoch=3, batch_num=2, mask_times=0), ValueError,
         "mask_times must be in [1, inf], got 0"),
        (dict(start_epoch=1.0, end_epoch=3, batch_num=2, mask_times=1), TypeError,
         "start_epoch must be an int, got float (1.0)"),
        (dict(start_epoch=1, end_epoch=3, batch_num=2, mask_times=1, sparse_end=1.0), ValueError,
         "sparse_end must be in (0.0, 1.0), got 1.0"),
        (dict(start_epoch=1, end_epoch=3, batch_num=2, mask_times=1, sparse_start=0.9, sparse_end=0.5), ValueError,
         "sparse_start must be in [0.0, 0.5), got 0.9"),
        (dict(start_epoch=1, end_epoch=3, batch_num=2, mask_times=1, sparse_start=-0.1), ValueError,
         "sparse_start must be in [0.0, 0.9), got -0.1"),
        (dict(start_epoch=1, end_epoch=3, batch_num=2, mask_times=True), TypeError,
         "mask_times must be an int, got bool (True)"),
        (dict(start_epoch=1, end_epoch=3, batch_num=2, mask_times=1, sparse_end="0.9"), TypeError,
         "sparse_end must be a real number, got str ('0.9')"),
    ],
)
def test_bad_schedule_arguments(kwargs, err, message):
    """Each message names the one argument that is wrong, its allowed range or type, and
    the value given (written out by hand here)."""
    with pytest.raises(err) as info:
        SuppressSchedule.from_epochs(**kwargs)
    assert str(info.value) == message
