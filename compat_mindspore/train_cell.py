"""The training step: a ``TrainOneStepCell`` that applies keep-masks and corrections.

Per suppressed parameter the cell holds two non-trainable ``Parameter`` buffers owned by the
controller: ``mul`` (the keep-mask, 1 kept / 0 suppressed) and ``add`` (the correction; zero
except on the step right after a suppress operation). The controller rewrites them from the
host, so a GRAPH_MODE graph is compiled once and reused. Two forms:

* ``"gradient"`` (MindArmour's, for ``nn.SGD``): the optimizer gets ``g' = add + g * mul``
  with ``add = delta / lr``; with ``exact_zero`` the suppressed weights are then set to
  exactly 0 (SGD's ``w - lr * (w / lr)`` can leave a ~1e-9 residue).
* ``"update"`` (any optimizer): the optimizer steps on the plain gradients, then
  ``w = w_after - add`` where ``mul`` keeps and ``w = 0`` where it suppresses.
"""

from __future__ import annotations

from typing import Sequence

from mindspore import Parameter, ParameterTuple, nn, ops
from mindspore.context import ParallelMode
from mindspore.nn.wrap.grad_reducer import DistributedGradReducer
from mindspore.parallel._utils import _get_device_num, _get_gradients_mean, _get_parallel_mode

__all__ = ["SuppressTrainOneStepCell"]


class SuppressTrainOneStepCell(nn.Cell):
    """Loss network + optimizer, with suppress masks and corrections (PYNATIVE and GRAPH mode).

    Args:
        network (Cell): the network with its loss (outputs the loss).
        optimizer (Optimizer): the optimizer; its ``parameters`` define the gradient tuple.
        positions (Sequence[int]): for each suppressed layer, its index in ``optimizer.parameters``.
        muls (Sequence[Parameter]): keep-mask buffers, one per suppressed layer.
        adds (Sequence[Parameter]): correction buffers, one per suppressed layer.
        form (str): ``"gradient"``, ``"update"``, or ``"none"`` (plain training).
        exact_zero (bool): in the gradient form, set suppressed weights to exactly 0 after the step.
        sens (float): the loss's sensitivity (scale of the backpropagated gradient). Default: 1.0.

    Inputs:
        - **\\*inputs** (Tensor) - the inputs of ``network`` (data and label).

    Outputs:
        Tensor, the loss.

    Examples:
        >>> import numpy as np
        >>> from mindspore import nn, Tensor
        >>> from compat_mindspore._convert import make_buffer
        >>> net = nn.Dense(3, 2)
        >>> opt = nn.Adam(net.trainable_params(), 0.01)
        >>> mul, add = make_buffer("mul", net.weight, 1.0), make_buffer("add", net.weight, 0.0)
        >>> _ = mul.set_data(Tensor(np.array([[1, 0, 1], [0, 1, 1]], np.float32)))
        >>> loss_net = nn.WithLossCell(net, nn.MSELoss())
        >>> cell = SuppressTrainOneStepCell(loss_net, opt, [0], [mul], [add], "update").set_train()
        >>> _ = cell(Tensor(np.ones((4, 3), np.float32)), Tensor(np.zeros((4, 2), np.float32)))
        >>> (net.weight.asnumpy()[mul.asnumpy() == 0] == 0).all()
        True
    """

    def __init__(
        self,
        network: nn.Cell,
        optimizer: nn.Optimizer,
        positions: Sequence[int] = (),
        muls: Sequence[Parameter] = (),
        adds: Sequence[Parameter] = (),
        form: str = "none",
        exact_zero: bool = False,
        sens: float = 1.0,
    ) -> None:
        super().__init__(auto_prefix=False)
        if form not in ("none", "gradient", "update"):
            raise ValueError(f"form must be 'none', 'gradient' or 'update', got {form!r}")
        if not len(positions) == len(muls) == len(adds):
            raise ValueError("positions, muls and adds must have one entry per suppressed layer")
        self.network = network
        self.network.set_grad()
        self.optimizer = optimizer
        self.weights = optimizer.parameters
        self.grad = ops.GradOperation(get_by_list=True, sens_param=True)
        self.sens = float(sens)
        n_weights = len(self.weights)
        slot = [-1] * n_weights
        for k, position in enumerate(positions):
            slot[position] = k
        self.slot = tuple(slot)
        self.positions = tuple(int(p) for p in positions)
        self.n_weights = n_weights
        self.n_masked = len(self.positions)
        self.muls = ParameterTuple(list(muls))
        self.adds = ParameterTuple(list(adds))
        active = self.n_masked > 0
        self.mask_gradients = active and form == "gradient"
        self.zero_after = active and form == "gradient" and exact_zero
        self.correct_after = active and form == "update"
        self.form = form if active else "none"
        self.grad_reducer = nn.Identity()
        if _get_parallel_mode() in (ParallelMode.DATA_PARALLEL, ParallelMode.HYBRID_PARALLEL):
            self.grad_reducer = DistributedGradReducer(self.weights, _get_gradients_mean(), _get_device_num())

    def construct(self, *inputs):
        """One step: loss, gradients, masked update, corrected weights; returns the loss."""
        loss = self.network(*inputs)
        sens = ops.fill(ops.dtype(loss), ops.shape(loss), self.sens)
        grads = self.grad(self.network, self.weights)(*inputs, sens)
        grads = self.grad_reducer(grads)
        if self.mask_gradients:
            grads = self._masked(grads)
        loss = ops.depend(loss, self.optimizer(grads))
        if self.zero_after:
            for k in range(self.n_masked):
                weight = self.weights[self.positions[k]]
                kept = ops.select(self.muls[k] > 0, weight, ops.zeros_like(weight))
                loss = ops.depend(loss, ops.assign(weight, kept))
        if self.correct_after:
            for k in range(self.n_masked):
                weight = self.weights[self.positions[k]]
                landed = ops.select(self.muls[k] > 0, weight - self.adds[k], ops.zeros_like(weight))
                loss = ops.depend(loss, ops.assign(weight, landed))
        return loss

    def _masked(self, grads):
        """MindArmour's ``add + g * mul`` on the suppressed layers' gradients."""
        out = ()
        for i in range(self.n_weights):
            grad = grads[i]
            k = self.slot[i]
            if k >= 0:
                grad = self.adds[k] + grad * self.muls[k]
            out = out + (grad,)
        return out
