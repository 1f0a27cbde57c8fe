"""The user API and the door ``supjax.engine``: what each exports, and one owner per rule."""

from __future__ import annotations

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import supjax
from supjax import LayerRule, SuppressSchedule, engine
from supjax.layers import leaf_indices, leaf_paths
from supjax.layer_operation import LOWER_BOUND, Move

USER_API = {
    "LayerRule", "LayerSparsity", "SuppressSchedule", "SuppressState", "find_suppress_state",
    "format_report", "mask_sparsity", "sparsity_report", "suppress", "suppress_gradients",
    "SparsityMetrics", "sparsity_metrics", "ExportReport", "LayerSize", "export_sparse",
    "weight_sparsity", "keep_mask_tree",
}


def test_top_level_is_the_user_api_only():
    assert set(supjax.__all__) == USER_API
    assert all(hasattr(supjax, name) for name in USER_API)
    assert not set(supjax.__all__) & set(engine.__all__)


@pytest.mark.parametrize("name", engine.__all__)
def test_every_door_name_exists_and_has_an_example(name):
    value = getattr(engine, name)
    if inspect.isclass(value) or callable(value):
        doc = inspect.getdoc(value) or ""
        assert doc and ">>>" in doc, f"{name} needs a docstring with an example"
    else:  # a constant, described in the door's docstring
        assert name in engine.__doc__


def reference_epoch_flags(start_epoch, end_epoch, batch_num, cur_epoch, cur_step_in_epoch):
    """MindArmour's ``update_status`` tests, as compat wrote them before the schedule owned them."""
    in_window = start_epoch <= cur_epoch <= end_epoch
    is_final = cur_epoch == end_epoch and cur_step_in_epoch == batch_num - 2
    return in_window, is_final


@pytest.mark.parametrize("start,end,batch_num", [(3, 10, 20), (1, 1, 2), (1, 2, 3), (2, 4, 1), (5, 5, 7)])
def test_epoch_flags_equal_the_reference_rule_even_for_odd_arguments(start, end, batch_num):
    schedule = SuppressSchedule.from_epochs(start, end, batch_num, mask_times=3)
    for epoch in range(0, end + 3):
        for in_epoch in range(-1, batch_num + 3):  # includes steps a caller should never report
            got = engine.epoch_flags(schedule, batch_num, epoch, in_epoch)
            assert got == reference_epoch_flags(start, end, batch_num, epoch, in_epoch), (epoch, in_epoch)


def test_step_flags_traced_and_on_python_ints_agree():
    schedule = SuppressSchedule.from_epochs(2, 4, 5, mask_times=3)
    steps = jnp.arange(0, 30, dtype=jnp.int32)
    traced = jax.jit(jax.vmap(lambda s: jnp.stack(engine.step_flags(schedule, s))))(steps)
    plain = [tuple(bool(f) for f in engine.step_flags(schedule, int(s))) for s in steps]
    assert [tuple(bool(f) for f in row) for row in np.asarray(traced)] == plain
    assert [s for s, (w, _) in enumerate(plain) if w] == list(range(6, 21))
    assert [s for s, (_, f) in enumerate(plain) if f] == [18]


def test_tables_match_next_sparsity_and_stop_count():
    schedule = SuppressSchedule.from_steps(5, 40, 6, sparse_start=0.1, sparse_end=0.95)
    sizes, min_nums = (1000, 37), (-1, 10)
    tables = engine.schedule_tables(schedule, sizes, min_nums)
    previous = 0.0
    for offset in range(schedule.all_steps + 1):
        s = engine.next_sparsity(schedule, schedule.start_step + offset, schedule.start_step, previous)
        previous = s
        assert tables.sparsity[offset] == np.float32(s)
        assert tables.stops[offset].tolist() == engine.stop_counts(sizes, min_nums, s).tolist()
    target, stops = engine.targets_at(schedule, tables, 10_000, schedule.start_step, jnp.float32(0.0))
    assert float(target) == float(tables.sparsity[-1]) and stops.tolist() == tables.stops[-1].tolist()


def test_as_large_is_the_plans_large_path():
    layer = engine.SelectedLayer("w", 1, 200_000, LayerRule("w"))
    for parity in (False, True):
        (planned,) = engine.plan_layers([layer], reference_parity=parity)
        assert engine.as_large(planned, parity) == planned
        small = engine.plan_layers([layer._replace(size=10)], reference_parity=parity)[0]
        assert small.method == "exact"
        assert engine.as_large(small, parity).method == planned.method


def test_run_layer_skips_as_the_operation_does():
    (plan,) = engine.plan_layers([engine.SelectedLayer("w", 1, 4, LayerRule("w"))], reference_parity=True)
    plan = engine.as_large(plan, reference_parity=True)
    w, keep, key = jnp.array([0.4, -0.1, 0.3, 0.2]), jnp.ones(4, bool), jax.random.PRNGKey(0)
    ran = engine.run_layer(plan, w, keep, 2, 0, key, reference_parity=True)
    assert bool(ran.changed) and ran.outcome.keep.tolist() == [True, False, True, False]
    for stop in (0, -3):
        skipped = engine.run_layer(plan, w, keep, stop, 0, key, reference_parity=True)
        assert not bool(skipped.changed) and skipped.outcome.keep.tolist() == [True] * 4
        assert not np.any(np.asarray(skipped.outcome.delta))


@pytest.mark.parametrize("threshold", [0.003, 0.02])
def test_exact_path_targets_are_the_move_table(threshold):
    rule = LayerRule("w", is_lower_clip=True, upper_bound=0.3, min_num=6)
    w = jnp.array([0.001, -0.002, 0.9, -0.5, 0.0025, 0.05, -0.004, 0.2, 0.01, 0.004])
    out = engine.exact_operation(w, jnp.ones(10, bool), jnp.int32(4), jax.random.PRNGKey(0), rule, False,
                                 threshold=jnp.float32(threshold))
    table = engine.target_magnitudes(np.float32(threshold), rule.effective_upper_bound)
    moved = (w - out.delta).tolist()
    for i, code in enumerate(np.asarray(out.move).tolist()):
        if code in table:
            sign = 1.0 if float(w[i]) > 0 else -1.0
            assert moved[i] == float(np.float32(sign * np.float32(table[Move(code)]))), (i, Move(code))
    assert Move.UPPER_CLIP in np.asarray(out.move).tolist()
    assert table[Move.PULLED] == min(np.float32(threshold), LOWER_BOUND)


def test_leaf_paths_and_indices():
    tree = {"b": [jnp.ones(2), jnp.ones(3)], "a": {"kernel": jnp.ones(1)}}
    assert leaf_paths(tree) == ("a/kernel", "b/0", "b/1")
    assert leaf_indices(tree, ["b/1", "a/kernel"]) == (2, 0)
    with pytest.raises(ValueError, match="conv9"):
        leaf_indices(tree, ["conv9/kernel"])
