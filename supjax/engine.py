"""The door for adapters: the parts supjax's transformation is assembled from.

Who it is for: code that drives Suppress Privacy outside optax — ``compat_mindspore``
(MindArmour's controller on MindSpore), benchmarks, other frameworks' adapters — and needs
the same rules the optax transformation uses, one step at a time. Users of
:func:`supjax.suppress` never need it.

What it promises: the names below stay importable from ``supjax.engine`` and keep their
meaning within a minor version of supjax; their signatures may gain keyword arguments.
Anything not listed here (underscored names, the module layout behind this door) may change
at any release. Like ``equinox.internal``: public enough to build on, not the user API.

What is here, by owner:

* the layers (:mod:`supjax.layers`): :class:`SelectedLayer`, :func:`select_layers` and the
  two large-layer sizes ``DOCUMENTED_LARGE_LAYER_SIZE`` (100000, the default) and
  ``REFERENCE_LARGE_LAYER_SIZE`` (10000, MindArmour's code);
* the operation (:mod:`supjax.operation`), which owns the choice of path per layer:
  :class:`LayerPlan`, :func:`plan_layers`, :func:`as_large`, :class:`LayerRun`,
  :func:`run_layer`, :class:`OperationResult`, :func:`suppress_operation` and
  ``GIVE_UP_MAGNITUDE`` (0.02, below which the whole operation gives up);
* the per-layer rules (:mod:`supjax.layer_operation`), which own each :class:`Move`'s
  target (:func:`target_magnitudes`): :class:`LayerOutcome`, :func:`exact_operation`;
* the schedule (:mod:`supjax.schedule`), which owns the timing: :class:`ScheduleState`,
  :func:`advance_schedule`, :func:`step_flags`, :func:`epoch_flags`, :func:`next_sparsity`,
  :func:`stop_count`, :func:`stop_counts`; and what the compiled step holds of it
  (:mod:`supjax.schedule_plan`): one row per planned operation, :class:`OperationTables`,
  :func:`operation_tables`, :func:`operation_targets`, :func:`planned_operation_steps`, and
  the older per-step tables :class:`ScheduleTables`, :func:`schedule_tables`,
  :func:`targets_at` (O(steps): for adapters and tests, no longer compiled in);
* the argument checks (:mod:`supjax._checks`): :func:`check_int`, :func:`check_real`,
  :func:`check_bool`.

One controller step with these parts (what ``compat_mindspore.SuppressCtrl`` does):

>>> import jax, jax.numpy as jnp
>>> from supjax import LayerRule, SuppressSchedule
>>> from supjax import engine
>>> params = {"a": jnp.ones(3), "w": jnp.linspace(-1.0, 1.0, 8)}
>>> plans = engine.plan_layers(engine.select_layers(params, [LayerRule("w")]))
>>> schedule = SuppressSchedule.from_steps(1, 8, 2, sparse_end=0.5)
>>> state = engine.ScheduleState(False, 0, 0)
>>> for step in (1, 2, 3, 4):
...     in_window, is_final = engine.step_flags(schedule, step)
...     state, operate = engine.advance_schedule(state, step, in_window, is_final, schedule.min_gap)
>>> sparsity = engine.next_sparsity(schedule, 4, int(state.start_step))
>>> stops = engine.stop_counts([p.size for p in plans], [p.rule.min_num for p in plans], sparsity)
>>> result = engine.suppress_operation(plans, [params["w"]], [jnp.ones(8, bool)], jnp.zeros(1, jnp.int32),
...                                    stops, jax.random.PRNGKey(0))
>>> bool(operate), stops.tolist(), result.keep[0].tolist()
(True, [3], [True, True, False, False, False, True, True, True])
"""

from supjax._checks import check_bool, check_int, check_real
from supjax.layer_operation import LayerOutcome, Move, exact_operation, target_magnitudes
from supjax.layers import (
    DOCUMENTED_LARGE_LAYER_SIZE,
    REFERENCE_LARGE_LAYER_SIZE,
    SelectedLayer,
    select_layers,
)
from supjax.operation import (
    GIVE_UP_MAGNITUDE,
    LayerPlan,
    LayerRun,
    OperationResult,
    as_large,
    plan_layers,
    run_layer,
    suppress_operation,
)
from supjax.schedule import (
    ScheduleState,
    advance_schedule,
    epoch_flags,
    next_sparsity,
    step_flags,
    stop_count,
    stop_counts,
)
from supjax.schedule_plan import (
    OperationTables,
    ScheduleTables,
    operation_tables,
    operation_targets,
    planned_operation_steps,
    schedule_tables,
    targets_at,
)

__all__ = [
    "DOCUMENTED_LARGE_LAYER_SIZE",
    "GIVE_UP_MAGNITUDE",
    "REFERENCE_LARGE_LAYER_SIZE",
    "LayerOutcome",
    "LayerPlan",
    "LayerRun",
    "Move",
    "OperationResult",
    "OperationTables",
    "ScheduleState",
    "ScheduleTables",
    "SelectedLayer",
    "advance_schedule",
    "as_large",
    "check_bool",
    "check_int",
    "check_real",
    "epoch_flags",
    "exact_operation",
    "next_sparsity",
    "operation_tables",
    "operation_targets",
    "plan_layers",
    "planned_operation_steps",
    "run_layer",
    "schedule_tables",
    "select_layers",
    "step_flags",
    "stop_count",
    "stop_counts",
    "suppress_operation",
    "target_magnitudes",
]
