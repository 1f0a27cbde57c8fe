"""``SuppressModel``: a ``mindspore.train.Model`` whose train step applies suppression."""

from __future__ import annotations

import logging

import numpy as np
from mindspore import nn
from mindspore.train import Model, amp

from compat_mindspore._checks import check_instance
from compat_mindspore._log import log
from compat_mindspore.ctrl import CorrectionForm, SuppressCtrl
from compat_mindspore.train_cell import SuppressTrainOneStepCell

__all__ = ["SuppressModel", "check_grad_indices", "correction_form_for"]



def check_grad_indices(ctrl: SuppressCtrl, optimizer: nn.Optimizer) -> tuple[int, ...]:
    """Each suppressed layer's ``grad_idx``, checked against the optimizer's parameter list.

    Raises ``ValueError`` when a ``grad_idx`` is not the position of the parameter its
    ``layer_name`` matched (MindArmour would silently mask another tensor).

    >>> from mindspore import nn
    >>> from compat_mindspore import MaskLayerDes, SuppressPrivacyFactory
    >>> net = nn.SequentialCell([nn.Dense(4, 4), nn.Dense(4, 2)])
    >>> ctrl = SuppressPrivacyFactory.create(net, [MaskLayerDes("1.weight", 2, False, False, -1)], seed=0)
    >>> check_grad_indices(ctrl, nn.SGD(net.trainable_params(), 0.05))
    (2,)
    >>> check_grad_indices(ctrl, nn.SGD(net.trainable_params()[::-1], 0.05))
    Traceback (most recent call last):
    ...
    ValueError: MaskLayerDes('1.weight') has grad_idx=2, but its parameter '1.weight' is at position 1 of the optimizer's parameter list (position 2 holds '0.bias')
    """
    params = list(optimizer.parameters)
    positions = []
    for layer in ctrl.layers:
        des, target = layer.description, layer.parameter
        where = [i for i, p in enumerate(params) if p is target]
        if not where:
            where = [i for i, p in enumerate(params) if p.name == target.name]
        if des.grad_idx < len(params) and des.grad_idx in where:
            positions.append(des.grad_idx)
            continue
        if not where:
            raise ValueError(
                f"MaskLayerDes({des.layer_name!r}) matched parameter {target.name!r}, which is not in "
                "the optimizer's parameter list: build the controller and the model on the same network"
            )
        held = repr(params[des.grad_idx].name) if des.grad_idx < len(params) else "nothing"
        raise ValueError(
            f"MaskLayerDes({des.layer_name!r}) has grad_idx={des.grad_idx}, but its parameter "
            f"{target.name!r} is at position {where[0]} of the optimizer's parameter list "
            f"(position {des.grad_idx} holds {held})"
        )
    return tuple(positions)


def _scalar(value: object) -> float | None:
    """A Python float from a number, scalar Tensor or Parameter; ``None`` for anything else."""
    if isinstance(value, (int, float)):
        return float(value)
    if hasattr(value, "asnumpy"):
        array = np.asarray(value.asnumpy())
        return float(array.reshape(())) if array.size == 1 else None
    return None


def _is_plain_sgd(optimizer: nn.Optimizer, lr: float) -> bool:
    """Plain SGD at the controller's ``lr``: no momentum, weight decay, lr schedule or loss scale."""
    if not isinstance(optimizer, nn.SGD):
        return False
    if optimizer.dynamic_lr or optimizer.is_group_lr or optimizer.is_group:
        return False
    for setting in (optimizer.momentum, optimizer.weight_decay):
        if _scalar(setting) != 0.0:
            return False
    if _scalar(getattr(optimizer, "loss_scale", 1.0)) != 1.0:
        return False
    rate = _scalar(optimizer.learning_rate)
    return rate is not None and bool(np.float32(rate) == np.float32(lr))


def correction_form_for(optimizer: nn.Optimizer, ctrl: SuppressCtrl) -> CorrectionForm:
    """``"gradient"`` for plain ``nn.SGD`` at ``ctrl.lr`` (and always under reference parity), else ``"update"``.

    >>> from mindspore import nn
    >>> from compat_mindspore import MaskLayerDes, SuppressPrivacyFactory
    >>> net = nn.SequentialCell([nn.Dense(4, 2)])
    >>> ctrl = SuppressPrivacyFactory.create(net, [MaskLayerDes("0.weight", 0, False, False, -1)], seed=0)
    >>> correction_form_for(nn.SGD(net.trainable_params(), 0.05), ctrl)
    'gradient'
    >>> correction_form_for(nn.Momentum(net.trainable_params(), 0.05, 0.9), ctrl)
    'update'
    """
    if ctrl.reference_parity:
        if not isinstance(optimizer, nn.SGD):
            raise TypeError(
                "reference_parity reproduces MindArmour, which only supports nn.SGD, but the optimizer "
                f"is {type(optimizer).__name__}: use reference_parity=False for other optimizers"
            )
        return "gradient"
    return "gradient" if _is_plain_sgd(optimizer, ctrl.lr) else "update"


class SuppressModel(Model):
    """Suppress privacy training model, a ``mindspore.train.Model`` (MindArmour's ``SuppressModel``).

    Until :meth:`link_suppress_ctrl` it trains like a plain ``Model``. After it, every step
    applies the controller's keep-masks and corrections: with MindArmour's gradient form
    for plain ``nn.SGD``, and by correcting the weights after the step for any other
    optimizer (Momentum, Adam, ...), so suppressed weights stay exactly 0. Works in
    PYNATIVE_MODE and GRAPH_MODE.

    Args:
        network (Cell): the training network.
        loss_fn (Cell): the loss function.
        optimizer (Optimizer): the optimizer (any ``nn.Optimizer``; MindArmour accepts only ``nn.SGD``).
        kwargs: other ``Model`` arguments (``metrics``, ``amp_level``, ...). Loss scaling is
            not supported.

    Raises:
        TypeError: ``network`` is not a Cell or ``optimizer`` not an Optimizer.
        ValueError: a ``loss_scale_manager`` is given.

    Examples:
        >>> import mindspore.nn as nn
        >>> from compat_mindspore import MaskLayerDes, SuppressModel, SuppressPrivacyFactory
        >>> network = nn.SequentialCell([nn.Dense(10, 10)])
        >>> ctrl = SuppressPrivacyFactory.create(network, [MaskLayerDes("0.weight", 0, False, True, 10)],
        ...                                      end_epoch=10, batch_num=1, start_epoch=3,
        ...                                      mask_times=10, lr=0.05, sparse_end=0.95, seed=0)
        >>> model = SuppressModel(network, nn.SoftmaxCrossEntropyWithLogits(sparse=True, reduction="mean"),
        ...                       nn.SGD(network.trainable_params(), 0.05))
        >>> model.link_suppress_ctrl(ctrl)
        >>> ctrl.correction_form
        'gradient'
    """

    def __init__(self, network: nn.Cell, loss_fn: nn.Cell, optimizer: nn.Optimizer, **kwargs) -> None:
        check_instance("network", network, nn.Cell)
        check_instance("optimizer", optimizer, nn.Optimizer)
        if kwargs.get("loss_scale_manager") is not None:
            raise ValueError("SuppressModel does not support loss scaling: remove loss_scale_manager")
        self.network_end: nn.Cell | None = None
        self._train_one_step: SuppressTrainOneStepCell | None = None
        self._loss_network: nn.Cell | None = None
        self._suppress_ctrl: SuppressCtrl | None = None
        super().__init__(network, loss_fn, optimizer, **kwargs)

    @property
    def suppress_ctrl(self) -> SuppressCtrl | None:
        """The linked controller (``None`` before :meth:`link_suppress_ctrl`)."""
        return self._suppress_ctrl

    def link_suppress_ctrl(self, suppress_pri_ctrl: SuppressCtrl) -> None:
        """Link this model and a ``SuppressCtrl``: the train step then applies its masks.

        Args:
            suppress_pri_ctrl (SuppressCtrl): the controller.

        Raises:
            TypeError: not a ``SuppressCtrl``; or reference parity with an optimizer other than ``nn.SGD``.
            ValueError: a ``grad_idx`` that is not its parameter's position in the optimizer's list.
        """
        ctrl = check_instance("suppress_pri_ctrl", suppress_pri_ctrl, SuppressCtrl)
        positions = check_grad_indices(ctrl, self._optimizer)
        form = correction_form_for(self._optimizer, ctrl)
        ctrl.set_correction_form(form)
        ctrl.model = self
        self._suppress_ctrl = ctrl
        muls, adds = ctrl.mask_buffers
        cell = SuppressTrainOneStepCell(
            self._loss_network, self._optimizer, positions, muls, adds, form,
            exact_zero=not ctrl.reference_parity,
        ).set_train()
        cell._jit_config_dict = self._network.jit_config_dict
        self._train_one_step = cell
        self._train_network = cell
        ctrl.precompile()
        log(logging.INFO, "suppress correction form: %s (%s)", form, type(self._optimizer).__name__)

    def _build_train_network(self) -> SuppressTrainOneStepCell:
        """The train step, first without suppression (``link_suppress_ctrl`` replaces it)."""
        if self._optimizer is None:
            raise ValueError("SuppressModel needs an optimizer")
        self._loss_network = self._build_loss_network()
        cell = SuppressTrainOneStepCell(self._loss_network, self._optimizer).set_train()
        self._train_one_step = cell
        self.network_end = cell.network
        return cell

    def _build_loss_network(self) -> nn.Cell:
        """The network with its loss and MindSpore's mixed-precision casts for ``amp_level``."""
        kwargs = {}
        if self._keep_bn_fp32 is not None:
            kwargs["keep_batchnorm_fp32"] = self._keep_bn_fp32
        if self._amp_level != "O0":
            kwargs["loss_scale_manager"] = None
        built = amp.build_train_network(
            self._network, self._optimizer, self._loss_fn, level=self._amp_level,
            boost_level=self._boost_level, **kwargs,
        )
        return built.network
