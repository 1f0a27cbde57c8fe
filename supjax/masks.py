"""The suppression masks laid out like the params, for code that acts on gradients before the optimizer.

:func:`keep_mask_tree` gives one keep-mask per params leaf: the state's mask for a suppressed
layer, a scalar ``True`` for every other leaf (it broadcasts). A DP-SGD step, for example,
multiplies each per-example gradient by it before clipping, so the clipping norm is not spent
on coordinates the suppress transformation discards (the masks are a function of the earlier
privatised updates only, so the step stays a Gaussian mechanism with the same sensitivity).
"""

from __future__ import annotations

from typing import Any, Sequence

import jax
import jax.numpy as jnp

from supjax.layers import LayerRule, SelectedLayer, select_layers
from supjax.state import SuppressState

__all__ = [
    "keep_mask_tree",
    "selected_for",
]


def keep_mask_tree(params: Any, state: SuppressState, layers: Sequence[LayerRule]) -> Any:
    """A pytree shaped like ``params``: each suppressed leaf's bool keep-mask, ``True`` elsewhere.

    ``layers`` are the rules the transformation was built with (they pick the leaves the
    state's masks belong to, in leaf order). Jittable when ``layers`` is closed over.

    >>> import jax.numpy as jnp
    >>> from supjax import LayerRule, SuppressSchedule, keep_mask_tree, suppress
    >>> params = {"b": jnp.zeros(2), "w": jnp.ones((2, 2))}
    >>> state = suppress([LayerRule("w")], SuppressSchedule.from_steps(1, 9, 3)).init(params)
    >>> state = state._replace(keep_masks=(jnp.array([[True, False], [False, True]]),))
    >>> tree = keep_mask_tree(params, state, [LayerRule("w")])
    >>> tree["b"].tolist(), tree["w"].tolist()
    (True, [[True, False], [False, True]])
    >>> jnp.where(tree["w"], 5.0, 0.0).tolist()  # e.g. zero the discarded coordinates of a gradient
    [[5.0, 0.0], [0.0, 5.0]]
    """
    if not isinstance(state, SuppressState):
        raise TypeError(f"state must be a SuppressState (see supjax.find_suppress_state), got {type(state).__name__}")
    leaves, treedef = jax.tree_util.tree_flatten(params)
    out: list[jax.Array] = [jnp.asarray(True) for _ in leaves]
    for layer, mask in zip(selected_for(params, state, layers), state.keep_masks):
        out[layer.leaf_index] = jnp.asarray(mask, bool)
    return jax.tree_util.tree_unflatten(treedef, out)


def selected_for(params: Any, state: SuppressState, layers: Sequence[LayerRule]) -> tuple[SelectedLayer, ...]:
    """:func:`~supjax.layers.select_layers`, checked to select one layer per mask of ``state``.

    >>> import jax.numpy as jnp
    >>> from supjax import LayerRule, SuppressSchedule, suppress
    >>> from supjax.masks import selected_for
    >>> state = suppress([LayerRule("w")], SuppressSchedule.from_steps(1, 9, 3)).init({"w": jnp.ones(2)})
    >>> [s.path for s in selected_for({"w": jnp.ones(2)}, state, [LayerRule("w")])]
    ['w']
    """
    selected = select_layers(params, layers)
    if len(selected) != len(state.keep_masks):
        raise ValueError(
            f"layers select {len(selected)} parameters but the state holds {len(state.keep_masks)} masks"
        )
    return selected
