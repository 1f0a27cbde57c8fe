"""Ship what suppression makes: the suppressed layers as sparse arrays, with their sizes.

:func:`export_sparse` turns each suppressed layer into a
:class:`jax.experimental.sparse.BCOO` holding only the weights its keep-mask keeps (values
and int32 indices, one index column per dimension) and reports the bytes dense and sparse,
per layer and for the whole model. A BCOO array works where its dense layer did in
``x @ w`` and :func:`jax.experimental.sparse.sparsify`-ed functions; ``.todense()`` gives
the dense layer back bit for bit. Runs on the host, after training (not jittable).
"""

from __future__ import annotations

from typing import Any, NamedTuple, Sequence

import jax
import numpy as np

from supjax.layers import LayerRule, leaf_indices, select_layers
from supjax.state import SuppressState, find_suppress_state

__all__ = ["ExportReport", "LayerSize", "export_sparse"]


class LayerSize(NamedTuple):
    """One suppressed layer's size: ``dense_bytes`` as an array, ``sparse_bytes`` as a BCOO.

    ``sparse_bytes = kept * (itemsize + 4 * ndim)``: the kept values and their int32 indices.

    >>> from supjax import LayerSize
    >>> LayerSize("fc/kernel", (64, 10), 32, 64 * 10 * 4, 32 * (4 + 2 * 4)).sparse_bytes
    384
    """

    path: str
    shape: tuple[int, ...]
    kept: int
    dense_bytes: int
    sparse_bytes: int


class ExportReport(NamedTuple):
    """Sizes of the exported model: per suppressed layer, and totals over every parameter.

    ``dense_bytes`` is the whole model stored dense, ``sparse_bytes`` the same model with
    its suppressed layers as BCOO (the other parameters count the same in both).

    >>> from supjax import ExportReport, LayerSize
    >>> report = ExportReport((LayerSize("w", (4, 4), 2, 64, 24),), dense_bytes=80, sparse_bytes=40)
    >>> report.sparse_bytes / report.dense_bytes
    0.5
    """

    layers: tuple[LayerSize, ...]
    dense_bytes: int
    sparse_bytes: int

    def format(self) -> str:
        """The report as a table, one row per layer and a total row.

        >>> from supjax import ExportReport, LayerSize
        >>> print(ExportReport((LayerSize("w", (4, 4), 2, 64, 24),), 80, 40).format())
        layer                  kept     dense B    sparse B
        w                   2 of 16          64          24
        model total                          80          40  (50.0 % of dense)
        """
        width = max([len(row.path) for row in self.layers] + [11])
        lines = [f"{'layer':<{width}}  {'kept':>14}  {'dense B':>10}  {'sparse B':>10}"]
        for row in self.layers:
            kept = f"{row.kept} of {int(np.prod(row.shape))}"
            lines.append(f"{row.path:<{width}}  {kept:>14}  {row.dense_bytes:>10}  {row.sparse_bytes:>10}")
        share = 100.0 * self.sparse_bytes / self.dense_bytes
        lines.append(f"{'model total':<{width}}  {'':>14}  {self.dense_bytes:>10}  {self.sparse_bytes:>10}"
                     f"  ({share:.1f} % of dense)")
        return "\n".join(lines)


def _state_of(opt_state_or_state: Any) -> SuppressState:
    if isinstance(opt_state_or_state, SuppressState):
        return opt_state_or_state
    return find_suppress_state(opt_state_or_state)


def export_sparse(
    params: Any, opt_state_or_state: Any, layers: Sequence[LayerRule]
) -> tuple[Any, ExportReport]:
    """``params`` with every suppressed layer as a BCOO of its kept weights, and the sizes.

    ``opt_state_or_state`` is the optimizer state holding the :class:`SuppressState` (or the
    state itself) and ``layers`` the rules the transformation was built with. Raises
    ``ValueError`` when a layer's masked weights are not all zero (the masks leak: the
    export would change the model) or when the state does not fit ``params``.

    >>> import jax, jax.numpy as jnp, optax
    >>> from supjax import LayerRule, SuppressSchedule, export_sparse, suppress
    >>> rules = [LayerRule("w")]
    >>> params = {"w": jnp.linspace(-1.0, 1.0, 20).reshape(4, 5), "b": jnp.zeros(5)}
    >>> tx = optax.chain(optax.sgd(0.1), suppress(rules, SuppressSchedule.from_steps(1, 4, 4, sparse_end=0.5)))
    >>> state = tx.init(params)
    >>> for _ in range(6):
    ...     updates, state = tx.update(jax.tree.map(jnp.zeros_like, params), state, params)
    ...     params = optax.apply_updates(params, updates)
    >>> sparse_params, report = export_sparse(params, state, rules)
    >>> sparse_params["w"].nse, report.layers[0].dense_bytes, report.layers[0].sparse_bytes
    (10, 80, 120)
    >>> bool((sparse_params["w"].todense() == params["w"]).all())
    True
    """
    from jax.experimental import sparse  # imported here: ``import supjax`` stays light

    state = _state_of(opt_state_or_state)
    selected = select_layers(params, layers)
    if len(selected) != len(state.keep_masks):
        raise ValueError(
            f"layers select {len(selected)} layers of params but the state holds "
            f"{len(state.keep_masks)} masks: pass the rules the transformation was built with"
        )
    leaves, treedef = jax.tree_util.tree_flatten(params)
    positions = leaf_indices(params, [s.path for s in selected])
    rows = []
    for layer, mask, i in zip(selected, state.keep_masks, positions):
        w, keep = np.asarray(jax.device_get(leaves[i])), np.asarray(jax.device_get(mask), bool)
        if keep.shape != w.shape:
            raise ValueError(
                f"layer {layer.path!r} has shape {w.shape} but its mask has shape {keep.shape}: "
                f"the state does not belong to these params"
            )
        leaking = int(np.count_nonzero(w[~keep]))
        if leaking:
            raise ValueError(
                f"layer {layer.path!r} has {leaking} masked weights that are not zero: its masks "
                f"leak (see SuppressState.leaked), so a sparse export would change the model"
            )
        indices = np.argwhere(keep).astype(np.int32)
        values = w[keep]
        leaves[i] = sparse.BCOO((jax.numpy.asarray(values), jax.numpy.asarray(indices)), shape=w.shape)
        rows.append(LayerSize(layer.path, tuple(w.shape), int(values.size), int(w.nbytes),
                              int(values.nbytes + indices.nbytes)))
    dense_total = sum(int(np.asarray(leaf).nbytes) for leaf in jax.tree_util.tree_leaves(params))
    sparse_total = dense_total - sum(r.dense_bytes - r.sparse_bytes for r in rows)
    return jax.tree_util.tree_unflatten(treedef, leaves), ExportReport(tuple(rows), dense_total, sparse_total)
