"""Suppress Privacy as an optax gradient transformation.

Two placements share one implementation:

* :func:`suppress` goes last in ``optax.chain(<any optimizer>, suppress(...))``. It edits
  the final updates ``u`` so that suppressed weights become and stay exactly 0 and clipped
  or noised weights land on their targets: ``u' = mask * u - (w - target)`` on the step
  right after an operation, ``u' = mask * u`` otherwise.
* :func:`suppress_gradients` goes right before ``optax.sgd(learning_rate)`` and produces
  MindArmour's gradient ``g' = add + g * mask`` with ``add = (w - target) / learning_rate``,
  for bit-level parity with the reference.

An operation decided after step ``t`` (MindArmour's ``step_end``) is computed from the
weights after step ``t`` at the start of update ``t + 1``, which is where the reference
applies its corrections too.
"""

from __future__ import annotations

import functools
import logging
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from supjax._checks import check_bool, check_int, check_real
from supjax.layers import LayerRule, _check_rules, leaf_indices, select_layers
from supjax.operation import LayerPlan, group_layers, grouped_operation, plan_layers
from supjax.schedule import ScheduleState, SuppressSchedule, advance_schedule, step_flags
from supjax.schedule_plan import operation_tables, operation_targets
from supjax.state import SuppressState, check_seed, find_suppress_state, initial_key, zero_weights

LOGGER = logging.getLogger("supjax")
_WARNED_NONFINITE: set[str] = set()

__all__ = [
    "SuppressState",
    "find_suppress_state",
    "suppress",
    "suppress_gradients",
]


def _warn_nonfinite(paths: tuple[str, ...], nonfinite: np.ndarray) -> np.ndarray:
    """Host callback: log once per layer that an operation skipped it for NaN/Inf weights.

    Returns int32 zeros shaped like ``nonfinite``; the caller adds them to the skip counts so
    the callback is a data dependency (see :func:`_report_nonfinite`).
    """
    flags = np.asarray(nonfinite)
    for path, flag in zip(paths, flags):
        if flag and path not in _WARNED_NONFINITE:
            _WARNED_NONFINITE.add(path)
            LOGGER.warning(
                "supjax: layer %r holds NaN or Inf weights; its suppress operation was skipped "
                "(SuppressState.nonfinite_skips counts every skip)", path,
            )
    return np.zeros(flags.shape, np.int32)


def _report_nonfinite(paths: tuple[str, ...], nonfinite: jax.Array) -> jax.Array:
    """Run :func:`_warn_nonfinite` on the host; returns int32 zeros shaped like ``nonfinite``.

    A ``pure_callback`` whose (zero) result feeds the state, not ``jax.debug.callback``:
    a debug callback is a side effect, and any jitted function holding one loses JAX's C++
    dispatch fast path on every call, operating or not (measured with JAX 0.10.2: about
    +2 ms per LeNet5 train step, 8x the bare SGD update). The result keeps the callback from
    being removed. JAX 0.7 still drops the fast path for any host callback, pure ones included.
    Any host callback also makes the jitted call synchronous on CPU (it returns only when the
    step is done, so Python cannot dispatch the next step meanwhile): measured +3-5% on a
    LeNet5 step that does not operate, the bulk of what a non-operating step costs.
    """
    return jax.pure_callback(
        functools.partial(_warn_nonfinite, paths),
        jax.ShapeDtypeStruct(nonfinite.shape, jnp.int32),
        nonfinite,
        vmap_method="sequential",
    )


def _check_structure(updates: Any, params: Any, state: SuppressState, plans) -> None:
    if params is None:
        raise ValueError(
            "the suppress transformation needs params: call update(updates, state, params)"
        )
    up_def = jax.tree_util.tree_structure(updates)
    par_def = jax.tree_util.tree_structure(params)
    if up_def != par_def:
        raise ValueError(
            f"updates and params must have the same structure, got {up_def} and {par_def}"
        )
    if not isinstance(state, SuppressState):
        raise TypeError(f"state must be a SuppressState, got {type(state).__name__}")
    if len(state.keep_masks) != len(plans):
        raise ValueError(
            f"params select {len(plans)} layers but the state was built for "
            f"{len(state.keep_masks)}: pass params with the structure used at init"
        )
    leaves = jax.tree_util.tree_leaves(params)
    positions = leaf_indices(params, [p.path_name for p in plans])
    for plan, mask, i in zip(plans, state.keep_masks, positions):
        leaf = leaves[i]
        if tuple(leaf.shape) != tuple(mask.shape):
            raise ValueError(
                f"layer {plan.path_name!r} has shape {tuple(leaf.shape)} but the state's mask "
                f"has shape {tuple(mask.shape)}: pass params with the structure used at init"
            )


def _make(
    layers: Sequence[LayerRule],
    schedule: SuppressSchedule,
    seed: Any,
    reference_parity: bool,
    large_layer_size: int | None,
    warn_nonfinite: bool,
    fuse_layers: bool,
    combine: Callable[[jax.Array, jax.Array, jax.Array, jax.Array, jax.Array], jax.Array],
) -> optax.GradientTransformationExtraArgs:
    rules = _check_rules(layers)
    if not isinstance(schedule, SuppressSchedule):
        raise TypeError(f"schedule must be a SuppressSchedule, got {type(schedule).__name__}")
    seed = check_seed(seed)
    check_bool("reference_parity", reference_parity)
    check_bool("warn_nonfinite", warn_nonfinite)
    check_bool("fuse_layers", fuse_layers)
    if large_layer_size is not None:
        check_int("large_layer_size", large_layer_size, low=1)

    def plans_for(params: Any) -> tuple[LayerPlan, ...]:
        """Resolve the rules against ``params`` (static: runs at trace time)."""
        return plan_layers(select_layers(params, rules), reference_parity, large_layer_size)

    def init_fn(params: Any) -> SuppressState:
        plans = plans_for(params)
        leaves = jax.tree_util.tree_leaves(params)
        positions = leaf_indices(params, [p.path_name for p in plans])
        masks = tuple(jnp.ones_like(leaves[i], dtype=bool) for i in positions)
        n = len(plans)
        return SuppressState(
            count=jnp.zeros([], jnp.int32),
            keep_masks=masks,
            suppressed=jnp.zeros([n], jnp.int32),
            sparsity=jnp.zeros([], jnp.float32),
            started=jnp.zeros([], bool),
            start_step=jnp.zeros([], jnp.int32),
            prev_step=jnp.zeros([], jnp.int32),
            operations=jnp.zeros([], jnp.int32),
            nonfinite_skips=jnp.zeros([n], jnp.int32),
            leaked=jnp.zeros([n], jnp.int32),
            key=initial_key(seed),
        )

    def update_fn(updates: Any, state: SuppressState, params: Any = None, **extra_args: Any):
        del extra_args
        plans = plans_for(params) if params is not None else ()
        _check_structure(updates, params, state, plans)
        positions = leaf_indices(params, [p.path_name for p in plans])
        weights = [jax.tree_util.tree_leaves(params)[i] for i in positions]
        u_leaves, treedef = jax.tree_util.tree_flatten(updates)
        selected_u = [u_leaves[i] for i in positions]

        paths = tuple(p.path_name for p in plans)
        tables = operation_tables(schedule, [p.size for p in plans], [p.rule.min_num for p in plans])
        cur = state.count  # the last completed step; its step_end happens now
        in_window, is_final = step_flags(schedule, cur)
        sched, do_op = advance_schedule(
            ScheduleState(state.started, state.start_step, state.prev_step),
            cur, in_window, is_final, schedule.min_gap, last_step=schedule.last_operation_step,
        )
        target, stops = operation_targets(schedule, tables, cur, sched.start_step, state.sparsity)

        groups = group_layers(plans, weights, reference_parity, fuse_layers)
        keep_groups = groups.join(state.keep_masks)

        def leaks() -> jax.Array:
            # masked weights that are not zero: what the masks so far let through
            return groups.sums([~k & ~zero_weights(w) for k, w in zip(keep_groups, groups.join(weights))])

        def operate(_):
            # the key feeds the noise only: split when operating and some layer draws noise
            # (a non-operating step stays minimal; threefry costs compile time)
            if any(p.rule.is_add_noise for p in plans):
                op_key, next_key = jax.random.split(state.key)
            else:
                op_key = next_key = state.key
            result = grouped_operation(
                groups, plans, weights, keep_groups, state.suppressed, stops, op_key, reference_parity
            )
            skips = state.nonfinite_skips + result.nonfinite.astype(jnp.int32)
            if warn_nonfinite:
                skips = skips + _report_nonfinite(paths, result.nonfinite)
            return result.keep, result.delta, result.counts, skips, leaks(), next_key

        def hold(_):
            deltas = tuple(jnp.zeros(k.shape, weights[m[0]].dtype) for k, m in zip(keep_groups, groups.members))
            return keep_groups, deltas, state.suppressed, state.nonfinite_skips, state.leaked, state.key

        def check(_):
            # the update right after an operation: did its corrections reach the weights?
            keeps, deltas, counts, skips, _, key = hold(None)
            return keeps, deltas, counts, skips, leaks(), key

        after_op = (state.operations > 0) & (state.prev_step == cur - 1)
        branch = jnp.where(do_op, 2, jnp.where(after_op, 1, 0))
        # the branches return the groups' masks and corrections; each layer's update is cut
        # from them out here, once (inside, every branch would compile its own copy)
        keep_groups, delta_groups, counts, skips, leaked, key = jax.lax.switch(
            branch, (hold, check, operate), None
        )
        keeps = groups.cut(keep_groups)
        deltas = groups.cut(delta_groups)
        new_u = tuple(combine(u, k, d, cur, do_op) for u, k, d in zip(selected_u, keeps, deltas))
        for i, u in zip(positions, new_u):
            u_leaves[i] = u
        new_state = SuppressState(
            count=cur + 1,
            keep_masks=keeps,
            suppressed=counts,
            sparsity=jnp.where(do_op, target, state.sparsity).astype(jnp.float32),
            started=sched.started,
            start_step=sched.start_step,
            prev_step=sched.prev_step,
            operations=state.operations + do_op.astype(jnp.int32),
            nonfinite_skips=skips,
            leaked=leaked,
            key=key,
        )
        return jax.tree_util.tree_unflatten(treedef, u_leaves), new_state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def _after_optimizer(u: jax.Array, keep: jax.Array, delta: jax.Array, count: jax.Array, operated: jax.Array) -> jax.Array:
    del count, operated  # delta is 0 where nothing was corrected, and x - 0 == x bit for bit
    return jnp.where(keep, u, jnp.zeros_like(u)) - delta.astype(u.dtype)


def suppress(
    layers: Sequence[LayerRule],
    schedule: SuppressSchedule,
    *,
    seed: int | jax.Array = 0,
    reference_parity: bool = False,
    large_layer_size: int | None = None,
    warn_nonfinite: bool = False,
    fuse_layers: bool = True,
) -> optax.GradientTransformationExtraArgs:
    """Suppress Privacy for any optimizer; place it last in an ``optax.chain``.

    Args:
      layers: :class:`~supjax.layers.LayerRule` per suppressed layer (or glob of layers).
      schedule: when operations happen and the sparsity they aim at.
      seed: the noise's PRNG key: an int, or a JAX key (``jax.random.key(...)`` or a raw
        ``uint32[2]``, as optax's ``add_noise(key=...)``). A traced key is fine: models
        initialised under ``jax.vmap`` with different keys get different noise. Only ``init``
        reads it (the key then lives in :class:`SuppressState`), so the transformation that
        runs ``update`` may be built with any seed.
      reference_parity: reproduce MindArmour 2.0.0 exactly (its 10000-parameter large-layer
        threshold and its prefix-count tie rule) instead of the documented behaviour.
      large_layer_size: override the size above which a layer takes the large-layer path.
      warn_nonfinite: also log a warning (once per layer) from a host callback when an
        operation skips a layer holding NaN or Inf. Off by default: every skip is counted in
        ``SuppressState.nonfinite_skips`` (and in :func:`supjax.sparsity_report`) either way,
        and a host callback makes each jitted step synchronous (measured +5-30 % per step).
      fuse_layers: run the operation on all selected layers of one dtype at once, laid end
        to end in one vector (the same results; it compiles several times faster than one
        operation per layer). Pass ``False`` when layers are sharded over devices: laying
        them end to end gathers them, while one layer at a time never does. No effect under
        ``reference_parity``.

    Misuse shows in ``SuppressState.leaked``: the weights are checked at every operation and
    at the update after it, and a masked weight found non-zero there is counted (placed first
    in the chain, the optimizer after it moves masked weights again).

    >>> import jax, jax.numpy as jnp, optax
    >>> from supjax import LayerRule, SuppressSchedule, suppress
    >>> params = {"w": jnp.linspace(-1.0, 1.0, 20)}
    >>> tx = optax.chain(optax.adam(1e-3), suppress([LayerRule("w")],
    ...                  SuppressSchedule.from_steps(1, 4, 4, sparse_end=0.5)))
    >>> state = tx.init(params)
    >>> for _ in range(6):
    ...     updates, state = tx.update(jax.tree.map(jnp.ones_like, params), state, params)
    ...     params = optax.apply_updates(params, updates)
    >>> int((params["w"] == 0).sum())
    10
    """
    return _make(
        layers, schedule, seed, reference_parity, large_layer_size, warn_nonfinite, fuse_layers,
        _after_optimizer,
    )


def suppress_gradients(
    layers: Sequence[LayerRule],
    schedule: SuppressSchedule,
    learning_rate: float | Callable[[jax.Array], jax.Array],
    *,
    seed: int | jax.Array = 0,
    reference_parity: bool = False,
    large_layer_size: int | None = None,
    warn_nonfinite: bool = False,
    fuse_layers: bool = True,
) -> optax.GradientTransformationExtraArgs:
    """MindArmour's gradient form ``g' = add + g * mask``; place it right before ``optax.sgd``.

    On the update right after an operation ``add = (w - target) / lr``, on every other update
    0. Exact (as in the reference) only in ``optax.chain(suppress_gradients(..., lr),
    optax.sgd(lr))`` with plain SGD: no momentum, no weight decay, nothing after ``sgd`` that
    changes the updates, and the same ``lr``: a float, or the same optax schedule (both count
    the same updates, so update ``n`` divides by ``lr(n)`` and SGD multiplies by it back).
    Weights then land on their targets up to the rounding of ``(w - target) / lr * lr``
    (far below 1e-7 for the small weights suppressed). Elsewhere it is not exact:

    * with ``sgd(lr, momentum=...)`` the correction enters the momentum trace: the update
      overshoots and the following ones keep adding a decaying share of ``add``, so
      suppressed weights leave 0 (``SuppressState.leaked`` counts them at the next check);
    * with any other optimizer (Adam, ...) ``add`` is rescaled and nothing lands;
    * a schedule at 0 (or below) on an operation's update gives no correction there.

    Use :func:`suppress` (last in the chain) for those: it is exact with any optimizer.
    ``learning_rate`` is a positive float or a callable ``count -> lr`` (an optax schedule).
    The other arguments are :func:`suppress`'s.

    >>> import jax, jax.numpy as jnp, optax
    >>> from supjax import LayerRule, SuppressSchedule, suppress_gradients
    >>> lr = optax.linear_schedule(0.1, 0.01, 10)
    >>> tx = optax.chain(suppress_gradients([LayerRule("w")],
    ...                  SuppressSchedule.from_steps(1, 4, 4, sparse_end=0.5), lr), optax.sgd(lr))
    >>> params = {"w": jnp.linspace(-1.0, 1.0, 20)}
    >>> state = tx.init(params)
    >>> for _ in range(6):
    ...     updates, state = tx.update(jax.tree.map(jnp.zeros_like, params), state, params)
    ...     params = optax.apply_updates(params, updates)
    >>> int((params["w"] == 0).sum()), state[0].leaked.tolist()
    (10, [0])
    """
    if callable(learning_rate):
        lr_at = learning_rate
    elif not isinstance(learning_rate, (int, float, np.number)) or isinstance(learning_rate, bool):
        raise TypeError(
            "learning_rate must be a positive float or an optax schedule (a callable count -> lr), "
            f"got {type(learning_rate).__name__} ({learning_rate!r})"
        )
    else:
        lr_value = check_real("learning_rate", learning_rate, low=0.0, low_open=True)

        def lr_at(count: jax.Array) -> float:
            del count
            return lr_value

    def reference_form(g: jax.Array, keep: jax.Array, delta: jax.Array, count: jax.Array, operated: jax.Array) -> jax.Array:
        masked = jnp.where(keep, g, jnp.zeros_like(g))
        lr = jnp.asarray(lr_at(count), g.dtype)
        add = delta.astype(g.dtype) / jnp.where(lr > 0, lr, jnp.ones_like(lr))
        corrected = jnp.where(lr > 0, add, jnp.zeros_like(add)) + masked
        return jnp.where(operated, corrected, masked)  # masked alone: keeps -0.0 as it was

    return _make(
        layers, schedule, seed, reference_parity, large_layer_size, warn_nonfinite, fuse_layers,
        reference_form,
    )
