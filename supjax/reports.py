"""How sparse the suppressed layers are: weights, masks and the current target.

The equivalents of MindArmour's ``calc_actual_sparse_for_layer`` (weights with
``|w| <= 1e-7``) and ``calc_theoretical_sparse_for_conv`` (zeros in the keep-mask).
"""

from __future__ import annotations

from typing import Any, NamedTuple, Sequence

import jax
import numpy as np

from supjax.layers import LayerRule, select_layers
from supjax.transform import SuppressState

__all__ = [
    "ZERO_THRESHOLD",
    "LayerSparsity",
    "format_report",
    "mask_sparsity",
    "sparsity_report",
    "weight_sparsity",
]

ZERO_THRESHOLD = 1e-7  # a weight at most this large counts as zero (the reference's base_ground_thd)


def weight_sparsity(weights: Any) -> float:
    """Fraction of weights with ``|w| <= 1e-7`` (``calc_actual_sparse_for_layer``).

    >>> weight_sparsity(np.array([0.0, 1e-8, 0.5, -2.0]))
    0.5
    """
    a = np.abs(np.asarray(jax.device_get(weights), dtype=np.float64))
    return float(np.mean(a <= ZERO_THRESHOLD))


def mask_sparsity(keep_mask: Any) -> float:
    """Fraction of suppressed entries in a keep-mask (``calc_theoretical_sparse_*``).

    >>> mask_sparsity(np.array([True, False, False, True]))
    0.5
    """
    return float(np.mean(~np.asarray(jax.device_get(keep_mask), dtype=bool)))


class LayerSparsity(NamedTuple):
    """Sparsity of one suppressed layer (a row of :func:`sparsity_report`).

    >>> row = LayerSparsity("w", 4, weight_sparsity=0.5, mask_sparsity=0.5, target_sparsity=0.5, suppressed=2)
    >>> row.suppressed, row.nonfinite_skips
    (2, 0)
    """

    path: str
    size: int
    weight_sparsity: float
    mask_sparsity: float
    target_sparsity: float
    suppressed: int
    nonfinite_skips: int = 0  # operations that skipped the layer because it held NaN or Inf


def sparsity_report(
    params: Any, state: SuppressState, layers: Sequence[LayerRule]
) -> list[LayerSparsity]:
    """Per selected layer: weight and mask sparsity, target, recorded count, NaN/Inf skips.

    ``layers`` are the rules the transformation was built with.

    >>> import jax.numpy as jnp
    >>> from supjax import LayerRule, SuppressSchedule, suppress
    >>> params = {"w": jnp.array([0.0, 0.5])}
    >>> state = suppress([LayerRule("w")], SuppressSchedule.from_steps(1, 2, 1)).init(params)
    >>> sparsity_report(params, state, [LayerRule("w")])[0].weight_sparsity
    0.5
    """
    selected = select_layers(params, layers)
    if len(selected) != len(state.keep_masks):
        raise ValueError(
            f"layers select {len(selected)} parameters but the state holds {len(state.keep_masks)} masks"
        )
    leaves = jax.tree_util.tree_leaves(params)
    target = float(jax.device_get(state.sparsity))
    counts = np.asarray(jax.device_get(state.suppressed))
    skips = np.asarray(jax.device_get(state.nonfinite_skips))
    return [
        LayerSparsity(
            path=layer.path,
            size=layer.size,
            weight_sparsity=weight_sparsity(leaves[layer.leaf_index]),
            mask_sparsity=mask_sparsity(mask),
            target_sparsity=target,
            suppressed=int(counts[i]),
            nonfinite_skips=int(skips[i]),
        )
        for i, (layer, mask) in enumerate(zip(selected, state.keep_masks))
    ]


def format_report(rows: Sequence[LayerSparsity]) -> str:
    """A plain-text table of :func:`sparsity_report` rows.

    >>> print(format_report([LayerSparsity("w", 4, 0.5, 0.5, 0.5, 2)]))
    layer  size  weights  mask    target
    w      4     50.00%   50.00%  50.00%
    """
    header = ("layer", "size", "weights", "mask", "target")
    body = [
        (r.path, str(r.size), f"{r.weight_sparsity:.2%}", f"{r.mask_sparsity:.2%}", f"{r.target_sparsity:.2%}")
        for r in rows
    ]
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in [header, *body]]
    return "\n".join(lines)

