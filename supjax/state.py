"""The state of the suppress transformation, where to find it, and what it checks.

:class:`SuppressState` is the pytree :func:`supjax.suppress` keeps; :func:`find_suppress_state`
finds it in an optimizer state, including Flax NNX's ``nnx.state(optimizer)`` and its
pure-dict form (found by structure: supjax never imports flax).
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from typing import Any, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "ZERO_THRESHOLD",
    "SuppressState",
    "find_suppress_state",
]

ZERO_THRESHOLD = 1e-7  # a weight at most this large counts as zero (the reference's base_ground_thd)


class SuppressState(NamedTuple):
    """State of the suppress transformation (a pytree of arrays).

    Attributes:
      count: optimizer steps done so far (int32).
      keep_masks: one bool keep-mask per selected layer (``True`` = kept), in leaf order.
      suppressed: recorded suppressed count per selected layer (int32[L]).
      sparsity: current target sparsity (float32).
      started: whether suppression has started (bool).
      start_step: step at which it started (int32).
      prev_step: step of the previous operation (int32).
      operations: number of operations done (int32).
      nonfinite_skips: per layer, operations skipped because the layer held NaN/Inf (int32[L]).
      leaked: per layer, masked weights found non-zero (``|w| > 1e-7``) at the last check
        (int32[L]). The weights the transformation is given are checked at every operation
        (against the masks before it) and at the update right after one (against the new
        masks); anything but 0 means the updates it returned did not reach the weights as
        returned (it is not last in the chain, or a wrapper changed or dropped its updates).
      key: PRNG key data for the noise (uint32[2]).

    >>> import jax.numpy as jnp
    >>> from supjax import LayerRule, SuppressSchedule, suppress
    >>> state = suppress([LayerRule("w")], SuppressSchedule.from_steps(1, 9, 3)).init({"w": jnp.ones(4)})
    >>> int(state.count), state.keep_masks[0].tolist(), state.suppressed.tolist(), state.leaked.tolist()
    (0, [True, True, True, True], [0], [0])
    """

    count: jax.Array
    keep_masks: tuple[jax.Array, ...]
    suppressed: jax.Array
    sparsity: jax.Array
    started: jax.Array
    start_step: jax.Array
    prev_step: jax.Array
    operations: jax.Array
    nonfinite_skips: jax.Array
    leaked: jax.Array
    key: jax.Array


def check_seed(seed: Any) -> Any:
    """``seed`` as given if it is an int or a single threefry JAX PRNG key (typed or uint32[2]).

    Only the type, dtype and shape are read, so a traced key (``jax.vmap`` over keys) passes.

    >>> import jax
    >>> from supjax.state import check_seed
    >>> check_seed(3), check_seed(jax.random.key(0)).dtype
    (3, key<fry>)
    """
    if isinstance(seed, bool):
        raise TypeError(f"seed must be an int or a JAX PRNG key, got bool ({seed!r})")
    if isinstance(seed, numbers.Integral):
        return int(seed)
    if not hasattr(seed, "dtype") or not hasattr(seed, "shape"):
        raise TypeError(f"seed must be an int or a JAX PRNG key, got {type(seed).__name__} ({seed!r})")
    if jnp.issubdtype(seed.dtype, jax.dtypes.prng_key):
        if tuple(seed.shape) != ():
            raise ValueError(f"seed must be a single PRNG key (shape ()), got shape {tuple(seed.shape)}")
        impl = str(jax.random.key_impl(seed))
        if impl != "threefry2x32":
            raise ValueError(f"seed must be a threefry2x32 key (jax.random.key's default), got a {impl} key")
        return seed
    if tuple(seed.shape) != (2,) or seed.dtype != np.uint32:
        raise ValueError(
            f"seed as a raw key must be uint32[2] (jax.random.PRNGKey's form), got "
            f"{np.dtype(seed.dtype).name}{list(seed.shape)}"
        )
    return seed


def initial_key(seed: Any) -> jax.Array:
    """The state's key data (uint32[2]) from a seed :func:`check_seed` accepts.

    >>> import jax
    >>> from supjax.state import initial_key
    >>> initial_key(0).tolist(), initial_key(jax.random.key(0)).tolist()
    ([0, 0], [0, 0])
    """
    seed = check_seed(seed)
    if isinstance(seed, int):
        return jax.random.PRNGKey(seed)
    if jnp.issubdtype(seed.dtype, jax.dtypes.prng_key):
        return jax.random.key_data(seed)
    return jnp.asarray(seed)


def zero_weights(w: jax.Array) -> jax.Array:
    """Where ``|w| <= 1e-7`` (compared in ``w``'s dtype, at least float32).

    >>> import jax.numpy as jnp
    >>> from supjax.state import zero_weights
    >>> zero_weights(jnp.array([0.0, 1e-8, -0.5])).tolist()
    [True, True, False]
    """
    a = jnp.abs(w)
    if jnp.finfo(a.dtype).bits < 32:
        a = a.astype(jnp.float32)
    return a <= jnp.asarray(ZERO_THRESHOLD, a.dtype)


def leak_counts(weights: Sequence[jax.Array], keeps: Sequence[jax.Array]) -> jax.Array:
    """Per layer, how many masked (``keep == False``) weights are not zero (int32[L]).

    >>> import jax.numpy as jnp
    >>> from supjax.state import leak_counts
    >>> leak_counts([jnp.array([0.0, 0.3, 0.2])], [jnp.array([False, False, True])]).tolist()
    [1]
    """
    if not weights:
        return jnp.zeros([0], jnp.int32)
    return jnp.stack(
        [jnp.sum(~k & ~zero_weights(w), dtype=jnp.int32) for w, k in zip(weights, keeps)]
    ).astype(jnp.int32)


def _unwrap(x: Any) -> Any:
    """A Flax ``Variable``'s array (duck-typed: ``get_value()`` or ``.value``), else ``x``."""
    if isinstance(x, (jax.Array, np.ndarray, np.generic)):
        return x
    getter = getattr(x, "get_value", None)
    if callable(getter):
        return getter()
    return getattr(x, "value", x)


def _is_state_mapping(x: Any) -> bool:
    return isinstance(x, Mapping) and {str(k) for k in x.keys()} == set(SuppressState._fields)


def _from_mapping(m: Mapping) -> SuppressState:
    """Rebuild a :class:`SuppressState` from its mapping form (NNX ``State`` or pure dict)."""
    fields = {str(k): v for k, v in m.items()}
    masks = fields["keep_masks"]
    if isinstance(masks, Mapping):
        masks = [v for _, v in sorted(masks.items(), key=lambda kv: int(kv[0]))]
    values = {name: _unwrap(v) for name, v in fields.items() if name != "keep_masks"}
    return SuppressState(keep_masks=tuple(_unwrap(v) for v in masks), **values)


def _unwrapped(s: SuppressState) -> SuppressState:
    return SuppressState(*(
        tuple(_unwrap(m) for m in v) if name == "keep_masks" else _unwrap(v)
        for name, v in zip(SuppressState._fields, s)
    ))


def find_suppress_state(opt_state: Any, *, missing_ok: bool = False) -> SuppressState | None:
    """The :class:`SuppressState` inside an optimizer state (for example an ``optax.chain``'s).

    Also finds it in Flax NNX's forms: ``optimizer.opt_state``, ``nnx.state(optimizer)``,
    ``nnx.split(optimizer)[1]`` and their pure dicts (``nnx.to_pure_dict(state)``, or an
    orbax restore of one). There the state is a mapping whose keys are :class:`SuppressState`'s
    field names (found by that structure: supjax does not import flax);
    it is rebuilt as ``SuppressState(**fields)`` with ``keep_masks`` the tuple of the
    ``keep_masks`` entries in key order (``0, 1, ...``) and every Flax ``Variable`` replaced by
    its array. With ``missing_ok`` an optimizer state without one (a dense run) gives ``None``.

    >>> import jax.numpy as jnp, optax
    >>> from supjax import LayerRule, SuppressSchedule, find_suppress_state, suppress
    >>> tx = optax.chain(optax.sgd(0.1), suppress([LayerRule("w")], SuppressSchedule.from_steps(1, 9, 3)))
    >>> int(find_suppress_state(tx.init({"w": jnp.ones(4)})).count)
    0
    >>> pure = {"opt_state": {1: find_suppress_state(tx.init({"w": jnp.ones(4)}))._asdict()}}
    >>> pure["opt_state"][1]["keep_masks"] = {0: jnp.ones(4, bool)}  # as to_pure_dict() writes it
    >>> find_suppress_state(pure).keep_masks[0].shape
    (4,)
    >>> find_suppress_state(optax.sgd(0.1).init({"w": jnp.ones(4)}), missing_ok=True) is None
    True
    """
    def is_found(x: Any) -> bool:
        return isinstance(x, SuppressState) or _is_state_mapping(x)

    found = [
        _unwrapped(s) if isinstance(s, SuppressState) else _from_mapping(s)
        for s in jax.tree_util.tree_leaves(opt_state, is_leaf=is_found)
        if is_found(s)
    ]
    if len(found) > 1 or (not found and not missing_ok):
        allowed = "at most one" if missing_ok else "exactly one"
        raise ValueError(f"opt_state must hold {allowed} SuppressState, found {len(found)}")
    return found[0] if found else None
