"""Drive MindArmour 2.0.0 as the test oracle: its SuppressCtrl, then its own training step.

Imported only by the oracle tests (MindSpore environment). Nothing here computes what the
reference would do: the masks, counts and stop counts are read from MindArmour's objects
(the stop count from the arguments its ``update_mask`` hands to its per-layer methods), and
the landed weights come from one step of MindArmour's ``TrainOneStepCell`` with ``nn.SGD``.
"""

from __future__ import annotations

import contextlib
import io
from typing import NamedTuple

import numpy as np

#: The schedule both sides follow in the one-operation cases: an operation at step 1, where
#: suppression starts, so the target is the schedule's ``sparse_start`` (one step per epoch).
START_EPOCH, END_EPOCH, BATCH_NUM, MASK_TIMES, SPARSE_END = 1, 10, 1, 10, 0.999


def _quiet_import():
    with contextlib.redirect_stdout(io.StringIO()):
        import mindspore  # noqa: F401
        from mindarmour.privacy.sup_privacy import MaskLayerDes, SuppressCtrl
        from mindarmour.privacy.sup_privacy.train.model import TrainOneStepCell
    return MaskLayerDes, SuppressCtrl, TrainOneStepCell


def linear_network(weights: np.ndarray, first: bool):
    """A Cell with parameters ``a0`` (unless ``first``) and ``suplayer``; loss ``sum(suplayer * data)``.

    The gradient of that loss with respect to ``suplayer`` is ``data`` exactly, in MindSpore
    and in JAX, so both sides' steps start from the same gradient bits.
    """
    import mindspore as ms
    from mindspore import Parameter, Tensor, nn, ops

    class Linear(nn.Cell):
        def __init__(self):
            super().__init__()
            if not first:
                self.a0 = Parameter(Tensor(np.ones(3, np.float32)), name="a0")
            self.suplayer = Parameter(Tensor(weights.astype(np.float32)), name="suplayer")

        def construct(self, data, label):
            return ops.reduce_sum(self.suplayer * data) + label

    ms.set_context(mode=ms.PYNATIVE_MODE)
    return Linear()


class ReferenceOutcome(NamedTuple):
    keep: np.ndarray  # bool, flattened
    landed: np.ndarray  # weights after MindArmour's training step with gradient `grad`
    corrected: np.ndarray  # bool: the step's gradient held a correction (add != 0) there
    scale: np.ndarray  # largest magnitude in the step there: max(|w|, |lr * add|, |lr * grad|)
    count: int  # recorded suppressed count
    stop: int | None  # the stop count MindArmour's update_mask computed (None: layer skipped)
    sparsity: float  # MindArmour's cur_sparse


def reference_step(
    weights: np.ndarray,
    keep: np.ndarray,
    recorded: int,
    sparsity: float,
    grad: np.ndarray,
    *,
    first: bool = False,
    is_add_noise: bool = False,
    is_lower_clip: bool = False,
    min_num: int = -1,
    upper_bound: float = 1.2,
    lr: float = 0.05,
    noise_seed: int = 0,
) -> ReferenceOutcome:
    """MindArmour's operation at step 1 (target ``sparsity``) from a given mask and count, then its train step.

    The controller's schedule starts at step 1 with ``sparse_start = sparsity``; the noise
    comes from numpy's global generator, seeded with ``noise_seed``.
    """
    import mindspore as ms
    from mindspore import Tensor, nn

    MaskLayerDes, SuppressCtrl, TrainOneStepCell = _quiet_import()
    net = linear_network(weights, first)
    idx = 0 if first else 1
    des = MaskLayerDes("suplayer", idx, is_add_noise, is_lower_clip, min_num, upper_bound)
    with contextlib.redirect_stdout(io.StringIO()):
        ctrl = SuppressCtrl(net, [des], END_EPOCH, BATCH_NUM, START_EPOCH, MASK_TIMES, lr, SPARSE_END, sparsity)
    cell = ctrl.grads_mask_list[idx]
    cell.mul_mask_array_flat[:] = keep.reshape(-1).astype(np.float32)
    cell.sparse_pos_list.append(int(recorded))
    stops: list[int] = []

    def spy(method, position):
        def call(*args):
            stops.append(int(args[position]))
            return method(*args)
        return call

    # record the stop count MindArmour's update_mask passes on (the real methods still run)
    ctrl.update_mask_layer = spy(ctrl.update_mask_layer, 2)
    ctrl.update_mask_layer_approximity = spy(ctrl.update_mask_layer_approximity, 2)
    ctrl.update_status(START_EPOCH, 1, 1)  # suppression starts: start step 1, an operation due
    assert ctrl.to_do_mask and ctrl.mask_started
    np.random.seed(noise_seed)
    with contextlib.redirect_stdout(io.StringIO()):
        ctrl.update_mask(net, 1)
    add = np.asarray(ctrl.de_weight_mask_list[idx].add_mask_array_flat, dtype=np.float32).reshape(-1)
    corrected = (add != 0) if ctrl.de_weight_mask_list[idx].just_update > 0 else np.zeros(add.shape, bool)
    step = TrainOneStepCell(net, nn.SGD(net.trainable_params(), lr))
    step.link_suppress_ctrl(ctrl)
    step.set_train()
    step(Tensor(grad.reshape(weights.shape).astype(np.float32)), Tensor(np.float32(0)))
    landed = net.suplayer.asnumpy().reshape(-1).copy()
    mul = ctrl.grads_mask_list[idx].mul_mask_array_flat
    ms.set_context(mode=ms.PYNATIVE_MODE)
    terms = np.stack([np.abs(weights.reshape(-1)), np.abs(lr * add * corrected), np.abs(lr * grad.reshape(-1))])
    return ReferenceOutcome(np.asarray(mul) > 0, landed, corrected, terms.max(axis=0).astype(np.float32),
                            int(cell.sparse_pos_list[-1]), stops[0] if stops else None, float(ctrl.cur_sparse))


def reference_schedule(start_epoch, end_epoch, batch_num, mask_times, sparse_start, sparse_end, epochs):
    """Operating steps and target sparsity of the reference over a whole run (one 10x10 layer)."""
    MaskLayerDes, SuppressCtrl, _ = _quiet_import()
    rng = np.random.default_rng(0)
    net = linear_network(rng.normal(size=(10, 10)).astype(np.float32), first=False)
    with contextlib.redirect_stdout(io.StringIO()):
        ctrl = SuppressCtrl(net, [MaskLayerDes("suplayer", 1, False, False, -1)], end_epoch, batch_num, start_epoch,
                            mask_times, 0.05, sparse_end, sparse_start)
    ops = []
    for step in range(1, epochs * batch_num + 1):
        epoch = (step - 1) // batch_num + 1
        ctrl.update_status(epoch, step, (step - 1) % batch_num + 1)
        if ctrl.to_do_mask:
            with contextlib.redirect_stdout(io.StringIO()):
                ctrl.update_mask(net, step)
            ops.append((step, ctrl.cur_sparse, ctrl.grads_mask_list[1].sparse_pos_list[-1]))
    return ops
