"""Several layers as one flat vector: segment ids, per-segment sums and selections.

Compiling an operation costs XLA roughly the same for a 150-weight layer as for a
48000-weight one: the kernels are what cost, not the elements. Run per layer, the suppress
operation compiles one set of selection and rule kernels per layer (LeNet5: five). Laid end
to end in one vector, the layers share one set: each element knows its layer (its
*segment*), per-layer numbers are gathered by segment, and the k-th smallest of every
segment comes out of one radix select whose histograms have one row per segment. The
results are the per-layer ones bit for bit (the k-th smallest value of a layer is one
number, whichever way it is found).

Concatenating gathers a layer sharded over devices: callers keep sharded layers apart
(``suppress(..., fuse_layers=False)``).

>>> import jax.numpy as jnp
>>> from supjax.segments import Segments, segment_kth_smallest_bits
>>> seg = Segments(((2, 2), (3,)))
>>> flat = seg.concat([jnp.array([[4.0, 1.0], [3.0, 2.0]]), jnp.array([9.0, 7.0, 8.0])])
>>> flat.tolist(), seg.ids().tolist()
([4.0, 1.0, 3.0, 2.0, 9.0, 7.0, 8.0], [0, 0, 0, 0, 1, 1, 1])
>>> bits = flat.view(jnp.uint32)
>>> kth = segment_kth_smallest_bits(bits, seg.ids(), seg, jnp.array([2, 3]), value_bits=31)
>>> kth.view(jnp.float32).tolist()
[2.0, 9.0]
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from supjax.kth_smallest import _digit_widths, _pick_bucket, _scatter_histogram

__all__ = [
    "Segments",
    "segment_first_in_order",
    "segment_kth_smallest_bits",
]

#: Bins of one histogram round over all segments are kept at most this many: the digit
#: narrows as layers are added (16 bits up to 16 layers, then fewer, never below 8).
_MAX_BINS = 1 << 20


class Segments(NamedTuple):
    """The static layout of layers laid end to end (row-major each): shapes, sizes, offsets.

    >>> import jax.numpy as jnp
    >>> from supjax.segments import Segments
    >>> seg = Segments(((2, 3), (4,)))
    >>> seg.sizes, seg.offsets, seg.total
    ((6, 4), (0, 6), 10)
    >>> [a.shape for a in seg.split(jnp.arange(10))]
    [(2, 3), (4,)]
    """

    shapes: tuple[tuple[int, ...], ...]

    @property
    def sizes(self) -> tuple[int, ...]:
        """Elements per layer."""
        return tuple(int(np.prod(s, dtype=np.int64)) for s in self.shapes)

    @property
    def offsets(self) -> tuple[int, ...]:
        """Where each layer starts in the flat vector."""
        return tuple(int(o) for o in np.concatenate([[0], np.cumsum(self.sizes)[:-1]]))

    @property
    def total(self) -> int:
        """Elements of all layers."""
        return int(sum(self.sizes))

    def ids(self) -> jax.Array:
        """int32 segment (layer) number of every flat element.

        >>> from supjax.segments import Segments
        >>> Segments(((1,), (2,))).ids().tolist()
        [0, 1, 1]
        """
        return self.spread(jnp.arange(len(self.shapes), dtype=jnp.int32))

    def spread(self, per_segment: jax.Array) -> jax.Array:
        """Each segment's entry of ``per_segment`` repeated over its elements.

        Built as broadcasts laid end to end, not a gather by segment id: it fuses into what
        reads it (a gather measured 3.5x slower on LeNet5's 61470 weights).

        >>> import jax.numpy as jnp
        >>> from supjax.segments import Segments
        >>> Segments(((2,), (3,))).spread(jnp.array([7, 8])).tolist()
        [7, 7, 8, 8, 8]
        """
        per_segment = jnp.asarray(per_segment)
        return jnp.concatenate([jnp.broadcast_to(per_segment[i], (n,)) for i, n in enumerate(self.sizes)])

    def concat(self, arrays: Sequence[jax.Array]) -> jax.Array:
        """The layers raveled and laid end to end."""
        return jnp.concatenate([jnp.ravel(a) for a in arrays])

    def split(self, flat: jax.Array) -> tuple[jax.Array, ...]:
        """The flat vector cut back into layers of their shapes."""
        return tuple(
            lax.slice_in_dim(flat, o, o + n).reshape(s)
            for o, n, s in zip(self.offsets, self.sizes, self.shapes)
        )

    def sums(self, flags: jax.Array) -> jax.Array:
        """int32 count of set ``flags`` per segment (one scatter-add by segment id; one
        reduction per segment's slice ran faster but compiled 0.4 s slower for LeNet5).

        >>> import jax.numpy as jnp
        >>> from supjax.segments import Segments
        >>> Segments(((2,), (2,))).sums(jnp.array([True, True, False, True])).tolist()
        [2, 1]
        """
        return jax.ops.segment_sum(flags.astype(jnp.int32), self.ids(), num_segments=len(self.shapes),
                                   indices_are_sorted=True)


def segment_kth_smallest_bits(
    bits: jax.Array, ids: jax.Array, segments: Segments, k: jax.Array, value_bits: int
) -> jax.Array:
    """Per segment, the ``k[s]``-th smallest (1-based, clipped to ``[1, size]``) of unsigned ``bits``.

    One radix select for all segments: each round scatters every element into its segment's
    row of one histogram and picks each row's bucket. Only the low ``value_bits`` bits of
    ``bits`` may be set. Equals :func:`supjax.kth_smallest.kth_smallest` run on each segment.
    """
    num = len(segments.shapes)
    sizes = jnp.asarray(segments.sizes, jnp.int32)
    k = jnp.clip(jnp.asarray(k, jnp.int32), 1, sizes)
    max_width = max(8, min(16, (_MAX_BINS // num).bit_length() - 1))
    widths = _digit_widths(value_bits, max_width)
    prefix = jnp.zeros(num, bits.dtype)
    shift = sum(widths)
    for round_index, width in enumerate(widths):
        shift -= width
        bins = 1 << width
        index = ids * bins + ((bits >> shift) & jnp.asarray(bins - 1, bits.dtype)).astype(jnp.int32)
        mode = lax.GatherScatterMode.PROMISE_IN_BOUNDS
        if round_index > 0:
            matches = (bits >> (shift + width)) == segments.spread(prefix)
            index = jnp.where(matches, index, num * bins)  # out of range: dropped
            mode = lax.GatherScatterMode.FILL_OR_DROP
        histogram = _scatter_histogram(index, num * bins, mode).reshape(num, bins)
        digit, k = jax.vmap(_pick_bucket)(histogram, k)
        prefix = (prefix << width) | digit.astype(bits.dtype)
    return prefix


def segment_first_in_order(flags: jax.Array, ids: jax.Array, segments: Segments, k: jax.Array) -> jax.Array:
    """``flags`` with only the first ``k[s]`` set positions of each segment ``s`` left set.

    Equals :func:`supjax.kth_smallest.first_in_order` run on each segment (``k <= 0`` clears
    a segment). One stable sort by (segment, unset) ranks the set positions of each segment
    in index order: it compiles in about half the time of a radix select over the indices
    but runs about ten times slower (14 ms against 1.3 ms for LeNet5's 61470 weights), and
    callers run it only when a layer has more ties than its budget.

    >>> import jax.numpy as jnp
    >>> from supjax.segments import Segments, segment_first_in_order
    >>> seg = Segments(((3,), (2,)))
    >>> flags = jnp.array([True, False, True, True, True])
    >>> segment_first_in_order(flags, seg.ids(), seg, jnp.array([1, 5])).tolist()
    [True, False, False, True, True]
    """
    iota = lax.iota(jnp.int32, segments.total)
    _, _, order = lax.sort((ids, (~flags).astype(jnp.uint8), iota), num_keys=2, is_stable=True)
    position = jnp.zeros(segments.total, jnp.int32).at[order].set(iota, unique_indices=True)
    rank = position - segments.spread(jnp.asarray(segments.offsets, jnp.int32))  # set first, in index order
    return flags & (rank < segments.spread(jnp.asarray(k, jnp.int32)))
