"""Exact k-th smallest element of an array of magnitudes, without a full sort.

Suppress Privacy needs, at every suppress step, the k-th smallest weight
magnitude ``|w|`` of a layer.  ``jnp.sort`` costs over a hundred memory passes
on XLA:CPU for a 1e7-element layer; this module finds the same element
(bit-for-bit, ties included) with a radix select on the IEEE bit pattern:

* For non-negative IEEE floats the unsigned-integer bit pattern is monotone in
  the value (``+0.0 < subnormals < normals < +inf``), so the k-th smallest
  value is the float whose bit pattern is the k-th smallest bit pattern.
* The pattern (sign bit excluded: it is always 0 here) is split into a few
  digits of at most 16 bits.  Each round builds the histogram of the next
  digit of the elements whose higher digits equal the prefix found so far
  (one ``scatter-add`` of ones into at most 65536 int32 bins; non-matching
  elements get an out-of-range index that the scatter drops), and a
  two-level prefix sum over that small histogram picks the digit and the
  rank left inside it.  One round costs about one elementwise pass.
* Digits: float32 takes two rounds (16 + 15 bits), bfloat16/float16 one
  (15 bits), float64 four; arrays of at most ``_SORT_MAX_SIZE`` elements are
  just sorted.

Everything is static-shaped and jittable, ``k`` may be a traced integer (a new
``k`` never recompiles), and the function works inside ``jax.lax.cond`` /
``jax.vmap``.  The only cross-element operations are histogram counts (an add
reduction that XLA's SPMD partitioner turns into a local scatter plus an
all-reduce), so a sharded input is never gathered on one device.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import NamedSharding, PartitionSpec
from jax.typing import ArrayLike

__all__ = ["first_in_order", "kth_smallest"]

#: Arrays with at most this many elements are selected with a plain sort (measured on
#: XLA:CPU: up to ~1024 elements one sort of the bit patterns is as fast as the radix
#: rounds, 37-57 us against 53-86 us, and it compiles in 0.05 s instead of 0.4 s).
_SORT_MAX_SIZE = 1024

#: Widest radix digit: a 2**16-bin histogram per round (float32 takes two rounds). Narrower
#: digits for small arrays measured no faster on XLA:CPU and cost more kernels to compile.
_MAX_DIGIT_WIDTH = 16

_UINT_BY_ITEMSIZE = {2: jnp.uint16, 4: jnp.uint32, 8: jnp.uint64}
_SUPPORTED_DTYPES = tuple(
    jnp.dtype(d) for d in (jnp.float16, jnp.bfloat16, jnp.float32, jnp.float64)
)

_SCATTER_DIMS = lax.ScatterDimensionNumbers(
    update_window_dims=(),
    inserted_window_dims=(0,),
    scatter_dims_to_operand_dims=(0,),
)


def kth_smallest(x: ArrayLike, k: ArrayLike) -> jax.Array:
    """Return the ``k``-th smallest element (1-based) of ``x``, exactly.

    The result equals ``np.partition(x.ravel(), k - 1)[k - 1]`` bit for bit,
    ties included, for any shape of ``x`` (which keeps its shape).  It is found by
    a radix select over the float bit pattern in a few passes over memory, not
    by sorting.

    Args:
      x: array of any shape of non-negative floating values (float16,
        bfloat16, float32, or float64 when x64 is enabled), e.g. weight
        magnitudes ``|w|``.  ``+0.0``, ties, subnormals and ``+inf`` are
        fine.  The sign bit is ignored, so the result is really the k-th
        smallest of ``|x|`` and ``-0.0`` counts (and is returned) as
        ``+0.0``.  NaNs sort after ``+inf`` as in NumPy, but callers are
        expected to exclude them.
      k: integer rank, a Python int or an integer scalar array that may be
        traced (changing it never triggers a recompilation).  Valid ranks are
        ``1 <= k <= x.size``; values outside are clipped to that range, so
        ``k <= 0`` gives the minimum and ``k > x.size`` the maximum.

    Returns:
      A scalar array of ``x.dtype``.

    Raises:
      TypeError: if ``x`` is not of a floating dtype or ``k`` not an integer.
      ValueError: if ``x`` is empty or has ``2**31`` elements or more.

    >>> import jax.numpy as jnp
    >>> from supjax.kth_smallest import kth_smallest
    >>> float(kth_smallest(jnp.array([[3.0, 0.5], [0.0, 0.5]]), 3))
    0.5
    >>> float(kth_smallest(jnp.array([2.0, jnp.inf, 1.0]), 7))  # k clipped to 3
    inf
    """
    x = _check_x(x)
    k = _check_k(k)
    return _kth_smallest_jit(x, k)


def _check_x(x: ArrayLike) -> jax.Array:
    """Validate ``x`` statically (dtype, size) and return it as an array."""
    dtype = getattr(x, "dtype", None)
    if dtype is None:
        x = jnp.asarray(x)
        dtype = x.dtype
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(f"kth_smallest: x must have a floating dtype, got {dtype}")
    size = int(np.prod(np.shape(x), dtype=np.int64))
    if size == 0:
        raise ValueError("kth_smallest: x must not be empty (x.size == 0)")
    if size >= 2**31:
        raise ValueError(f"kth_smallest: x.size must be < 2**31, got {size}")
    if jnp.dtype(dtype) not in _SUPPORTED_DTYPES:
        raise TypeError(
            f"kth_smallest: x must be float16, bfloat16, float32 or float64, got {dtype}"
        )
    return jnp.asarray(x)


def _check_k(k: ArrayLike) -> jax.Array:
    """Validate ``k`` statically (integer scalar) and return it as int32.

    Ranks beyond the int32 range are clipped first (to -1 or 2**31 - 1), so
    that they still clip to the minimum or the maximum afterwards.
    """
    k_dtype = getattr(k, "dtype", None)
    if isinstance(k, bool) or (k_dtype is not None and np.dtype(k_dtype) == np.bool_):
        raise TypeError("kth_smallest: k must be an integer, got bool")
    if isinstance(k, (int, np.integer, np.ndarray)):
        k_np = np.asarray(k)
        if not np.issubdtype(k_np.dtype, np.integer):
            raise TypeError(f"kth_smallest: k must have an integer dtype, got {k_np.dtype}")
        _check_scalar_k(k_np.shape)
        return jnp.asarray(np.clip(k_np, -1, 2**31 - 1).astype(np.int32))
    dtype = getattr(k, "dtype", None)
    if dtype is None:
        raise TypeError(f"kth_smallest: k must be an integer, got {type(k).__name__}")
    if not jnp.issubdtype(dtype, jnp.integer):
        raise TypeError(f"kth_smallest: k must have an integer dtype, got {dtype}")
    _check_scalar_k(np.shape(k))
    if jnp.iinfo(dtype).max > 2**31 - 1:
        k = jnp.minimum(k, jnp.asarray(2**31 - 1, dtype))
    if jnp.iinfo(dtype).min < -(2**31):
        k = jnp.maximum(k, jnp.asarray(-1, dtype))
    return k.astype(jnp.int32)


def _check_scalar_k(shape: tuple[int, ...]) -> None:
    """Raise ``ValueError`` unless ``k`` is a scalar."""
    if shape != ():
        raise ValueError(f"kth_smallest: k must be a scalar, got shape {shape}")


@jax.jit
def _kth_smallest_jit(x: jax.Array, k: jax.Array) -> jax.Array:
    """Jitted core of :func:`kth_smallest` (``k`` is a traced int32 scalar)."""
    bits = _magnitude_bits(x)
    selected = _kth_smallest_bits(bits, k, value_bits=8 * bits.dtype.itemsize - 1)
    return lax.bitcast_convert_type(selected, x.dtype)


def _kth_smallest_bits(bits: jax.Array, k: jax.Array, value_bits: int) -> jax.Array:
    """k-th smallest (1-based, clipped to ``[1, bits.size]``) of unsigned ``bits`` of any shape.

    Only the low ``value_bits`` bits may be set. The array keeps its shape (a sharded array
    stays sharded); only a small one is flattened, to be sorted.
    """
    n = bits.size
    k = jnp.clip(k, 1, n)
    if n <= _SORT_MAX_SIZE:
        return _select_by_sort(bits.ravel(), k)
    widths = _digit_widths(value_bits, _MAX_DIGIT_WIDTH)
    return _select_by_radix(bits, k, widths)


def first_in_order(flags: jax.Array, k: ArrayLike) -> jax.Array:
    """``flags`` with only its first ``k`` set positions (row-major order) left set.

    The same as ``flags & (exclusive_prefix_count(flags) < k)``, but found by selecting the
    ``k``-th smallest flat index among the set positions (a radix select over the indices),
    not by a prefix sum: every step is elementwise or a histogram, so a sharded ``flags``
    (along any axis) is never gathered. ``k`` may be traced; ``k <= 0`` clears everything.

    >>> import jax.numpy as jnp
    >>> from supjax.kth_smallest import first_in_order
    >>> first_in_order(jnp.array([[False, True], [True, True]]), 2).tolist()
    [[False, True], [True, False]]
    """
    flags = jnp.asarray(flags, bool)
    if flags.size >= 2**31:
        raise ValueError(f"first_in_order: flags.size must be < 2**31, got {flags.size}")
    k = _check_k(k)
    index = _flat_index(flags.shape)
    n = flags.size
    keyed = jnp.where(flags, index, jnp.uint32(n))  # unset positions rank after every set one
    last = _kth_smallest_bits(keyed, k, value_bits=max(1, n.bit_length()))
    return flags & (index <= last) & (k > 0)


def _flat_index(shape: tuple[int, ...]) -> jax.Array:
    """Row-major flat index of every position of ``shape`` (uint32), built in that shape."""
    index = jnp.zeros(shape, jnp.uint32)
    stride = 1
    for axis in reversed(range(len(shape))):
        index = index + lax.broadcasted_iota(jnp.uint32, shape, axis) * jnp.uint32(stride)
        stride *= shape[axis]
    return index


def _magnitude_bits(x: jax.Array) -> jax.Array:
    """Bit pattern of ``|x|`` as an unsigned integer (monotone in ``|x|``)."""
    uint = _UINT_BY_ITEMSIZE[x.dtype.itemsize]
    bits = lax.bitcast_convert_type(x, uint)
    magnitude_mask = (1 << (8 * x.dtype.itemsize - 1)) - 1
    return bits & jnp.asarray(magnitude_mask, uint)


def _digit_widths(value_bits: int, max_width: int) -> tuple[int, ...]:
    """Split ``value_bits`` into near-equal digits of at most ``max_width``.

    Wider digits come first, e.g. ``_digit_widths(31, 16) == (16, 15)``.

    >>> from supjax.kth_smallest import _digit_widths
    >>> _digit_widths(31, 11)
    (11, 10, 10)
    """
    rounds = -(-value_bits // max_width)
    base, extra = divmod(value_bits, rounds)
    return tuple(base + 1 if i < extra else base for i in range(rounds))


def _select_by_sort(bits: jax.Array, k: jax.Array) -> jax.Array:
    """k-th smallest (1-based) of a small 1-D array by sorting it."""
    return lax.dynamic_index_in_dim(jnp.sort(bits), k - 1, keepdims=False)


def _select_by_radix(
    bits: jax.Array, k: jax.Array, widths: tuple[int, ...]
) -> jax.Array:
    """k-th smallest (1-based, ``1 <= k <= n``) of unsigned ``bits``.

    ``widths`` are the digit widths from the most significant one down; they
    must add up to the number of bits that can be set in ``bits``.
    """
    prefix = jnp.zeros((), bits.dtype)
    shift = sum(widths)
    for round_index, width in enumerate(widths):
        shift -= width
        histogram = _digit_histogram(
            bits, prefix, shift, width, match_prefix=round_index > 0
        )
        digit, k = _pick_bucket(histogram, k)
        prefix = (prefix << width) | digit.astype(bits.dtype)
    return prefix


def _digit_histogram(
    bits: jax.Array, prefix: jax.Array, shift: int, width: int, match_prefix: bool
) -> jax.Array:
    """Counts of ``(bits >> shift) % 2**width`` over the prefix-matching elements.

    With ``match_prefix`` only elements with ``bits >> (shift + width) ==
    prefix`` are counted: the others get an out-of-range index that the
    scatter drops (measured faster than a shared overflow bin, whose
    read-modify-writes all hit one address).  Indices are uint16 whenever
    that can hold them (less memory traffic).
    """
    num_bins = 1 << width
    digit = (bits >> shift) & jnp.asarray(num_bins - 1, bits.dtype)
    needs_out_of_range = match_prefix and width >= 16
    index_dtype = jnp.uint16 if width <= 16 and not needs_out_of_range else jnp.int32
    digit = digit.astype(index_dtype)
    if match_prefix:
        matches = (bits >> (shift + width)) == prefix
        dropped = jnp.asarray(jnp.iinfo(index_dtype).max, index_dtype)
        digit = jnp.where(matches, digit, dropped)
    return _histogram(digit, num_bins, drop_out_of_range=match_prefix)


def _histogram(
    indices: jax.Array, length: int, drop_out_of_range: bool
) -> jax.Array:
    """int32 counts of each value in ``indices``.

    Values ``>= length`` are ignored if ``drop_out_of_range``, else promised
    not to occur (which skips the bounds checks).

    A scatter-add: the fastest histogram on XLA:CPU (about one elementwise
    pass).  A sharded ``indices`` becomes per-shard scatters plus an
    all-reduce of the small result; under explicit sharding (where JAX wants
    the scatter's output sharding spelled out) it is run in auto mode with a
    replicated output.
    """
    replicated = _replicated_sharding_of(indices)
    mode = (
        lax.GatherScatterMode.FILL_OR_DROP
        if drop_out_of_range
        else lax.GatherScatterMode.PROMISE_IN_BOUNDS
    )
    if replicated is None:
        return _scatter_histogram(indices, length, mode)
    in_auto_mode = jax.sharding.auto_axes(
        lambda i: _scatter_histogram(i, length, mode), out_sharding=replicated
    )
    return in_auto_mode(indices)


def _scatter_histogram(
    indices: jax.Array, length: int, mode: lax.GatherScatterMode
) -> jax.Array:
    """Histogram of ``indices`` (any shape) by one ``scatter-add`` of ones."""
    return lax.scatter_add(
        jnp.zeros((length,), jnp.int32),
        indices[..., None],
        jnp.ones(indices.shape, jnp.int32),
        _SCATTER_DIMS,
        mode=mode,
    )


def _replicated_sharding_of(a: jax.Array) -> Any:
    """Replicated sharding on ``a``'s mesh if ``a`` is explicitly sharded, else None."""
    typeof = getattr(jax, "typeof", None)
    sharding = getattr(typeof(a), "sharding", None) if typeof is not None else None
    spec = getattr(sharding, "spec", None)
    if not spec or all(axis is None for axis in spec):
        return None
    return NamedSharding(sharding.mesh, PartitionSpec())


def _pick_bucket(histogram: jax.Array, k: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Bucket holding the k-th counted element, and its rank inside the bucket.

    Two-level search (bucket rows, then one row) so that only two short
    prefix sums are needed even for 65536 buckets.
    """
    length = histogram.shape[0]
    row_length = 1 << ((length.bit_length() - 1) // 2)
    rows = histogram.reshape(length // row_length, row_length)
    row, k = _pick_in_prefix_sums(jnp.sum(rows, axis=1), k)
    column, k = _pick_in_prefix_sums(
        lax.dynamic_index_in_dim(rows, row, keepdims=False), k
    )
    return row * row_length + column, k


def _pick_in_prefix_sums(
    counts: jax.Array, k: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """First index whose inclusive prefix sum reaches ``k``; ``k`` minus the counts before it."""
    cumulative = _inclusive_prefix_sum(counts)
    index = jnp.minimum(jnp.sum(cumulative < k, dtype=jnp.int32), counts.shape[0] - 1)
    before = cumulative[index] - counts[index]
    return index, k - before


def _inclusive_prefix_sum(counts: jax.Array) -> jax.Array:
    """``jnp.cumsum(counts)`` for a short 1-D array, as one masked sum over a triangle.

    XLA:CPU lowers ``cumsum`` to several reduce-window kernels, each compiled on its own;
    for the at most 256 entries :func:`_pick_bucket` scans, one broadcast-and-reduce is as
    fast and compiles several times quicker.
    """
    length = counts.shape[0]
    if length > 256:
        return jnp.cumsum(counts)
    upto = lax.broadcasted_iota(jnp.int32, (length, length), 1) <= lax.broadcasted_iota(
        jnp.int32, (length, length), 0
    )
    return jnp.sum(jnp.where(upto, counts[None, :], 0), axis=1, dtype=counts.dtype)
