"""Drive MindArmour 2.0.0's SuppressCtrl directly, as the test oracle for supjax's rules.

Imported only by the oracle tests (MindSpore environment).
"""

from __future__ import annotations

import contextlib
import io
from typing import NamedTuple

import numpy as np


def _quiet_import():
    with contextlib.redirect_stdout(io.StringIO()):
        import mindspore  # noqa: F401
        from mindarmour.privacy.sup_privacy import MaskLayerDes, SuppressCtrl
    return MaskLayerDes, SuppressCtrl


def one_layer_network(weights: np.ndarray, first: bool):
    """A Cell whose parameters are ``w`` (and a dummy ``a0`` before it unless ``first``)."""
    import mindspore as ms
    from mindspore import Parameter, Tensor, nn

    class Holder(nn.Cell):
        def __init__(self):
            super().__init__()
            if not first:
                self.a0 = Parameter(Tensor(np.ones(3, np.float32)), name="a0")
            self.suplayer = Parameter(Tensor(weights.astype(np.float32)), name="suplayer")

        def construct(self, x):
            return x

    ms.set_context(mode=ms.PYNATIVE_MODE)
    return Holder()


class ReferenceOutcome(NamedTuple):
    keep: np.ndarray  # bool, flattened
    landed: np.ndarray  # weights after one SGD step with zero gradient
    count: int  # recorded suppressed count
    stop: int


def reference_operation(
    weights: np.ndarray,
    keep: np.ndarray,
    recorded: int,
    sparsity: float,
    *,
    first: bool = False,
    is_lower_clip: bool = False,
    min_num: int = -1,
    upper_bound: float = 1.2,
    lr: float = 0.05,
) -> ReferenceOutcome:
    """One ``update_mask`` of the reference on one layer, from a given mask and recorded count."""
    MaskLayerDes, SuppressCtrl = _quiet_import()
    net = one_layer_network(weights, first)
    idx = 0 if first else 1
    des = MaskLayerDes("suplayer", idx, False, is_lower_clip, min_num, upper_bound)
    with contextlib.redirect_stdout(io.StringIO()):
        ctrl = SuppressCtrl(net, [des], end_epoch=10, batch_num=10, start_epoch=1, mask_times=10,
                            lr=lr, sparse_end=0.999, sparse_start=0.0)
    cell = ctrl.grads_mask_list[idx]
    cell.mul_mask_array_flat[:] = keep.reshape(-1).astype(np.float32)
    cell.sparse_pos_list.append(int(recorded))
    with contextlib.redirect_stdout(io.StringIO()):
        ctrl.update_mask(net, cur_step=1, target_sparse=sparsity)
    mul = ctrl.grads_mask_list[idx].mul_mask_array_flat
    add = np.asarray(ctrl.de_weight_mask_list[idx].add_mask_array_flat, dtype=np.float32)
    updated = ctrl.de_weight_mask_list[idx].just_update > 0
    flat = weights.reshape(-1).astype(np.float32)
    landed = flat - np.float32(lr) * add if updated else flat.copy()
    n = flat.size
    floor = 1.0 - min(min_num, n) / n
    stop = int(n * min(floor, ctrl.cur_sparse))
    return ReferenceOutcome(np.asarray(mul) > 0, landed, int(cell.sparse_pos_list[-1]), stop)


def reference_schedule(start_epoch, end_epoch, batch_num, mask_times, sparse_start, sparse_end, epochs):
    """Operating steps and target sparsity of the reference over a whole run (one 10x10 layer)."""
    MaskLayerDes, SuppressCtrl = _quiet_import()
    rng = np.random.default_rng(0)
    net = one_layer_network(rng.normal(size=(10, 10)).astype(np.float32), first=False)
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
