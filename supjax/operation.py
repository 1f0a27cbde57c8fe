"""One suppress operation over every selected layer.

:func:`plan_layers` decides, once and statically, which path each selected layer takes
(exact, large, or MindArmour's large-layer path under reference parity; :func:`as_large`
when a caller asks for a large-layer path by name); :func:`run_layer` runs one layer on its
path, skipping it when its rules say so; :func:`suppress_operation` runs them all as a pure
function of arrays. Both the optax transformation and ``compat_mindspore`` call these, so
the choice of path lives in one place.
"""

from __future__ import annotations

from typing import Literal, NamedTuple, Sequence

import jax
import jax.numpy as jnp

from supjax.layers import (
    DOCUMENTED_LARGE_LAYER_SIZE,
    REFERENCE_LARGE_LAYER_SIZE,
    LayerRule,
    SelectedLayer,
)
from supjax.layer_operation import (
    LayerOutcome,
    exact_operation,
    ceil_in_dtype,
    large_operation,
    large_operation_reference,
)

__all__ = [
    "GIVE_UP_MAGNITUDE",
    "LayerPlan",
    "LayerRun",
    "OperationResult",
    "as_large",
    "plan_layers",
    "run_layer",
    "suppress_operation",
]

GIVE_UP_MAGNITUDE = 0.02  # the operation is skipped while the first parameter is this small
HUGE_LAYER_SIZE = 10 * 10000 * 10000  # above this the reference cuts a layer into parts
MAX_PARTS = 16

Path = Literal["exact", "large", "large_reference"]


class LayerPlan(NamedTuple):
    """Static facts about one selected layer: which path it takes and how.

    >>> from supjax.layers import SelectedLayer, LayerRule
    >>> from supjax.engine import plan_layers
    >>> plan = plan_layers([SelectedLayer("w", 0, 20_000, LayerRule("w"))], reference_parity=True)[0]
    >>> plan.method, plan.parts, plan.is_first_parameter  # the first parameter stays exact
    ('exact', 1, True)
    """

    path_name: str
    size: int
    rule: LayerRule
    method: Path
    parts: int
    is_first_parameter: bool


def _parts_for(size: int) -> int:
    parts, part_size = 1, size
    while part_size > HUGE_LAYER_SIZE and part_size % 2 == 0 and parts < MAX_PARTS:
        parts, part_size = parts * 2, part_size // 2
    return parts


def plan_layers(
    selected: Sequence[SelectedLayer],
    reference_parity: bool = False,
    large_layer_size: int | None = None,
) -> tuple[LayerPlan, ...]:
    """Choose each layer's path: exact below ``large_layer_size``, large above it.

    ``large_layer_size`` defaults to the documented 100000, or MindArmour's 10000 under
    ``reference_parity`` (where, as in the reference, the network's first parameter always
    takes the exact path).

    >>> from supjax.layers import SelectedLayer, LayerRule
    >>> from supjax.engine import plan_layers
    >>> plan_layers([SelectedLayer("w", 0, 200_000, LayerRule("w"))])[0].method
    'large'
    """
    if large_layer_size is None:
        large_layer_size = REFERENCE_LARGE_LAYER_SIZE if reference_parity else DOCUMENTED_LARGE_LAYER_SIZE
    plans = []
    for layer in selected:
        first = layer.leaf_index == 0
        plan = LayerPlan(layer.path, layer.size, layer.rule, "exact", 1, first)
        large = layer.size > large_layer_size and not (reference_parity and first)
        plans.append(as_large(plan, reference_parity) if large else plan)
    return tuple(plans)


def as_large(plan: LayerPlan, reference_parity: bool = False) -> LayerPlan:
    """``plan`` moved onto the large-layer path: ``"large"``, or ``"large_reference"`` under parity.

    :func:`plan_layers` uses it above the size threshold; MindArmour's
    ``update_mask_layer_approximity`` asks for this path whatever the layer's size.

    >>> from supjax.layers import SelectedLayer, LayerRule
    >>> from supjax.engine import as_large, plan_layers
    >>> plan = plan_layers([SelectedLayer("w", 1, 400, LayerRule("w"))])[0]
    >>> plan.method, as_large(plan).method, as_large(plan, reference_parity=True).method
    ('exact', 'large', 'large_reference')
    """
    method: Path = "large_reference" if reference_parity else "large"
    parts = _parts_for(plan.size) if method == "large_reference" else 1
    return plan._replace(method=method, parts=parts)


class OperationResult(NamedTuple):
    """New keep-masks, corrections and recorded counts of every selected layer.

    ``keep``, ``delta`` and ``move`` hold one array per layer, shaped like it; the others
    one entry per layer.

    >>> import jax, jax.numpy as jnp
    >>> from supjax.layers import SelectedLayer, LayerRule
    >>> from supjax.engine import plan_layers, suppress_operation
    >>> plans = plan_layers([SelectedLayer("w", 1, 2, LayerRule("w"))])
    >>> res = suppress_operation(plans, [jnp.array([0.5, 0.1])], [jnp.ones(2, bool)],
    ...                          jnp.zeros(1, jnp.int32), jnp.array([1]), jax.random.PRNGKey(0))
    >>> res.move[0].tolist(), res.thresholds.tolist(), bool(res.applied)
    ([0, 1], [0.10000000149011612], True)
    """

    keep: tuple[jax.Array, ...]
    delta: tuple[jax.Array, ...]
    move: tuple[jax.Array, ...]  # int8 per weight: which rule moved it (supjax.layer_operation.Move)
    counts: jax.Array  # int32[L], the recorded suppressed count per layer
    thresholds: jax.Array  # float32[L], each layer's magnitude threshold (0 where skipped)
    nonfinite: jax.Array  # bool[L], layers skipped because they held NaN or Inf
    applied: jax.Array  # bool, False when the whole operation gave up


class LayerRun(NamedTuple):
    """What :func:`run_layer` did to one layer.

    ``outcome`` is the layer's :class:`~supjax.layer_operation.LayerOutcome` (the old mask,
    zero corrections and the previous count when nothing changed; ``threshold`` in the
    weights' dtype); ``changed`` says whether the operation ran and changed the layer;
    ``nonfinite`` whether it was skipped because the layer held NaN or Inf.

    >>> import jax, jax.numpy as jnp
    >>> from supjax.layers import SelectedLayer, LayerRule
    >>> from supjax.engine import plan_layers, run_layer
    >>> plan = plan_layers([SelectedLayer("w", 1, 3, LayerRule("w"))])[0]
    >>> run = run_layer(plan, jnp.array([0.3, jnp.nan, 0.2]), jnp.ones(3, bool), 1, 0, jax.random.PRNGKey(0))
    >>> bool(run.changed), bool(run.nonfinite), int(run.outcome.count)
    (False, True, 0)
    """

    outcome: LayerOutcome
    changed: jax.Array
    nonfinite: jax.Array


def run_layer(
    plan: LayerPlan,
    w: jax.Array,
    keep: jax.Array,
    stop: jax.Array,
    last_count: jax.Array,
    key: jax.Array,
    reference_parity: bool = False,
) -> LayerRun:
    """One layer on its planned path, skipped (no change, no correction) when its rules say so.

    Skipped when ``stop <= 0``, when the layer holds NaN or Inf, and on the reference's
    large-layer path when ``stop < last_count + parts`` or no part found a threshold.
    ``key`` feeds the noise of the exact path (the large paths ignore it).

    >>> import jax, jax.numpy as jnp
    >>> from supjax.layers import SelectedLayer, LayerRule
    >>> from supjax.engine import plan_layers, run_layer
    >>> plan = plan_layers([SelectedLayer("w", 1, 4, LayerRule("w"))])[0]
    >>> w = jnp.array([0.3, -0.1, 0.1, 0.2])
    >>> run = run_layer(plan, w, jnp.ones(4, bool), 2, 0, jax.random.PRNGKey(0))
    >>> run.outcome.keep.tolist(), bool(run.changed)
    ([True, False, False, True], True)
    """
    stop = jnp.asarray(stop, jnp.int32)
    last_count = jnp.asarray(last_count, jnp.int32)
    finite = jnp.all(jnp.isfinite(w))
    if plan.method == "large_reference":
        runnable = (stop > 0) & (stop >= last_count + plan.parts)
    else:
        runnable = stop > 0
    safe_stop = jnp.maximum(stop, 1)

    def run(_):
        done = jnp.asarray(True)
        if plan.method == "exact":
            out = exact_operation(w, keep, safe_stop, key, plan.rule, reference_parity)
        elif plan.method == "large":
            out = large_operation(w, keep, safe_stop)
        else:
            out, done = large_operation_reference(w, keep, safe_stop, last_count, plan.parts)
            out = out._replace(count=jnp.where(done, out.count, last_count))
        return out.keep, out.delta, out.move, out.count, out.threshold.astype(w.dtype), done

    def skip(_):
        zero = jnp.zeros([], w.dtype)
        return keep, jnp.zeros_like(w), jnp.zeros(w.shape, jnp.int8), last_count, zero, jnp.asarray(False)

    # Both computed and one selected, not a lax.cond: the layer is skipped only when its stop
    # count is 0 or it holds NaN/Inf, so the saved work is rare, while a conditional per layer
    # measured +15 % compile time (CPU seconds) for LeNet5's operation, +10 % for its whole train
    # step. Identical results.
    go = runnable & finite
    ran, skipped = run(None), skip(None)
    new_keep, delta, move, count, thd, done = (jnp.where(go, a, b) for a, b in zip(ran, skipped))
    outcome = LayerOutcome(new_keep, delta, count, thd, move)
    return LayerRun(outcome, done, ~finite & runnable)


def suppress_operation(
    plans: Sequence[LayerPlan],
    weights: Sequence[jax.Array],
    keeps: Sequence[jax.Array],
    counts: jax.Array,
    stops: jax.Array,
    key: jax.Array,
    reference_parity: bool = False,
) -> OperationResult:
    """One suppress operation: every selected layer, given how many weights each must lose.

    ``stops[i]`` is layer ``i``'s stop count (:func:`supjax.schedule.stop_count`),
    ``counts[i]`` its previously recorded suppressed count. A layer holding NaN or Inf is
    skipped and flagged. The whole operation gives up (nothing changes) when the network's
    first parameter is selected, has a positive stop count and ``max|w| < 0.02``.

    >>> import jax, jax.numpy as jnp
    >>> from supjax.layers import SelectedLayer, LayerRule
    >>> from supjax.engine import plan_layers, suppress_operation
    >>> plans = plan_layers([SelectedLayer("w", 1, 4, LayerRule("w"))])
    >>> res = suppress_operation(plans, [jnp.array([0.3, -0.1, 0.1, 0.2])], [jnp.ones(4, bool)],
    ...                          jnp.zeros(1, jnp.int32), jnp.array([2]), jax.random.PRNGKey(0))
    >>> res.keep[0].tolist(), res.counts.tolist()
    ([True, False, False, True], [2])
    """
    keys = jax.random.split(key, len(plans))
    stops = jnp.asarray(stops, jnp.int32)
    counts = jnp.asarray(counts, jnp.int32)
    runs = [
        run_layer(plan, w, k, stops[i], counts[i], keys[i], reference_parity)
        for i, (plan, w, k) in enumerate(zip(plans, weights, keeps))
    ]
    new_keep = tuple(r.outcome.keep for r in runs)
    delta = tuple(r.outcome.delta for r in runs)
    move = tuple(r.outcome.move for r in runs)
    new_counts = jnp.stack([r.outcome.count for r in runs]).astype(jnp.int32)
    thresholds = jnp.stack([r.outcome.threshold.astype(jnp.float32) for r in runs])
    nonfinite = jnp.stack([r.nonfinite for r in runs])

    applied = jnp.asarray(True)
    if plans and plans[0].is_first_parameter:
        w0 = weights[0]
        too_small = jnp.max(jnp.abs(w0)) < ceil_in_dtype(GIVE_UP_MAGNITUDE, w0.dtype)
        applied = ~((stops[0] > 0) & too_small)
    new_keep = tuple(jnp.where(applied, nk, k) for nk, k in zip(new_keep, keeps))
    delta = tuple(jnp.where(applied, d, jnp.zeros_like(d)) for d in delta)
    move = tuple(jnp.where(applied, m, jnp.zeros_like(m)) for m in move)
    new_counts = jnp.where(applied, new_counts, counts)
    nonfinite = nonfinite & applied
    return OperationResult(new_keep, delta, move, new_counts, thresholds, nonfinite, applied)
