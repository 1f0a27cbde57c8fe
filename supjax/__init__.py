"""supjax: MindArmour's Suppress Privacy as a functional, jitted optax transformation.

>>> import jax.numpy as jnp, optax, supjax
>>> tx = optax.chain(optax.adam(1e-3), supjax.suppress(
...     [supjax.LayerRule("dense/kernel", min_num=10)],
...     supjax.SuppressSchedule.from_epochs(start_epoch=3, end_epoch=10, batch_num=20, mask_times=100)))
>>> state = tx.init({"dense": {"kernel": jnp.ones((8, 4)), "bias": jnp.zeros(4)}})
"""

from supjax.layers import LayerRule, SelectedLayer, select_layers
from supjax.operation import plan_layers, suppress_operation
from supjax.layer_operation import Move
from supjax.reports import LayerSparsity, format_report, mask_sparsity, sparsity_report, weight_sparsity
from supjax.schedule import SuppressSchedule, advance_schedule, next_sparsity, stop_count
from supjax.transform import SuppressState, find_suppress_state, suppress, suppress_gradients

__version__ = "0.1.0"

__all__ = [
    "LayerRule",
    "LayerSparsity",
    "Move",
    "SelectedLayer",
    "SuppressSchedule",
    "SuppressState",
    "advance_schedule",
    "find_suppress_state",
    "format_report",
    "mask_sparsity",
    "next_sparsity",
    "plan_layers",
    "select_layers",
    "sparsity_report",
    "stop_count",
    "suppress",
    "suppress_gradients",
    "suppress_operation",
    "weight_sparsity",
]
