"""DP-SGD pieces: per-example L2 clipping, the noisy aggregate (an optax transformation), Poisson batches.

DP-SGD (Abadi et al. 2016) with Poisson sampling at rate ``q = B / n``: every example joins a
step's batch independently with probability ``q``; each per-example gradient is clipped to L2
norm ``clip``; the clipped gradients are summed, Gaussian noise of standard deviation
``noise_multiplier * clip`` is added to the sum, and the result is divided by the *expected*
batch size ``B`` (a constant, so the division is post-processing). This is the mechanism
``dp_accounting.PoissonSampledDpEvent(q, GaussianDpEvent(noise_multiplier))`` accounts for.

The compiled step has a few fixed batch shapes (:func:`row_buckets`): a sampled batch is padded
to the smallest that holds it and a mask zeroes the padded rows' gradients (a zero gradient adds
nothing to the sum). A batch larger than the :func:`capacity` (probability below 1e-6 per step)
is padded to a multiple of it instead — one more compiled shape, the same mechanism.

>>> import jax.numpy as jnp
>>> clipped, norms = clip_per_example({"w": jnp.array([[3.0, 4.0], [0.3, 0.4]])}, 1.0)
>>> clipped["w"].tolist(), norms.tolist()
([[0.6000000238418579, 0.800000011920929], [0.30000001192092896, 0.4000000059604645]], [5.0, 0.5])
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

__all__ = [
    "DPAggregateState",
    "capacity",
    "clip_factors",
    "clip_per_example",
    "clipped_sum",
    "dp_aggregate",
    "padded_rows",
    "per_example_norms",
    "poisson_batch",
    "row_buckets",
]

# Smallest norm used as a divisor (a zero gradient is left as it is).
_TINY = 1e-12


def per_example_norms(grads: Any) -> jax.Array:
    """Global L2 norm of each example's gradient (leaves with a leading batch axis), shape ``(B,)``.

    >>> import jax.numpy as jnp
    >>> per_example_norms({"a": jnp.array([[3.0], [0.0]]), "b": jnp.array([[4.0, 0.0], [0.0, 1.0]])}).tolist()
    [5.0, 1.0]
    """
    leaves = jax.tree_util.tree_leaves(grads)
    squares = [jnp.sum(jnp.reshape(g, (g.shape[0], -1)).astype(jnp.float32) ** 2, axis=1) for g in leaves]
    return jnp.sqrt(sum(squares))


def clip_per_example(grads: Any, clip: float) -> tuple[Any, jax.Array]:
    """Scale each example's gradient to L2 norm at most ``clip``; return ``(clipped, norms before)``.

    An example with norm ``<= clip`` is unchanged; a larger one is scaled by ``clip / norm``.

    >>> import jax.numpy as jnp
    >>> c, n = clip_per_example({"w": jnp.array([[6.0, 8.0]])}, 5.0)
    >>> c["w"].tolist(), n.tolist()
    ([[3.0, 4.0]], [10.0])
    """
    factors, norms = clip_factors(grads, clip)

    def scale(g: jax.Array) -> jax.Array:
        return g * factors.reshape((-1,) + (1,) * (g.ndim - 1)).astype(g.dtype)

    return jax.tree_util.tree_map(scale, grads), norms


def clip_factors(grads: Any, clip: float) -> tuple[jax.Array, jax.Array]:
    """Each example's clipping factor ``min(1, clip / norm)`` and its norm before, both ``(B,)``.

    >>> import jax.numpy as jnp
    >>> f, n = clip_factors({"w": jnp.array([[6.0, 8.0], [0.3, 0.4]])}, 5.0)
    >>> f.tolist(), n.tolist()
    ([0.5, 1.0], [10.0, 0.5])
    """
    norms = per_example_norms(grads)
    return jnp.minimum(1.0, clip / jnp.maximum(norms, _TINY)), norms


def clipped_sum(grads: Any, clip: float) -> Any:
    """The sum over the batch of the per-example gradients clipped to L2 norm ``clip``.

    Computed as one contraction of the clipping factors with each leaf (``tensordot`` over the
    batch axis), never materialising the clipped copies: the same sum as
    ``clip_per_example`` then ``sum(axis=0)``, and far faster on XLA's CPU backend, whose
    plain reduction over a leading axis of a large leaf is slow.

    >>> import jax.numpy as jnp
    >>> clipped_sum({"w": jnp.array([[6.0, 8.0], [0.3, 0.4]])}, 5.0)["w"].tolist()
    [3.299999952316284, 4.400000095367432]
    """
    factors, _ = clip_factors(grads, clip)
    return jax.tree_util.tree_map(lambda g: jnp.tensordot(factors.astype(g.dtype), g, axes=1), grads)


class DPAggregateState(NamedTuple):
    """State of :func:`dp_aggregate`: the PRNG key of the next step's noise.

    >>> import jax
    >>> DPAggregateState(key=jax.random.PRNGKey(0)).key.shape
    (2,)
    """

    key: jax.Array


def dp_aggregate(clip: float, noise_multiplier: float, expected_batch_size: float,
                 seed: int = 0) -> optax.GradientTransformation:
    """DP-SGD's aggregation: per-example gradients in, one privatised averaged gradient out.

    ``update(per_example_grads, state, params)`` takes gradients with a leading batch axis
    (padded rows must be zero), clips each example to L2 norm ``clip``, sums, adds
    ``N(0, (noise_multiplier * clip)^2)`` noise to every coordinate of the sum and divides by
    ``expected_batch_size``: the noise on the averaged gradient has standard deviation
    ``noise_multiplier * clip / expected_batch_size``. Chain an optimizer after it
    (``optax.chain(dp_aggregate(...), optax.sgd(lr))``); anything chained later sees only this
    aggregate and the params. ``params`` is not read.

    >>> import jax.numpy as jnp
    >>> tx = dp_aggregate(clip=1.0, noise_multiplier=0.0, expected_batch_size=2)
    >>> g, _ = tx.update({"w": jnp.array([[3.0, 4.0], [0.0, 0.0]])}, tx.init({"w": jnp.zeros(2)}))
    >>> [round(v, 6) for v in g["w"].tolist()]
    [0.3, 0.4]
    """
    if not (isinstance(clip, (int, float)) and math.isfinite(clip) and clip > 0):
        raise ValueError(f"--clip must be a number > 0, got {clip!r}")
    if not (isinstance(noise_multiplier, (int, float)) and math.isfinite(noise_multiplier) and noise_multiplier >= 0):
        raise ValueError(f"--noise-multiplier must be a number >= 0, got {noise_multiplier!r}")
    if not expected_batch_size > 0:
        raise ValueError(f"--batch-size must be > 0, got {expected_batch_size!r}")
    std = float(noise_multiplier) * float(clip)

    def init(params: Any) -> DPAggregateState:
        del params
        return DPAggregateState(key=jax.random.PRNGKey(seed))

    def update(updates: Any, state: DPAggregateState, params: Any = None) -> tuple[Any, DPAggregateState]:
        del params
        leaves, treedef = jax.tree_util.tree_flatten(clipped_sum(updates, clip))
        key, step_key = jax.random.split(state.key)
        keys = jax.random.split(step_key, len(leaves))
        noisy = [(g + std * jax.random.normal(k, g.shape, g.dtype)) / expected_batch_size
                 for g, k in zip(leaves, keys)]
        return jax.tree_util.tree_unflatten(treedef, noisy), DPAggregateState(key=key)

    return optax.GradientTransformation(init, update)


def _binomial_rows(n: int, batch_size: int, sds: float) -> int:
    q = batch_size / n
    return int(math.ceil((batch_size + sds * math.sqrt(batch_size * (1.0 - q))) / 8.0) * 8)


def capacity(n: int, batch_size: int) -> int:
    """Compiled batch rows for Poisson batches of expected size ``batch_size`` out of ``n``.

    The mean plus 5.5 binomial standard deviations, rounded up to a multiple of 8: a batch
    overflows it with probability below 1e-6 per step.

    >>> capacity(60000, 1024), capacity(100, 100)
    (1200, 104)
    """
    return _binomial_rows(n, batch_size, 5.5)


def row_buckets(n: int, batch_size: int) -> tuple[int, ...]:
    """The compiled batch shapes: the mean plus one binomial standard deviation, then :func:`capacity`.

    Each step's batch is padded to the smallest that holds it. About 84 % of batches fit the
    first, so the step computes about 14 % fewer rows than with the capacity alone (for batch
    512 of 60000: 550 rows on average instead of 640). Padded rows add zero to the sum, so the
    shape changes how much is computed, never the update: the mechanism and its ε are the same.

    >>> row_buckets(60000, 512), row_buckets(100, 100)
    ((536, 640), (104,))
    """
    return tuple(sorted({_binomial_rows(n, batch_size, 1.0), capacity(n, batch_size)}))


def padded_rows(count: int, rows: int | Sequence[int]) -> int:
    """Rows of a batch of ``count`` examples: the smallest of ``rows`` that holds it, else a multiple of the largest.

    >>> padded_rows(500, (536, 640)), padded_rows(600, (536, 640)), padded_rows(700, (536, 640)), padded_rows(0, 8)
    (536, 640, 1280, 8)
    """
    sizes = sorted((rows,) if isinstance(rows, int) else rows)
    if not sizes or sizes[0] < 1:
        raise ValueError(f"rows must be positive sizes, got {rows!r}")
    fits = [r for r in sizes if r >= count]
    return fits[0] if fits else math.ceil(count / sizes[-1]) * sizes[-1]


def poisson_batch(n: int, batch_size: int, seed: int, step: int,
                  rows: int | Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Step ``step``'s Poisson batch: ``(indices, mask)``, padded to :func:`padded_rows` of ``rows``.

    Example ``i`` is in the batch when ``default_rng([seed, step]).random(n)[i] < batch_size / n``
    (independently, probability ``q``). Padded rows have index 0 and mask ``False``.

    >>> idx, mask = poisson_batch(1000, 100, seed=0, step=0, rows=128)
    >>> idx.shape, 70 < int(mask.sum()) < 130, bool((idx[~mask] == 0).all())
    ((128,), True, True)
    """
    chosen = np.flatnonzero(np.random.default_rng([int(seed), int(step)]).random(n) < batch_size / n)
    padded = padded_rows(len(chosen), rows)
    idx = np.zeros(padded, np.int32)
    idx[: len(chosen)] = chosen
    mask = np.zeros(padded, bool)
    mask[: len(chosen)] = True
    return idx, mask
