"""Several layers as one flat vector: segment ids, per-segment sums and selections.

Compiling an operation costs XLA roughly the same for a 150-weight layer as for a
48000-weight one: the kernels are what cost, not the elements. Run per layer, the suppress
operation compiles one set of selection and rule kernels per layer (LeNet5: five). Laid end
to end in one vector, the layers share one set: each element knows its layer (its
*segment*), per-layer numbers are spread over their segments, and the k-th smallest of
every segment comes out of one binary search on its bits, run for all segments in one loop
(its body compiles once; a radix select compiled a histogram and a bucket search per digit).
The results are the per-layer ones bit for bit (the k-th smallest value of a layer is one
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
>>> kth = segment_kth_smallest_bits(bits, seg, jnp.array([2, 3]), value_bits=31)
>>> kth.view(jnp.float32).tolist()
[2.0, 9.0]
"""

from __future__ import annotations

from typing import Any, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax


__all__ = [
    "Segments",
    "segment_first_ties",
    "segment_kth_smallest_bits",
]

#: Width of the rows :func:`segment_kth_smallest_bits` counts in (LeNet5's 61470 weights: 122 rows, 1.6 % padding).
_ROW_WIDTH = 512


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

    def rows(self, flat: jax.Array, width: int, fill: Any) -> tuple[jax.Array, np.ndarray]:
        """The flat vector as rows of ``width``: each segment starts a row, its last row is
        padded with ``fill``. Returns the ``(rows, width)`` matrix and each row's segment.

        >>> import jax.numpy as jnp
        >>> from supjax.segments import Segments
        >>> m, seg = Segments(((3,), (2,))).rows(jnp.arange(5), 2, fill=-1)
        >>> m.tolist(), seg.tolist()
        ([[0, 1], [2, -1], [3, 4]], [0, 0, 1])
        """
        pieces, row_segment = [], []
        for s, (offset, size) in enumerate(zip(self.offsets, self.sizes)):
            count = -(-size // width)
            piece = lax.slice_in_dim(flat, offset, offset + size)
            pieces.append(jnp.pad(piece, (0, count * width - size), constant_values=np.asarray(fill, flat.dtype)))
            row_segment += [s] * count
        return jnp.concatenate(pieces).reshape(-1, width), np.asarray(row_segment, np.int32)

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


def segment_kth_smallest_bits(bits: jax.Array, segments: Segments, k: jax.Array, value_bits: int) -> jax.Array:
    """Per segment, the ``k[s]``-th smallest (1-based, clipped to ``[1, size]``) of unsigned ``bits``.

    A binary search on the answer's bits, the most significant first, for all segments at
    once: bit ``b`` of segment ``s``'s answer is set when fewer than ``k[s]`` of its elements
    lie below the answer so far with bit ``b`` set. One loop body (a compare and a per-segment
    count) runs ``value_bits`` times: it compiles once, where a radix select compiles a
    histogram and a bucket search per digit. Only the low ``value_bits`` bits of ``bits`` may
    be set. Equals :func:`supjax.kth_smallest.kth_smallest` run on each segment.
    """
    num = len(segments.shapes)
    sizes = jnp.asarray(segments.sizes, jnp.int32)
    k = jnp.clip(jnp.asarray(k, jnp.int32), 1, sizes)
    one = jnp.ones((), bits.dtype)

    rows, row_segment = segments.rows(bits, _ROW_WIDTH, fill=np.iinfo(bits.dtype).max)
    in_segment = jnp.asarray(row_segment[:, None] == np.arange(num)[None, :], jnp.int32)  # rows x segments

    def set_bit_if_room(i: jax.Array, answer: jax.Array) -> jax.Array:
        trial = answer | (one << (value_bits - 1 - i).astype(bits.dtype))
        below_per_row = jnp.sum(rows < trial[row_segment][:, None], axis=1, dtype=jnp.int32)
        below = below_per_row @ in_segment
        return jnp.where(below < k, trial, answer)

    return lax.fori_loop(0, value_bits, set_bit_if_room, jnp.zeros(num, bits.dtype))


def segment_first_ties(before: jax.Array, ties: jax.Array, segments: Segments, stop: jax.Array) -> jax.Array:
    """``ties`` with only the first ``stop[s] - count(before in s)`` of each segment ``s`` left
    set (in index order; none when ``before`` already holds ``stop[s]``, all when there are
    fewer). ``before`` and ``ties`` must not overlap.

    One search, no count: ranked by ``0`` for ``before``, ``1 + position`` for ``ties`` and
    ``size + 1`` for the rest, the ``stop[s]``-th smallest rank of a segment is one past its
    last tie kept (0: none; ``size + 1``: all of them).

    >>> import jax.numpy as jnp
    >>> from supjax.segments import Segments, segment_first_ties
    >>> seg = Segments(((4,), (3,)))
    >>> before = jnp.array([True, False, False, False, False, False, False])
    >>> ties = jnp.array([False, True, True, True, True, False, True])
    >>> segment_first_ties(before, ties, seg, jnp.array([3, 3])).tolist()
    [False, True, True, False, True, False, True]
    """
    local = (lax.iota(jnp.int32, segments.total)
             - segments.spread(jnp.asarray(segments.offsets, jnp.int32))).astype(jnp.uint32)
    largest = max(segments.sizes) + 1
    rank = jnp.where(before, jnp.uint32(0), jnp.where(ties, local + 1, jnp.uint32(largest)))
    last = segment_kth_smallest_bits(rank, segments, stop, value_bits=largest.bit_length())
    return ties & (local + 1 <= segments.spread(last))
