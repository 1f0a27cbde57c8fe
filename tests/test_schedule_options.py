"""The schedule in the compiled step: one row per planned operation, and the two options.

Hand-computed case used below: ``from_epochs(1, 2, 10, mask_times=4)`` has 20 steps,
``min_gap`` 5, operations after steps 5, 10, 15 and the final step 18 (two before the end),
then every 5 steps after the window (23, 28, ...). The final operation's offset is 17, so it
aims at ``0.9 - 0.9 * (3 / 20) ** 3 = 0.8969625``: a 40-weight layer gets
``int(40 * 0.8969625) = 35`` zeros, one short of the ``int(40 * 0.9) = 36`` of ``sparse_end``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from supjax import LayerRule, SuppressSchedule, find_suppress_state, suppress
from supjax.engine import (
    ScheduleState,
    advance_schedule,
    operation_tables,
    operation_targets,
    planned_operation_steps,
    schedule_tables,
    step_flags,
)


def simulated_steps(schedule: SuppressSchedule, last: int) -> list[int]:
    """Steps that operate, by running the reference's bookkeeping on every step."""
    state, ops = ScheduleState(False, 0, 0), []
    for cur in range(1, last + 1):
        in_window, is_final = step_flags(schedule, cur)
        state, do_op = advance_schedule(state, cur, in_window, is_final, schedule.min_gap,
                                        last_step=schedule.last_operation_step)
        if bool(do_op):
            ops.append(cur)
    return ops


SCHEDULES = [
    SuppressSchedule.from_epochs(1, 2, 10, 4),
    SuppressSchedule.from_epochs(3, 10, 20, 10),
    SuppressSchedule.from_epochs(2, 5, 3, 100),
    SuppressSchedule.from_epochs(1, 3, 13, 7, sparse_start=0.2, sparse_end=0.95),
    SuppressSchedule.from_steps(3, 40, 6),  # start_step below min_gap: the first operation waits
    SuppressSchedule(start_step=10, end_step=30, mask_times=4, final_step=12),  # final before a due step
    SuppressSchedule(start_step=10, end_step=30, mask_times=4, final_step=5),  # final before the window
    SuppressSchedule(start_step=10, end_step=30, mask_times=4, final_step=35),  # final after it
]


def test_planned_steps_by_hand():
    assert planned_operation_steps(SuppressSchedule.from_epochs(1, 2, 10, 4)) == (5, 10, 15, 18)
    assert planned_operation_steps(SuppressSchedule.from_steps(3, 40, 6)) == (7, 14, 21, 28, 35)


@pytest.mark.parametrize("schedule", SCHEDULES, ids=str)
def test_planned_steps_are_the_simulated_ones(schedule):
    ops = simulated_steps(schedule, schedule.end_step + 3 * schedule.min_gap)
    assert list(planned_operation_steps(schedule)) == [s for s in ops if s <= schedule.end_step]
    assert len(ops) > len(planned_operation_steps(schedule))  # operations go on after the window


@pytest.mark.parametrize("schedule", SCHEDULES, ids=str)
def test_rows_equal_the_per_step_tables_bit_for_bit(schedule):
    sizes, min_nums = (1280, 37, 100_000), (-1, 10, 50)
    steps = schedule_tables(schedule, sizes, min_nums)  # per step, checked against next_sparsity
    rows = operation_tables(schedule, sizes, min_nums)
    offsets = [s - schedule.start_step for s in planned_operation_steps(schedule)] + [schedule.all_steps]
    assert rows.offsets.tolist() == offsets
    np.testing.assert_array_equal(rows.stops, steps.stops[offsets])
    np.testing.assert_array_equal(rows.sparsity, steps.sparsity[offsets])
    for offset in offsets + [schedule.all_steps + 100]:  # past the window: the last row
        target, stops = operation_targets(schedule, rows, schedule.start_step + offset, schedule.start_step, 0.0)
        row = min(offset, schedule.all_steps)
        assert float(target) == float(steps.sparsity[row])
        assert stops.tolist() == steps.stops[row].tolist()


def test_unplanned_offset_uses_the_float32_formula():
    schedule = SuppressSchedule.from_steps(1, 10, 5, sparse_end=0.5)  # rows at offsets 1, 3, 5, 7, 9, 10
    rows = operation_tables(schedule, (100, 100), (-1, 80))
    target, stops = operation_targets(schedule, rows, 3, 1, 0.0)  # offset 2: 0.5 - 0.5 * 0.8**3
    assert float(target) == pytest.approx(0.244, abs=1e-6)
    assert stops.tolist() == [24, 19]  # int(100 * 0.244); min_num 80 caps the second at 0.2
    target, _ = operation_targets(schedule, rows, 3, 1, 0.3)  # never below the previous target
    assert float(target) == pytest.approx(0.3)


def _lowered_size(all_steps: int) -> int:
    params = {"w": jnp.ones((16, 8)), "b": jnp.ones(8)}
    tx = suppress([LayerRule("w", is_add_noise=True)], SuppressSchedule.from_steps(1, all_steps, 100))
    state = tx.init(params)
    return len(jax.jit(tx.update).lower(params, state, params).as_text())


def test_lowered_size_does_not_grow_with_the_schedule():
    small, large = _lowered_size(1000), _lowered_size(1_000_000)
    assert large <= 1.2 * small, (small, large)


def _run(schedule: SuppressSchedule, updates: int, w0: jax.Array):
    """Plain SGD with zero gradients: the weights change only by suppression."""
    params = {"w": w0}
    tx = optax.chain(optax.sgd(0.1), suppress([LayerRule("w", is_add_noise=True)], schedule, seed=3))
    state = tx.init(params)
    step = jax.jit(tx.update)
    history = []
    for _ in range(updates):
        u, state = step(jax.tree.map(jnp.zeros_like, params), state, params)
        params = optax.apply_updates(params, u)
        history.append(params["w"])
    return history, find_suppress_state(state)


W0 = jnp.linspace(-1.0, 1.0, 40)


def test_default_ends_the_window_below_sparse_end():
    history, state = _run(SuppressSchedule.from_epochs(1, 2, 10, 4), 20, W0)
    assert int((history[-1] == 0).sum()) == 35  # int(40 * 0.8969625)
    assert int(state.operations) == 4 and float(state.sparsity) == pytest.approx(0.8969625, abs=1e-7)


def test_reach_sparse_end_ends_at_the_stop_count_of_sparse_end():
    history, state = _run(SuppressSchedule.from_epochs(1, 2, 10, 4, reach_sparse_end=True), 20, W0)
    assert int((history[-1] == 0).sum()) == 36  # int(40 * 0.9)
    assert int(state.operations) == 4 and float(state.sparsity) == np.float32(0.9)
    # the earlier operations are the reference's: same zeros after the third operation (step 15)
    reference, _ = _run(SuppressSchedule.from_epochs(1, 2, 10, 4), 16, W0)
    # offset 14 aims at 0.9 - 0.9 * 0.3**3 = 0.8757: int(40 * 0.8757) = 35
    assert int((history[15] == 0).sum()) == int((reference[15] == 0).sum()) == 35
    np.testing.assert_array_equal(history[15], reference[15])


def test_operations_go_on_after_end_step_by_default():
    history, state = _run(SuppressSchedule.from_epochs(1, 2, 10, 4), 30, W0)
    assert int(state.operations) == 6  # 5, 10, 15, 18, then 23 and 28 after the window
    assert int((history[-1] == 0).sum()) == 36  # the operation after step 23 aims at 0.9
    assert not np.array_equal(history[19], history[-1])  # noise went on after the window


def test_stop_after_end_stops_at_end_step():
    history, state = _run(SuppressSchedule.from_epochs(1, 2, 10, 4, stop_after_end=True), 30, W0)
    assert int(state.operations) == 4
    assert int((history[-1] == 0).sum()) == 35
    np.testing.assert_array_equal(history[19], history[-1])  # nothing moves after the window


@pytest.mark.parametrize("name", ["reach_sparse_end", "stop_after_end"])
def test_options_must_be_bools(name):
    with pytest.raises(TypeError, match=name):
        SuppressSchedule.from_epochs(1, 2, 10, 4, **{name: 1})
