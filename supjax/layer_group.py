"""One suppress operation over several layers at once, laid end to end in one vector.

The per-layer operation (:func:`supjax.operation.run_layer`) compiles its selection and rule
kernels once per layer; here the layers of one dtype share one set (:mod:`supjax.segments`):
the selection searches all layers in one loop, the rules read each element's layer's
numbers. The same rules (:func:`supjax.layer_operation.rule_moves`) give the per-layer
results bit for bit, for the exact and the default large path (not MindArmour's large-layer
path of ``reference_parity``, which stays per layer). Measured on LeNet5's train step: the
suppress update compiles several times faster.

>>> import jax, jax.numpy as jnp
>>> from supjax.layers import SelectedLayer, LayerRule
>>> from supjax.engine import plan_layers, run_layer
>>> from supjax.layer_group import group_operation
>>> from supjax.segments import Segments
>>> layers = [jnp.array([0.3, -0.1, 0.2]), jnp.array([0.5, 0.4, -0.01, 0.2])]
>>> plans = plan_layers([SelectedLayer(n, i + 1, w.size, LayerRule(n)) for i, (n, w) in enumerate(zip("ab", layers))])
>>> keys = list(jax.random.split(jax.random.PRNGKey(0), 2))
>>> seg = Segments(((3,), (4,)))
>>> both = group_operation(plans, seg, seg.concat(layers), jnp.ones(7, bool), jnp.array([1, 2]),
...                        jnp.zeros(2, jnp.int32), keys)
>>> alone = run_layer(plans[1], layers[1], jnp.ones(4, bool), 2, 0, keys[1])
>>> bool((seg.split(both.delta)[1] == alone.outcome.delta).all()), alone.outcome.keep.tolist()
(True, [True, True, False, False])
"""

from __future__ import annotations

from typing import Any, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from supjax.layer_operation import (
    LayerOutcome,
    RuleSwitches,
    _newly_suppressed,
    _uniform_noise,
    floor_in_dtype,
    magnitude,
    rule_moves,
)
from supjax.segments import Segments, segment_first_ties, segment_kth_smallest_bits

__all__ = [
    "GroupOutcome",
    "LayerGroup",
    "can_group",
    "group_operation",
]


def can_group(plan: Any) -> bool:
    """Whether a layer's path can run in a group (the exact and default large paths can).

    >>> from supjax.layers import SelectedLayer, LayerRule
    >>> from supjax.engine import plan_layers
    >>> from supjax.layer_group import can_group
    >>> can_group(plan_layers([SelectedLayer("w", 1, 9, LayerRule("w"))])[0])
    True
    """
    return plan.method in ("exact", "large")


class LayerGroup:
    """Layers laid end to end: per-layer counts, per-element spreading and tie-breaking.

    It plays the part :class:`supjax.layer_operation._OneLayer` plays for one layer.

    >>> import jax.numpy as jnp
    >>> from supjax.layer_group import LayerGroup
    >>> from supjax.segments import Segments
    >>> g = LayerGroup(Segments(((2,), (3,))))
    >>> g.count(jnp.array([True, False, True, True, False])).tolist()
    [1, 2]
    >>> g.spread(jnp.array([7, 8])).tolist()
    [7, 7, 8, 8, 8]
    """

    def __init__(self, segments: Segments):
        self.segments = segments

    def count(self, mask: jax.Array) -> jax.Array:
        return self.segments.sums(mask)

    def spread(self, per_layer: jax.Array) -> jax.Array:
        return self.segments.spread(per_layer)

    def first_ties(self, before: jax.Array, ties: jax.Array, stop: jax.Array) -> jax.Array:
        """The first ``stop - count(before)`` ``ties`` of each layer (one search, no count)."""
        return segment_first_ties(before, ties, self.segments, stop)


def _switches(plans: Sequence[Any], group: LayerGroup, dtype: Any) -> RuleSwitches:
    """Each rule's switch per element (a Python bool where all layers agree)."""
    per_layer = [RuleSwitches.of(p.rule, dtype) if p.method == "exact" else RuleSwitches.suppress_only(dtype)
                 for p in plans]

    def spread(values: list[Any], dtype_: Any) -> Any:
        first = values[0]
        if all(isinstance(v, bool) for v in values) and all(v == first for v in values):
            return first
        as_array = np.asarray([np.asarray(v) for v in values], dtype_)
        if np.all(as_array == as_array[0]):
            return jnp.asarray(as_array[0])
        return group.spread(jnp.asarray(as_array))

    return RuleSwitches(
        pull=spread([s.pull for s in per_layer], bool),
        lower_clip=spread([s.lower_clip for s in per_layer], bool),
        upper_clip=spread([s.upper_clip for s in per_layer], bool),
        noise=spread([s.noise for s in per_layer], bool),
        upper_bound=spread([s.upper_bound for s in per_layer], dtype),
        upper_floor=spread([s.upper_floor for s in per_layer], dtype),
    )


class GroupOutcome(NamedTuple):
    """What :func:`group_operation` did: flat ``keep``, ``delta`` and ``move`` (the layers
    end to end), and per layer ``counts``, ``thresholds`` (in the weights' dtype, 0 where
    skipped), ``ran`` (the operation changed it) and ``nonfinite`` (skipped for NaN/Inf).

    >>> from supjax.layer_group import GroupOutcome
    >>> GroupOutcome._fields
    ('keep', 'delta', 'move', 'counts', 'thresholds', 'ran', 'nonfinite')
    """

    keep: jax.Array
    delta: jax.Array
    move: jax.Array
    counts: jax.Array
    thresholds: jax.Array
    ran: jax.Array
    nonfinite: jax.Array


def group_operation(
    plans: Sequence[Any],
    segments: Segments,
    w: jax.Array,
    keep: jax.Array,
    stops: jax.Array,
    last_counts: jax.Array,
    keys: Sequence[jax.Array],
) -> GroupOutcome:
    """:func:`supjax.operation.run_layer` for every layer of ``plans``, run as one.

    ``w`` and ``keep`` hold the layers end to end (``segments``: their shapes; one dtype);
    ``stops``, ``last_counts`` and ``keys`` one entry per layer. Each layer's results equal
    ``run_layer``'s bit for bit.

    >>> import jax, jax.numpy as jnp
    >>> from supjax.layers import SelectedLayer, LayerRule
    >>> from supjax.engine import plan_layers
    >>> from supjax.layer_group import group_operation
    >>> from supjax.segments import Segments
    >>> plans = plan_layers([SelectedLayer("a", 1, 2, LayerRule("a")), SelectedLayer("b", 2, 3, LayerRule("b"))])
    >>> out = group_operation(plans, Segments(((2,), (3,))), jnp.array([0.3, -0.1, 0.2, 0.5, 0.4]),
    ...                       jnp.ones(5, bool), jnp.array([1, 0]), jnp.zeros(2, jnp.int32),
    ...                       list(jax.random.split(jax.random.PRNGKey(0), 2)))
    >>> out.keep.tolist(), out.counts.tolist(), out.ran.tolist()
    ([True, False, True, True, True], [1, 0], [True, False])
    """
    if not all(can_group(p) for p in plans):
        raise ValueError("group_operation: every plan must take the 'exact' or 'large' path")
    dtype = jnp.dtype(w.dtype)
    group = LayerGroup(segments)
    stops = jnp.asarray(stops, jnp.int32)
    last_counts = jnp.asarray(last_counts, jnp.int32)
    finite = group.count(~jnp.isfinite(w)) == 0
    runnable = stops > 0
    go = runnable & finite
    safe_stop = jnp.maximum(stops, 1)

    a, a_bits = magnitude(w)
    prev = ~keep
    thd_bits = segment_kth_smallest_bits(a_bits, segments, safe_stop, 8 * dtype.itemsize - 1)
    thd = jax.lax.bitcast_convert_type(thd_bits, dtype)
    thd_bits_e = group.spread(thd_bits)
    suppressed = prev | _newly_suppressed(a_bits, prev, thd_bits_e, safe_stop, None, False, layout=group)

    def noise() -> jax.Array:
        return segments.concat([
            _uniform_noise(k, shape).astype(dtype) if p.method == "exact" and p.rule.is_add_noise
            else jnp.zeros(shape, dtype) for p, k, shape in zip(plans, keys, segments.shapes)])

    delta, move = rule_moves(w, a, a_bits, suppressed, group.spread(thd), thd_bits_e,
                             _switches(plans, group, dtype), noise=noise)
    go_e = group.spread(go)
    return GroupOutcome(
        keep=jnp.where(go_e, ~suppressed, keep),
        delta=jnp.where(go_e, delta, jnp.zeros_like(delta)),
        move=jnp.where(go_e, move, jnp.zeros_like(move)),
        counts=jnp.where(go, group.count(suppressed), last_counts),
        thresholds=jnp.where(go, thd, jnp.zeros_like(thd)),
        ran=go,
        nonfinite=~finite & runnable,
    )
