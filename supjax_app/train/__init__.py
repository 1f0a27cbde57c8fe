"""Training application of supjax: Flax LeNet5, a resumable loop, checkpoints, reports.

This subpackage needs the ``train`` extra (flax, scikit-learn, matplotlib, rich,
orbax-checkpoint); the core ``supjax`` package never imports it.

>>> from supjax_app.train import TrainConfig
>>> TrainConfig().epochs
30
"""

from supjax_app.train.checkpoint import Checkpointer, CheckpointMismatch
from supjax_app.train.config import TrainConfig
from supjax_app.train.loop import History, StepMetrics, TrainState, epoch_order, fit, init_state, make_predict, make_train_step
from supjax_app.models import LENET5_LAYERS, LeNet5, init_params, lenet5_for, lenet5_rules

__all__ = [
    "CheckpointMismatch",
    "Checkpointer",
    "History",
    "LENET5_LAYERS",
    "LeNet5",
    "StepMetrics",
    "TrainConfig",
    "TrainState",
    "epoch_order",
    "fit",
    "init_params",
    "init_state",
    "lenet5_for",
    "lenet5_rules",
    "make_predict",
    "make_train_step",
]
