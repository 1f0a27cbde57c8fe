"""One suppress operation over every selected layer.

:func:`plan_layers` decides, once and statically, which path each selected layer takes
(exact, large, or MindArmour's large-layer path under reference parity; :func:`as_large`
when a caller asks for a large-layer path by name); :func:`run_layer` runs one layer on its
path, skipping it when its rules say so; :func:`suppress_operation` runs them all as a pure
function of arrays. Both the optax transformation and ``compat_mindspore`` call these, so
the choice of path lives in one place.
"""

from __future__ import annotations

from typing import Any, Literal, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from supjax.layers import (
    DOCUMENTED_LARGE_LAYER_SIZE,
    REFERENCE_LARGE_LAYER_SIZE,
    LayerRule,
    SelectedLayer,
)
from supjax.layer_group import GroupOutcome, can_group, group_operation
from supjax.segments import Segments
from supjax.layer_operation import (
    LayerOutcome,
    exact_operation,
    ceil_in_dtype,
    large_operation,
    large_operation_reference,
)

__all__ = [
    "GIVE_UP_MAGNITUDE",
    "GroupedResult",
    "LayerGroups",
    "LayerPlan",
    "LayerRun",
    "OperationResult",
    "as_large",
    "group_layers",
    "grouped_operation",
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


class LayerGroups(NamedTuple):
    """Which selected layers run together (static): layer indices per group and the group's
    :class:`~supjax.segments.Segments`. A group of several layers is carried as one flat
    vector (the layers end to end); a group of one as the layer itself, in its shape.

    >>> import jax.numpy as jnp
    >>> from supjax.operation import LayerGroups
    >>> from supjax.segments import Segments
    >>> g = LayerGroups(((0, 2), (1,)), (Segments(((2,), (1,))), Segments(((3,),))))
    >>> [a.tolist() for a in g.join([jnp.array([1, 2]), jnp.array([3, 4, 5]), jnp.array([6])])]
    [[1, 2, 6], [3, 4, 5]]
    >>> [a.tolist() for a in g.cut([jnp.array([1, 2, 6]), jnp.array([3, 4, 5])])]
    [[1, 2], [3, 4, 5], [6]]
    """

    members: tuple[tuple[int, ...], ...]
    segments: tuple[Segments, ...]

    @property
    def num_layers(self) -> int:
        return sum(len(m) for m in self.members)

    def join(self, per_layer: Sequence[jax.Array]) -> tuple[jax.Array, ...]:
        """One array per group from one per layer."""
        return tuple(
            seg.concat([per_layer[i] for i in m]) if len(m) > 1 else per_layer[m[0]]
            for m, seg in zip(self.members, self.segments)
        )

    def cut(self, per_group: Sequence[jax.Array]) -> tuple[jax.Array, ...]:
        """One array per layer (in layer order) from one per group."""
        out: list[Any] = [None] * self.num_layers
        for m, seg, arr in zip(self.members, self.segments, per_group):
            for i, part in zip(m, seg.split(arr) if len(m) > 1 else (arr,)):
                out[i] = part
        return tuple(out)

    def per_layer(self, per_group: Sequence[jax.Array]) -> jax.Array:
        """A vector over layers (layer order) from one vector per group (its members' order)."""
        if len(self.members) == 1:
            return jnp.asarray(per_group[0])
        out = jnp.zeros(self.num_layers, jnp.asarray(per_group[0]).dtype)
        for m, vec in zip(self.members, per_group):
            out = out.at[np.asarray(m)].set(vec)
        return out

    def sums(self, masks: Sequence[jax.Array]) -> jax.Array:
        """int32 count of set ``masks`` (one per group) per layer."""
        return self.per_layer([
            seg.sums(mask) if len(m) > 1 else jnp.sum(mask, dtype=jnp.int32)[None]
            for m, seg, mask in zip(self.members, self.segments, masks)
        ])


def group_layers(
    plans: Sequence[LayerPlan], weights: Sequence[Any], reference_parity: bool = False, fuse_layers: bool = True
) -> LayerGroups:
    """Group the layers that can run together: one group per dtype of the layers on the exact
    and default large paths (when ``fuse_layers`` and not ``reference_parity``); every other
    layer alone. Only ``weights``' shapes and dtypes are read.

    >>> import jax.numpy as jnp
    >>> from supjax.layers import SelectedLayer, LayerRule
    >>> from supjax.operation import group_layers, plan_layers
    >>> plans = plan_layers([SelectedLayer(n, i, 4, LayerRule(n)) for i, n in enumerate("abc")])
    >>> w = [jnp.ones(4), jnp.ones(4, jnp.float16), jnp.ones(4)]
    >>> group_layers(plans, w).members, group_layers(plans, w, fuse_layers=False).members
    (((0, 2), (1,)), ((0,), (1,), (2,)))
    """
    groups: dict[Any, list[int]] = {}
    alone: list[int] = []
    for i, plan in enumerate(plans):
        if fuse_layers and not reference_parity and can_group(plan):
            groups.setdefault(jnp.dtype(weights[i].dtype), []).append(i)
        else:
            alone.append(i)
    members = sorted([tuple(m) for m in groups.values()] + [(i,) for i in alone])
    segments = tuple(Segments(tuple(tuple(weights[i].shape) for i in m)) for m in members)
    return LayerGroups(tuple(members), segments)


class GroupedResult(NamedTuple):
    """:func:`grouped_operation`'s result: ``keep``, ``delta``, ``move`` one array per group
    (as :meth:`LayerGroups.join` lays them out); the rest as in :class:`OperationResult`.

    >>> from supjax.operation import GroupedResult
    >>> GroupedResult._fields[:3]
    ('keep', 'delta', 'move')
    """

    keep: tuple[jax.Array, ...]
    delta: tuple[jax.Array, ...]
    move: tuple[jax.Array, ...]
    counts: jax.Array
    thresholds: jax.Array
    nonfinite: jax.Array
    applied: jax.Array


def grouped_operation(
    groups: LayerGroups,
    plans: Sequence[LayerPlan],
    weights: Sequence[jax.Array],
    keeps: Sequence[jax.Array],
    counts: jax.Array,
    stops: jax.Array,
    key: jax.Array,
    reference_parity: bool = False,
) -> GroupedResult:
    """:func:`suppress_operation` on ``groups``: ``keeps`` (and the result's arrays) one per group.

    ``weights`` are per layer. A group of several layers runs as one
    (:func:`supjax.layer_group.group_operation`), a layer alone through :func:`run_layer`.

    >>> import jax, jax.numpy as jnp
    >>> from supjax.layers import SelectedLayer, LayerRule
    >>> from supjax.operation import group_layers, grouped_operation, plan_layers
    >>> plans = plan_layers([SelectedLayer(n, i + 1, 2, LayerRule(n)) for i, n in enumerate("ab")])
    >>> w = [jnp.array([0.3, -0.1]), jnp.array([0.2, 0.5])]
    >>> groups = group_layers(plans, w)
    >>> res = grouped_operation(groups, plans, w, groups.join([jnp.ones(2, bool)] * 2),
    ...                         jnp.zeros(2, jnp.int32), jnp.array([1, 1]), jax.random.PRNGKey(0))
    >>> res.keep[0].tolist(), res.counts.tolist()
    ([True, False, False, True], [1, 1])
    """
    keys = jax.random.split(key, len(plans))
    stops = jnp.asarray(stops, jnp.int32)
    counts = jnp.asarray(counts, jnp.int32)
    w_groups = groups.join(weights)
    outs: list[GroupOutcome] = []
    for m, seg, w, k in zip(groups.members, groups.segments, w_groups, keeps):
        if len(m) > 1:
            idx = np.asarray(m)
            outs.append(group_operation([plans[i] for i in m], seg, w, k, stops[idx], counts[idx], [keys[i] for i in m]))
        else:
            (i,) = m
            run = run_layer(plans[i], w, k, stops[i], counts[i], keys[i], reference_parity)
            o = run.outcome
            outs.append(GroupOutcome(o.keep, o.delta, o.move, o.count[None], o.threshold[None], run.changed[None],
                                     run.nonfinite[None]))
    keep, delta, move = ([getattr(o, f) for o in outs] for f in ("keep", "delta", "move"))
    group_counts = [o.counts.astype(jnp.int32) for o in outs]
    thresholds = [o.thresholds.astype(jnp.float32) for o in outs]
    nonfinite = [o.nonfinite for o in outs]
    new_counts = groups.per_layer(group_counts)
    applied = jnp.asarray(True)
    if plans and plans[0].is_first_parameter:
        w0 = weights[0]
        too_small = jnp.max(jnp.abs(w0)) < ceil_in_dtype(GIVE_UP_MAGNITUDE, w0.dtype)
        applied = ~((stops[0] > 0) & too_small)
    return GroupedResult(
        keep=tuple(jnp.where(applied, nk, k) for nk, k in zip(keep, keeps)),
        delta=tuple(jnp.where(applied, d, jnp.zeros_like(d)) for d in delta),
        move=tuple(jnp.where(applied, mv, jnp.zeros_like(mv)) for mv in move),
        counts=jnp.where(applied, new_counts, counts),
        thresholds=groups.per_layer(thresholds),
        nonfinite=groups.per_layer(nonfinite) & applied,
        applied=applied,
    )


def suppress_operation(
    plans: Sequence[LayerPlan],
    weights: Sequence[jax.Array],
    keeps: Sequence[jax.Array],
    counts: jax.Array,
    stops: jax.Array,
    key: jax.Array,
    reference_parity: bool = False,
    fuse_layers: bool = True,
) -> OperationResult:
    """One suppress operation: every selected layer, given how many weights each must lose.

    ``stops[i]`` is layer ``i``'s stop count (:func:`supjax.schedule.stop_count`),
    ``counts[i]`` its previously recorded suppressed count. A layer holding NaN or Inf is
    skipped and flagged. The whole operation gives up (nothing changes) when the network's
    first parameter is selected, has a positive stop count and ``max|w| < 0.02``.

    ``fuse_layers`` runs the layers of one dtype on the exact and default large paths as one
    vector (:mod:`supjax.layer_group`: the same results, one set of kernels to compile
    instead of one per layer); ``False`` runs each layer alone, which keeps a layer sharded
    over devices from being gathered. Under ``reference_parity`` every layer runs alone.

    >>> import jax, jax.numpy as jnp
    >>> from supjax.layers import SelectedLayer, LayerRule
    >>> from supjax.engine import plan_layers, suppress_operation
    >>> plans = plan_layers([SelectedLayer("w", 1, 4, LayerRule("w"))])
    >>> res = suppress_operation(plans, [jnp.array([0.3, -0.1, 0.1, 0.2])], [jnp.ones(4, bool)],
    ...                          jnp.zeros(1, jnp.int32), jnp.array([2]), jax.random.PRNGKey(0))
    >>> res.keep[0].tolist(), res.counts.tolist()
    ([True, False, False, True], [2])
    """
    groups = group_layers(plans, weights, reference_parity, fuse_layers)
    res = grouped_operation(groups, plans, weights, groups.join(keeps), counts, stops, key, reference_parity)
    return OperationResult(groups.cut(res.keep), groups.cut(res.delta), groups.cut(res.move), res.counts,
                           res.thresholds, res.nonfinite, res.applied)
