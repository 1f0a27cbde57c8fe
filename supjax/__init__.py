"""supjax: MindArmour's Suppress Privacy as a functional, jitted optax transformation.

The user API: the transformations (:func:`suppress`, :func:`suppress_gradients`) with their
state (:class:`SuppressState`, found in an optimizer state by :func:`find_suppress_state`),
what they are built from (:class:`LayerRule`, :class:`SuppressSchedule`), the sparsity
reports, :func:`export_sparse` (the suppressed layers as sparse arrays, with their size) and
:func:`keep_mask_tree` (the masks laid out like the params, for code that acts on gradients). The parts an adapter assembles its own controller from (planning, the operation,
the schedule's bookkeeping) are behind the door :mod:`supjax.engine`.

>>> import jax.numpy as jnp, optax, supjax
>>> tx = optax.chain(optax.adam(1e-3), supjax.suppress(
...     [supjax.LayerRule("dense/kernel", min_num=10)],
...     supjax.SuppressSchedule.from_epochs(start_epoch=3, end_epoch=10, batch_num=20, mask_times=100)))
>>> state = tx.init({"dense": {"kernel": jnp.ones((8, 4)), "bias": jnp.zeros(4)}})
"""

from supjax.export import ExportReport, LayerSize, export_sparse
from supjax.layers import LayerRule
from supjax.masks import keep_mask_tree
from supjax.reports import (
    LayerSparsity,
    SparsityMetrics,
    format_report,
    mask_sparsity,
    sparsity_metrics,
    sparsity_report,
    weight_sparsity,
)
from supjax.schedule import SuppressSchedule
from supjax.transform import SuppressState, find_suppress_state, suppress, suppress_gradients

__version__ = "0.1.0"

__all__ = [
    "ExportReport",
    "LayerRule",
    "LayerSize",
    "LayerSparsity",
    "SparsityMetrics",
    "SuppressSchedule",
    "SuppressState",
    "export_sparse",
    "find_suppress_state",
    "format_report",
    "keep_mask_tree",
    "mask_sparsity",
    "sparsity_metrics",
    "sparsity_report",
    "suppress",
    "suppress_gradients",
    "weight_sparsity",
]
