"""One suppress operation on one layer (SPEC.md section 4), vectorized.

Each function takes a layer's weights ``w``, its keep-mask (``True`` = kept) and the number
of weights to suppress (``stop``, a traced int32 >= 1), and returns a
:class:`LayerOutcome`: the new keep-mask, the correction ``delta`` (how far each weight must
move: the next step lands on ``w - delta``; zero where nothing is corrected) and the count
to record. Nothing here loops over elements in Python.

Layers keep their shape throughout (no ``reshape(-1)``): everything is elementwise, a sum or
a selection (:mod:`supjax.kth_smallest`), so a layer sharded over a device mesh stays sharded, and
"index order" means row-major order of the layer (see :func:`supjax.kth_smallest.first_in_order`).
"""

from __future__ import annotations

import enum
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from supjax.layers import LayerRule
from supjax.kth_smallest import first_in_order, kth_smallest

__all__ = [
    "Move",
    "LOWER_BOUND",
    "NOISE_THRESHOLD",
    "NOISE_VOLUME",
    "LayerOutcome",
    "RuleSwitches",
    "magnitude",
    "ceil_in_dtype",
    "floor_in_dtype",
    "target_magnitudes",
    "exact_operation",
    "large_operation",
    "large_operation_reference",
    "rule_moves",
]

LOWER_BOUND = 0.005  # kept weights are pulled out to at least this magnitude
NOISE_THRESHOLD = 0.5  # kept weights above this magnitude get noise
NOISE_VOLUME = 0.1  # noise is U(-NOISE_VOLUME, NOISE_VOLUME)


class Move(enum.IntEnum):
    """Which rule of an operation moved a weight (``LayerOutcome.move``, int8 per weight).

    Each weight is moved by at most one rule; its correction ``delta`` is ``w - target``:

    * ``NONE``: not moved (``delta`` 0);
    * ``SUPPRESSED``: set to 0 (newly or again);
    * ``PULLED``: ``|w| <= threshold`` but kept (ties, ``min_num``): to ``sign(w) * min(threshold, LOWER_BOUND)``;
    * ``LOWER_CLIP``: to ``sign(w) * LOWER_BOUND``;
    * ``UPPER_CLIP``: to ``sign(w) * upper_bound``;
    * ``NOISE``: by ``U(-0.1, 0.1)`` noise.

    The targets are listed once, in :func:`target_magnitudes`; a caller that applies
    corrections in another precision (``compat_mindspore`` under reference parity)
    recomputes them from the weight and that table.

    >>> from supjax.engine import Move
    >>> int(Move.SUPPRESSED), Move(4).name
    (1, 'UPPER_CLIP')
    """

    NONE = 0
    SUPPRESSED = 1
    PULLED = 2
    LOWER_CLIP = 3
    UPPER_CLIP = 4
    NOISE = 5


class LayerOutcome(NamedTuple):
    """Result of one operation on one layer (arrays shaped like the layer).

    ``keep``: new keep-mask; ``delta``: correction (the next step lands on ``w - delta``);
    ``count``: suppressed count to record; ``threshold``: magnitude threshold used;
    ``move``: which rule moved each weight (int8 :class:`Move` codes).

    >>> import jax.numpy as jnp
    >>> from supjax.layer_operation import large_operation
    >>> out = large_operation(jnp.array([0.3, -0.1, 0.2]), jnp.ones(3, bool), jnp.int32(1))
    >>> out.keep.tolist(), out.delta.tolist(), int(out.count), out.move.tolist()
    ([True, False, True], [0.0, -0.10000000149011612, 0.0], 1, [0, 1, 0])
    """

    keep: jax.Array
    delta: jax.Array
    count: jax.Array
    threshold: jax.Array
    move: jax.Array


def target_magnitudes(
    threshold: Any, upper_bound: Any, minimum: Callable[[Any, Any], Any] = min
) -> dict[Move, Any]:
    """Where each :class:`Move` with a fixed target puts a weight: ``sign(w) * magnitude``.

    * ``PULLED``: ``minimum(threshold, LOWER_BOUND)``;
    * ``LOWER_CLIP``: ``LOWER_BOUND``;
    * ``UPPER_CLIP``: ``upper_bound`` (the effective bound, ``max(0.10, upper_bound)``).

    ``SUPPRESSED`` puts a weight at 0 (its correction is the weight itself); ``NONE`` leaves
    it and ``NOISE`` moves it by noise. With Python's ``min`` (the default), ``PULLED``'s
    entry is the ``threshold`` object itself when ``threshold <= LOWER_BOUND`` and the
    constant otherwise, as in MindArmour's ``min(0.005, threshold)``; inside ``jit`` pass
    ``jnp.minimum``.

    >>> import numpy as np
    >>> from supjax.engine import Move, target_magnitudes
    >>> table = target_magnitudes(0.01, 1.2)
    >>> [(move.name, value) for move, value in table.items()]
    [('PULLED', 0.005), ('LOWER_CLIP', 0.005), ('UPPER_CLIP', 1.2)]
    >>> pulled = target_magnitudes(np.float32(0.003), 1.2)[Move.PULLED]
    >>> type(pulled).__name__, float(pulled) == float(np.float32(0.003))
    ('float32', True)
    """
    return {
        Move.PULLED: minimum(threshold, LOWER_BOUND),
        Move.LOWER_CLIP: LOWER_BOUND,
        Move.UPPER_CLIP: upper_bound,
    }


def floor_in_dtype(value: float, dtype) -> np.ndarray:
    """Largest number of ``dtype`` that is ``<= value`` (``value >= 0``).

    With it, ``x > value`` computed in ``dtype`` equals the float64 comparison exactly.

    >>> import numpy as np
    >>> from supjax.layer_operation import floor_in_dtype
    >>> float(floor_in_dtype(0.005, np.float32)) <= 0.005
    True
    """
    rounded = np.asarray(value, dtype=dtype)
    if float(rounded) > value:
        bits = rounded.view(np.dtype(f"uint{rounded.dtype.itemsize * 8}"))
        rounded = (bits - 1).astype(bits.dtype).view(rounded.dtype)
    return rounded


def ceil_in_dtype(value: float, dtype) -> np.ndarray:
    """Smallest number of ``dtype`` that is ``>= value`` (``value >= 0``).

    With it, ``x < value`` computed in ``dtype`` equals the float64 comparison exactly.

    >>> import numpy as np
    >>> from supjax.layer_operation import ceil_in_dtype
    >>> float(ceil_in_dtype(0.02, np.float32)) >= 0.02
    True
    """
    rounded = np.asarray(value, dtype=dtype)
    if float(rounded) < value:
        bits = rounded.view(np.dtype(f"uint{rounded.dtype.itemsize * 8}"))
        rounded = (bits + 1).astype(bits.dtype).view(rounded.dtype)
    return rounded


def _bits_type(dtype) -> jnp.dtype:
    return jnp.dtype(f"uint{jnp.dtype(dtype).itemsize * 8}")


def magnitude(w: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``|w|`` by clearing the sign bit, and its bit pattern as an unsigned integer.

    Comparing the bit patterns orders non-negative floats exactly, subnormals included
    (XLA on CPU flushes subnormals to zero in float comparisons; NumPy does not).

    >>> import jax.numpy as jnp
    >>> from supjax.layer_operation import magnitude
    >>> a, bits = magnitude(jnp.array([-0.5, 1e-44], jnp.float32))
    >>> a.tolist()[0], int(bits[1]) > 0
    (0.5, True)
    """
    utype = _bits_type(w.dtype)
    sign_off = jnp.asarray(np.iinfo(utype).max >> 1, utype)
    bits = jax.lax.bitcast_convert_type(w, utype) & sign_off
    return jax.lax.bitcast_convert_type(bits, w.dtype), bits


def _as_bits(x: jax.Array) -> jax.Array:
    return jax.lax.bitcast_convert_type(x, _bits_type(x.dtype))


def _first_in_order(flags: jax.Array, budget: jax.Array) -> jax.Array:
    """``flags`` restricted to its first ``budget`` set positions in index order.

    The selection runs only when there are more than ``budget`` (ties are rare).
    """
    total = jnp.sum(flags, dtype=jnp.int32)
    return jax.lax.cond(total <= budget, lambda f: f, lambda f: first_in_order(f, budget), flags)


class _OneLayer:
    """How the rules count, spread and tie-break over one layer (a group of layers laid end
    to end does the same per layer: :class:`supjax.layer_group.LayerGroup`)."""

    @staticmethod
    def count(mask: jax.Array) -> jax.Array:
        return jnp.sum(mask, dtype=jnp.int32)

    @staticmethod
    def spread(per_layer: Any) -> Any:
        return per_layer

    @staticmethod
    def first(flags: jax.Array, budget: jax.Array) -> jax.Array:
        return _first_in_order(flags, budget)

    def first_ties(self, before: jax.Array, ties: jax.Array, stop: jax.Array) -> jax.Array:
        """The first ``stop - count(before)`` set ``ties`` in index order."""
        return self.first(ties, stop - self.count(before))


ONE_LAYER = _OneLayer()


def _newly_suppressed(a, prev, thd, stop, limit, parity: bool, layout: Any = ONE_LAYER):
    """Kept weights that this operation suppresses (``a``, ``thd``: magnitude bit patterns).

    Default: all ``a < thd``, then ties at ``thd`` in index order, so that exactly ``stop``
    are suppressed in all. ``parity``: the reference's rule, ``a <= thd`` while the prefix
    count of (suppressed or ``a <= thd``) is below ``limit``. ``thd`` is per element and
    ``stop`` per layer (``layout`` counts and tie-breaks per layer).
    """
    if parity:
        low = a <= thd
        return low & layout.first(prev | low, limit) & ~prev
    below = (a < thd) & ~prev
    ties = (a == thd) & ~prev
    return below | layout.first_ties(prev | below, ties, stop)


def _sign_of(w: jax.Array) -> jax.Array:
    """+1 for ``w > 0``, -1 otherwise (a zero weight takes the negative target)."""
    return jnp.where(w > 0, jnp.ones_like(w), -jnp.ones_like(w))


class RuleSwitches(NamedTuple):
    """Which rules after suppression apply, and the upper bound (per element, or one value).

    Each switch is a Python bool (the rule is compiled in or left out) or a bool array (per
    element: layers laid end to end with different rules). ``upper_bound`` is the target of
    ``UPPER_CLIP`` in the weights' dtype, ``upper_floor`` the largest dtype value
    ``<= upper_bound`` that ``|w|`` is compared with.

    >>> from supjax import LayerRule
    >>> import jax.numpy as jnp
    >>> from supjax.layer_operation import RuleSwitches
    >>> s = RuleSwitches.of(LayerRule("w", is_lower_clip=True), jnp.float32)
    >>> s.pull, s.lower_clip, s.noise, float(s.upper_bound)
    (True, True, False, 1.2000000476837158)
    """

    pull: Any
    lower_clip: Any
    upper_clip: Any
    noise: Any
    upper_bound: Any
    upper_floor: Any

    @classmethod
    def of(cls, rule: LayerRule, dtype: Any) -> "RuleSwitches":
        """The exact path's switches for ``rule``."""
        ub = rule.effective_upper_bound
        return cls(True, rule.is_lower_clip, True, rule.is_add_noise,
                   np.asarray(ub, dtype), floor_in_dtype(ub, dtype))

    @classmethod
    def suppress_only(cls, dtype: Any) -> "RuleSwitches":
        """The large path's: suppression and nothing else."""
        return cls(False, False, False, False, np.asarray(0, dtype), floor_in_dtype(0.0, dtype))


def _switched(mask: jax.Array, switch: Any) -> jax.Array | None:
    """``mask`` where ``switch`` is on (None when it is off everywhere)."""
    if switch is False:
        return None
    return mask if switch is True else mask & switch


def rule_moves(
    w: jax.Array,
    a: jax.Array,
    a_bits: jax.Array,
    suppressed: jax.Array,
    thd: Any,
    thd_bits: Any,
    switches: RuleSwitches,
    noise: Callable[[], jax.Array] | None = None,
) -> tuple[jax.Array, jax.Array]:
    """``delta`` and :class:`Move` codes of every weight once ``suppressed`` is known.

    ``thd``/``thd_bits``: the magnitude threshold (value and bit pattern), per element or one
    value; ``noise()`` draws the ``NOISE`` deltas where ``switches.noise`` is on.

    >>> import jax.numpy as jnp
    >>> from supjax import LayerRule
    >>> from supjax.layer_operation import RuleSwitches, magnitude, rule_moves
    >>> w = jnp.array([0.001, -2.0, 0.3])
    >>> a, bits = magnitude(w)
    >>> delta, move = rule_moves(w, a, bits, jnp.array([True, False, False]), a[0], bits[0],
    ...                          RuleSwitches.of(LayerRule("w"), w.dtype))
    >>> (w - delta).tolist(), move.tolist()
    ([0.0, -1.2000000476837158, 0.30000001192092896], [1, 4, 0])
    """
    dtype = w.dtype
    sign = _sign_of(w)
    table = target_magnitudes(thd, switches.upper_bound,
                              minimum=lambda t, c: jnp.minimum(t, jnp.asarray(c, dtype)))
    target = {move: jnp.asarray(value, dtype) for move, value in table.items()}
    moves = [(suppressed, Move.SUPPRESSED, w)]
    rest = ~suppressed
    low = _switched((a_bits <= thd_bits) & ~suppressed, switches.pull)
    if low is not None:
        rest = rest & ~low
        moves.append((low, Move.PULLED, w - sign * target[Move.PULLED]))
    lower_clip = _switched(rest & (a <= floor_in_dtype(LOWER_BOUND, dtype))
                           & (thd > floor_in_dtype(LOWER_BOUND * 0.5, dtype)), switches.lower_clip)
    if lower_clip is not None:
        rest = rest & ~lower_clip
        moves.append((lower_clip, Move.LOWER_CLIP, w - sign * target[Move.LOWER_CLIP]))
    upper_clip = _switched(rest & (a > switches.upper_floor), switches.upper_clip)
    if upper_clip is not None:
        rest = rest & ~upper_clip
        moves.append((upper_clip, Move.UPPER_CLIP, w - sign * target[Move.UPPER_CLIP]))
    noised = _switched(rest & (a > floor_in_dtype(NOISE_THRESHOLD, dtype)), switches.noise)
    if noised is not None and noise is not None:
        moves.append((noised, Move.NOISE, noise()))
    return _deltas_and_moves(w, moves)


def exact_operation(
    w: jax.Array,
    keep: jax.Array,
    stop: jax.Array,
    key: jax.Array,
    rule: LayerRule,
    parity: bool,
    threshold: jax.Array | None = None,
) -> LayerOutcome:
    """The exact path: suppress, lower-pull, lower-clip, upper-clip and noise.

    ``threshold`` defaults to the ``stop``-th smallest magnitude (what the schedule does);
    MindArmour's ``update_mask_layer`` lets a caller pass its own.

    >>> import jax.numpy as jnp, jax
    >>> from supjax import LayerRule
    >>> from supjax.engine import exact_operation
    >>> w = jnp.array([0.3, -0.001, 0.002, 2.0, -0.8])
    >>> out = exact_operation(w, jnp.ones(5, bool), jnp.int32(2), jax.random.PRNGKey(0),
    ...                       LayerRule("w"), parity=False)
    >>> out.keep.tolist(), (w - out.delta).tolist()
    ([True, False, False, True, True], [0.30000001192092896, 0.0, 0.0, 1.2000000476837158, -0.800000011920929])
    """
    dtype = w.dtype
    a, a_bits = magnitude(w)
    prev = ~keep
    n = w.size
    thd = kth_smallest(a, stop) if threshold is None else jnp.asarray(threshold, dtype)
    thd_bits = _as_bits(thd)
    limit = jnp.minimum(jnp.int32(n - rule.min_num), stop)
    suppressed = prev | _newly_suppressed(a_bits, prev, thd_bits, stop, limit, parity)
    delta, move = rule_moves(w, a, a_bits, suppressed, thd, thd_bits, RuleSwitches.of(rule, dtype),
                             noise=lambda: _uniform_noise(key, w.shape).astype(dtype))
    count = jnp.sum(suppressed, dtype=jnp.int32)
    return LayerOutcome(~suppressed, delta, count, thd, move)


def _deltas_and_moves(
    w: jax.Array, moves: list[tuple[jax.Array, Move, jax.Array]]
) -> tuple[jax.Array, jax.Array]:
    """``delta`` and int8 :class:`Move` codes from ``(mask, code, delta)`` per rule.

    The masks are disjoint; a weight no rule moves gets ``delta`` 0 and ``Move.NONE``.
    """
    delta = jnp.zeros_like(w)
    move = jnp.zeros(w.shape, jnp.int8)
    for mask, code, rule_delta in moves:
        delta = jnp.where(mask, rule_delta, delta)
        move = jnp.where(mask, jnp.int8(code), move)
    return delta, move


def _uniform_noise(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """``U(-0.1, 0.1)`` float32 noise, element ``i`` (row-major) as if drawn for ``(size,)``.

    With the partitionable threefry (JAX's default) the bits depend on the key and the
    row-major index only, so drawing in ``shape`` gives the same values as drawing flat and
    reshaping, and keeps a sharded layer's noise sharded. Otherwise it draws flat.
    """
    partitionable = bool(getattr(jax.config, "jax_threefry_partitionable", False))
    threefry = str(getattr(jax.config, "jax_default_prng_impl", "threefry2x32")) == "threefry2x32"
    if partitionable and threefry:
        return jax.random.uniform(key, shape, jnp.float32, -NOISE_VOLUME, NOISE_VOLUME)
    size = int(np.prod(shape, dtype=np.int64))
    return jax.random.uniform(key, (size,), jnp.float32, -NOISE_VOLUME, NOISE_VOLUME).reshape(shape)


def large_operation(w: jax.Array, keep: jax.Array, stop: jax.Array) -> LayerOutcome:
    """The large-layer path by default: suppress exactly ``stop`` weights, no clip or noise.

    >>> import jax.numpy as jnp
    >>> from supjax.layer_operation import large_operation
    >>> out = large_operation(jnp.array([0.3, -0.1, 0.1, 0.2]), jnp.ones(4, bool), jnp.int32(2))
    >>> out.keep.tolist(), int(out.count)
    ([True, False, False, True], 2)
    """
    a, a_bits = magnitude(w)
    prev = ~keep
    thd = kth_smallest(a, stop)
    thd_bits = _as_bits(thd)
    suppressed = prev | _newly_suppressed(a_bits, prev, thd_bits, stop, stop, parity=False)
    delta, move = rule_moves(w, a, a_bits, suppressed, thd, thd_bits, RuleSwitches.suppress_only(w.dtype))
    count = jnp.sum(suppressed, dtype=jnp.int32)
    return LayerOutcome(~suppressed, delta, count, thd, move)


def large_operation_reference(
    w: jax.Array, keep: jax.Array, stop: jax.Array, last_count: jax.Array, parts: int
) -> tuple[LayerOutcome, jax.Array]:
    """MindArmour 2.0.0's large-layer path (``update_mask_layer_approximity``), bit for bit.

    The layer is cut into ``parts`` equal parts; in each, the ``k``-th smallest distinct
    magnitude of the kept weights (all magnitudes while nothing was recorded yet) is a
    candidate threshold; the counted candidates are averaged and every ``|w| <= thd`` is
    suppressed. Returns the outcome and whether anything was counted (else nothing changes).
    This path sorts each part: it is for parity, not speed (a sharded layer is gathered to sort it).

    >>> import jax.numpy as jnp
    >>> from supjax.layer_operation import large_operation_reference
    >>> out, done = large_operation_reference(jnp.array([0.3, -0.1, 0.1, 0.2]),
    ...     jnp.ones(4, bool), jnp.int32(2), jnp.int32(0), parts=1)
    >>> out.keep.tolist(), bool(done)
    ([True, False, False, True], True)
    """
    _, a_bits = magnitude(w)  # sorted and compared as bit patterns: exact for subnormals
    kept = keep.reshape(parts, -1)
    init = last_count <= 0
    k = jnp.maximum(0, (stop - last_count) // parts)
    excluded = jnp.asarray(np.iinfo(a_bits.dtype).max, a_bits.dtype)
    ordered = jnp.sort(jnp.where(init | kept, a_bits.reshape(parts, -1), excluded), axis=1)
    n_valid = jnp.sum(init | kept, axis=1, dtype=jnp.int32)

    def per_part(row, valid):
        in_range = jnp.arange(row.shape[0]) < valid
        first = jnp.concatenate([jnp.ones((1,), bool), row[1:] != row[:-1]]) & in_range
        rank = jnp.cumsum(first.astype(jnp.int32))
        available = jnp.where(init, valid, jnp.sum(first, dtype=jnp.int32))
        real_k = jnp.minimum(k, available - 1)
        value_all = row[jnp.clip(real_k - 1, 0, row.shape[0] - 1)]
        value_distinct = row[jnp.argmax(first & (rank == real_k))]
        value = jnp.where(init, value_all, value_distinct)
        return value, (real_k > 0) & ((value > 0) | init)

    values, counted = jax.vmap(per_part)(ordered, n_valid)
    n_counted = jnp.sum(counted, dtype=jnp.int32)
    if parts == 1:
        thd_bits = values[0]
    else:  # the mean of the counted part thresholds, as the reference averages them
        as_float = jax.lax.bitcast_convert_type(values, w.dtype).astype(jnp.float32)
        mean = jnp.sum(jnp.where(counted, as_float, 0)) / jnp.maximum(n_counted, 1)
        thd_bits = _as_bits(mean.astype(w.dtype))
    thd = jax.lax.bitcast_convert_type(thd_bits, w.dtype)
    new_keep = a_bits > thd_bits
    done = n_counted > 0
    new_keep = jnp.where(done, new_keep, keep)
    delta, move = _deltas_and_moves(w, [(done & ~new_keep, Move.SUPPRESSED, w)])
    count = jnp.sum(~new_keep, dtype=jnp.int32)
    outcome = LayerOutcome(new_keep, delta, count, thd, move)
    return outcome, done
