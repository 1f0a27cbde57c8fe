"""How sparse the suppressed layers are: weights, masks, the current target, and leaks.

The equivalents of MindArmour's ``calc_actual_sparse_for_layer`` (weights with
``|w| <= 1e-7``) and ``calc_theoretical_sparse_for_conv`` (zeros in the keep-mask).
:func:`sparsity_metrics` computes them as arrays (jittable, for metric writers);
:func:`sparsity_report` turns them into rows on the host, one model or a batch of them.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from supjax.layers import LayerRule, select_layers
from supjax.masks import selected_for
from supjax.state import ZERO_THRESHOLD, SuppressState, zero_weights

__all__ = [
    "ZERO_THRESHOLD",
    "LayerSparsity",
    "SparsityMetrics",
    "format_report",
    "mask_sparsity",
    "sparsity_metrics",
    "sparsity_report",
    "weight_sparsity",
]

#: Why a layer's masked weights are not zero, printed by :func:`format_report`.
LEAK_CAUSE = (
    "masked weights are not zero, so the updates supjax.suppress returned did not reach the "
    "weights: put it last in the optax.chain (after the optimizer and anything that changes "
    "updates), and do not wrap it in a transformation that drops or rescales its updates "
    "(e.g. optax.contrib.schedule_free); suppress_gradients needs plain optax.sgd, no momentum"
)


def weight_sparsity(weights: Any) -> float:
    """Fraction of weights with ``|w| <= 1e-7`` (``calc_actual_sparse_for_layer``).

    >>> import numpy as np
    >>> from supjax import weight_sparsity
    >>> weight_sparsity(np.array([0.0, 1e-8, 0.5, -2.0]))
    0.5
    """
    a = np.abs(np.asarray(jax.device_get(weights), dtype=np.float64))
    return float(np.mean(a <= ZERO_THRESHOLD))


def mask_sparsity(keep_mask: Any) -> float:
    """Fraction of suppressed entries in a keep-mask (``calc_theoretical_sparse_*``).

    >>> import numpy as np
    >>> from supjax import mask_sparsity
    >>> mask_sparsity(np.array([True, False, False, True]))
    0.5
    """
    return float(np.mean(~np.asarray(jax.device_get(keep_mask), dtype=bool)))


class SparsityMetrics(NamedTuple):
    """Per-layer counts of :func:`sparsity_metrics` (arrays, in the order of the state's masks).

    >>> import jax.numpy as jnp
    >>> from supjax import SparsityMetrics
    >>> m = SparsityMetrics(*(jnp.array([4]), jnp.array([2]), jnp.array([3]), jnp.array([3]),
    ...                       jnp.array([0]), jnp.array([1])), target=jnp.float32(0.75))
    >>> {k: float(v) for k, v in m.scalars(["w"]).items()}
    {'sparsity/w/weights': 0.5, 'sparsity/w/mask': 0.75, 'sparsity/w/leaked': 1.0, 'sparsity/target': 0.75}
    """

    size: jax.Array  # int32[L], weights per layer
    weight_zeros: jax.Array  # int32[L], weights with |w| <= 1e-7
    mask_zeros: jax.Array  # int32[L], suppressed entries of the keep-mask
    suppressed: jax.Array  # int32[L], the recorded suppressed count
    nonfinite_skips: jax.Array  # int32[L], operations that skipped the layer (NaN/Inf)
    leaked: jax.Array  # int32[L], masked weights found non-zero at the last check
    target: jax.Array  # float32, the current target sparsity

    def scalars(self, paths: Sequence[str], prefix: str = "sparsity") -> dict[str, jax.Array]:
        """Flat ``{name: scalar}`` for a metric writer (CLU ``write_scalars``, TensorBoard)."""
        out: dict[str, jax.Array] = {}
        for i, path in enumerate(paths):
            out[f"{prefix}/{path}/weights"] = self.weight_zeros[i] / self.size[i]
            out[f"{prefix}/{path}/mask"] = self.mask_zeros[i] / self.size[i]
            out[f"{prefix}/{path}/leaked"] = self.leaked[i]
        out[f"{prefix}/target"] = self.target
        return out


def sparsity_metrics(params: Any, state: SuppressState, layers: Sequence[LayerRule]) -> SparsityMetrics:
    """Per selected layer, as arrays: zeros in the weights and the masks, target, leaks.

    Jittable (close over ``layers``) and vmappable over a batch of models; the host
    :func:`sparsity_report` is built on it. ``layers`` are the rules the transformation was
    built with.

    >>> import functools, jax, jax.numpy as jnp
    >>> from supjax import LayerRule, SuppressSchedule, sparsity_metrics, suppress
    >>> params = {"w": jnp.array([0.0, 0.5, 0.0, 2.0])}
    >>> state = suppress([LayerRule("w")], SuppressSchedule.from_steps(1, 2, 1)).init(params)
    >>> m = jax.jit(functools.partial(sparsity_metrics, layers=[LayerRule("w")]))(params, state)
    >>> m.weight_zeros.tolist(), m.mask_zeros.tolist(), m.leaked.tolist(), float(m.target)
    ([2], [0], [0], 0.0)
    """
    selected = selected_for(params, state, layers)
    leaves = jax.tree_util.tree_leaves(params)

    def per_layer(values: Sequence[jax.Array]) -> jax.Array:
        return jnp.stack(values).astype(jnp.int32) if values else jnp.zeros([0], jnp.int32)

    return SparsityMetrics(
        size=jnp.asarray([layer.size for layer in selected], jnp.int32),
        weight_zeros=per_layer([jnp.sum(zero_weights(leaves[layer.leaf_index]), dtype=jnp.int32)
                                for layer in selected]),
        mask_zeros=per_layer([jnp.sum(~jnp.asarray(m, bool), dtype=jnp.int32) for m in state.keep_masks]),
        suppressed=jnp.asarray(state.suppressed, jnp.int32),
        nonfinite_skips=jnp.asarray(state.nonfinite_skips, jnp.int32),
        leaked=jnp.asarray(state.leaked, jnp.int32),
        target=jnp.asarray(state.sparsity, jnp.float32),
    )


class LayerSparsity(NamedTuple):
    """Sparsity of one suppressed layer (a row of :func:`sparsity_report`).

    >>> from supjax import LayerSparsity
    >>> row = LayerSparsity("w", 4, weight_sparsity=0.5, mask_sparsity=0.5, target_sparsity=0.5, suppressed=2)
    >>> row.suppressed, row.nonfinite_skips, row.leaked, row.model
    (2, 0, 0, None)
    """

    path: str
    size: int
    weight_sparsity: float
    mask_sparsity: float
    target_sparsity: float
    suppressed: int
    nonfinite_skips: int = 0  # operations that skipped the layer because it held NaN or Inf
    leaked: int = 0  # masked weights found non-zero at the last check (0 unless misused)
    model: int | None = None  # the model's index in a batched (vmapped) state


def _rows(paths: Sequence[str], m: Any, model: int | None) -> list[LayerSparsity]:
    size, wz, mz = np.asarray(m.size), np.asarray(m.weight_zeros), np.asarray(m.mask_zeros)
    return [
        LayerSparsity(
            path=path,
            size=int(size[i]),
            weight_sparsity=int(wz[i]) / int(size[i]),
            mask_sparsity=int(mz[i]) / int(size[i]),
            target_sparsity=float(m.target),
            suppressed=int(m.suppressed[i]),
            nonfinite_skips=int(m.nonfinite_skips[i]),
            leaked=int(m.leaked[i]),
            model=model,
        )
        for i, path in enumerate(paths)
    ]


def sparsity_report(
    params: Any, state: SuppressState, layers: Sequence[LayerRule]
) -> list[LayerSparsity]:
    """Per selected layer: weight and mask sparsity, target, recorded count, NaN/Inf skips, leaks.

    ``layers`` are the rules the transformation was built with. A batched state (a leading
    model axis on every array, as ``jax.vmap`` over ``init`` makes it) with params batched
    the same way gives one row per model and layer, ``model`` set to the model's index.

    >>> import jax.numpy as jnp
    >>> from supjax import LayerRule, SuppressSchedule, sparsity_report, suppress
    >>> params = {"w": jnp.array([0.0, 0.5])}
    >>> state = suppress([LayerRule("w")], SuppressSchedule.from_steps(1, 2, 1)).init(params)
    >>> sparsity_report(params, state, [LayerRule("w")])[0].weight_sparsity
    0.5
    """
    batch = np.ndim(state.count)
    if batch == 0:
        paths = [layer.path for layer in select_layers(params, layers)]
        return _rows(paths, jax.device_get(sparsity_metrics(params, state, layers)), None)
    if batch != 1:
        raise ValueError(f"state.count must be a scalar or have one model axis, got shape {np.shape(state.count)}")
    models = int(np.shape(state.count)[0])
    leaves = jax.tree_util.tree_leaves(params)
    if not leaves or any(np.ndim(x) == 0 or np.shape(x)[0] != models for x in leaves):
        raise ValueError(
            f"a batched state holds {models} models: every leaf of params needs a leading axis of {models}"
        )
    paths = [layer.path for layer in select_layers(jax.tree_util.tree_map(lambda x: x[0], params), layers)]
    metrics = jax.device_get(jax.vmap(functools.partial(sparsity_metrics, layers=layers))(params, state))
    return [
        row
        for i in range(models)
        for row in _rows(paths, jax.tree_util.tree_map(lambda x: x[i], metrics), i)
    ]


def format_report(rows: Sequence[LayerSparsity]) -> str:
    """A plain-text table of :func:`sparsity_report` rows, then a warning per leaking layer.

    Adds a ``model`` column for a batched report and a ``leaked`` column when a layer leaks.

    >>> from supjax import LayerSparsity, format_report
    >>> print(format_report([LayerSparsity("w", 4, 0.5, 0.5, 0.5, 2)]))
    layer  size  weights  mask    target
    w      4     50.00%   50.00%  50.00%
    >>> print(format_report([LayerSparsity("w", 4, 0.0, 0.5, 0.5, 2, leaked=2)]).split(", so")[0])
    layer  size  weights  mask    target  leaked
    w      4     0.00%    50.00%  50.00%  2
    warning: w: 2 of 2 masked weights are not zero
    """
    batched = any(r.model is not None for r in rows)
    leaking = any(r.leaked for r in rows)
    header = ("model",) * batched + ("layer", "size", "weights", "mask", "target") + ("leaked",) * leaking
    body = [
        (str(r.model),) * batched
        + (r.path, str(r.size), f"{r.weight_sparsity:.2%}", f"{r.mask_sparsity:.2%}", f"{r.target_sparsity:.2%}")
        + (str(r.leaked),) * leaking
        for r in rows
    ]
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in [header, *body]]
    for r in rows:
        if r.leaked:
            where = f"model {r.model}, " if r.model is not None else ""
            masked = round(r.mask_sparsity * r.size)
            lines.append(f"warning: {where}{r.path}: {r.leaked} of {masked} {LEAK_CAUSE}")
    return "\n".join(lines)
