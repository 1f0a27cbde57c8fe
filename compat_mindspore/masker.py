"""``SuppressMasker``: the callback that runs the schedule after every training step."""

from __future__ import annotations

import logging

from mindspore.train import Callback, RunContext

from compat_mindspore._checks import check_instance
from compat_mindspore._log import logger
from compat_mindspore.ctrl import SuppressCtrl
from compat_mindspore.model import SuppressModel

__all__ = ["SuppressMasker"]


class _DocumentedStepEnd(Callback):
    """Holds the documented ``step_end``.

    MindSpore warns about (and in ``Model.fit`` rejects) callbacks whose own class defines the
    old-style ``step_end``; MindSpore's ``on_train_step_end`` calls it from here.
    """

    _suppress_ctrl: SuppressCtrl
    _model: SuppressModel

    def step_end(self, run_context: RunContext) -> None:
        """Update the schedule, and run a suppress operation when one is due.

        Args:
            run_context (RunContext): the training's run context.
        """
        cb_params = run_context.original_args()
        batch_num = int(cb_params.batch_num)
        cur_step_in_epoch = (int(cb_params.cur_step_num) - 1) % batch_num + 1
        # steps of the whole training: MindSpore counts cur_step_num from 0 again in a run
        # resumed with initial_epoch, but cur_epoch_num goes on
        cur_step = (int(cb_params.cur_epoch_num) - 1) * batch_num + cur_step_in_epoch
        ctrl = self._suppress_ctrl
        if self._model.network_end is None:
            return
        if cur_step_in_epoch % 100 == 1 and logger().isEnabledFor(logging.INFO):
            ctrl.calc_theoretical_sparse_for_conv()  # logged, as MindArmour's masker does
            ctrl.calc_actual_sparse_for_conv(ctrl.networks)
        ctrl.update_status(int(cb_params.cur_epoch_num), cur_step, cur_step_in_epoch)
        if ctrl.to_do_mask:
            ctrl.update_mask(ctrl.networks, cur_step)
        elif ctrl.mask_started:
            ctrl.reset_zeros()


class SuppressMasker(_DocumentedStepEnd):
    """Check the suppress schedule after each step and run the operations (MindArmour's ``SuppressMasker``).

    After step ``t`` it calls ``update_status``; when an operation is due it runs
    ``update_mask`` (the masks and corrections apply from step ``t + 1``), otherwise, once
    suppression has started, ``reset_zeros``. Use ``model.train(..., dataset_sink_mode=False)``
    so that it sees every step. The step ``t`` is counted over the whole training, also in a
    run resumed with ``model.train(..., initial_epoch=k)`` (``k * batch_num`` steps before it).
    Put it before ``ModelCheckpoint`` in the callbacks, so that a checkpoint saved after a
    step holds the operation decided after that step.

    Args:
        model (SuppressModel): the model, linked to ``suppress_ctrl`` before training starts.
        suppress_ctrl (SuppressCtrl): the controller.

    Raises:
        TypeError: ``model`` is not a ``SuppressModel`` or ``suppress_ctrl`` not a ``SuppressCtrl``.
        ValueError: (when training begins) ``model`` is not linked to ``suppress_ctrl``.

    Examples:
        >>> import numpy as np
        >>> import mindspore.dataset as ds
        >>> import mindspore.nn as nn
        >>> from compat_mindspore import (MaskLayerDes, SuppressMasker, SuppressModel,
        ...                               SuppressPrivacyFactory)
        >>> network = nn.SequentialCell([nn.Dense(10, 10)])
        >>> ctrl = SuppressPrivacyFactory.create(network, [MaskLayerDes("0.weight", 0, False, True, 10)],
        ...                                      end_epoch=2, batch_num=10, start_epoch=1,
        ...                                      mask_times=4, lr=0.05, sparse_end=0.8, seed=0)
        >>> model = SuppressModel(network, nn.SoftmaxCrossEntropyWithLogits(sparse=True, reduction="mean"),
        ...                       nn.SGD(network.trainable_params(), 0.05))
        >>> model.link_suppress_ctrl(ctrl)
        >>> rng = np.random.default_rng(0)
        >>> data = ds.NumpySlicesDataset({"x": rng.normal(size=(40, 10)).astype(np.float32),
        ...                               "y": rng.integers(0, 10, 40).astype(np.int32)}, shuffle=False)
        >>> model.train(3, data.batch(4), callbacks=[SuppressMasker(model, ctrl)], dataset_sink_mode=False)
        >>> round(ctrl.calc_actual_sparse_for_layer(network, "0.weight"), 2)
        0.8
    """

    def __init__(self, model: SuppressModel, suppress_ctrl: SuppressCtrl) -> None:
        super().__init__()
        self._model: SuppressModel = check_instance("model", model, SuppressModel)
        self._suppress_ctrl: SuppressCtrl = check_instance("suppress_ctrl", suppress_ctrl, SuppressCtrl)

    def on_train_begin(self, run_context: RunContext) -> None:
        """Check, before training, that the model applies this controller's masks."""
        if self._model.suppress_ctrl is not self._suppress_ctrl:
            raise ValueError(
                "the SuppressModel is not linked to this SuppressCtrl: call "
                "model.link_suppress_ctrl(suppress_ctrl) before model.train"
            )
        cb_params = run_context.original_args()
        if getattr(cb_params, "dataset_sink_mode", False):
            raise ValueError("SuppressMasker needs every step: use model.train(..., dataset_sink_mode=False)")
