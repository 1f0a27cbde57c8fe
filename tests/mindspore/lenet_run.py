"""Train the tutorial's LeNet5 under MindArmour or compat_mindspore and record what happens."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import time
from typing import Any

import mindspore as ms
import numpy as np
from mindspore import nn

from compat_mindspore._lenet import LeNet5, init_lenet, lenet_data, lenet_mask_layers, make_dataset, weights_first

EPOCHS, BATCH_NUM, BATCH_SIZE = 4, 10, 16
LAYERS = ("conv1.weight", "conv2.weight", "fc1.weight", "fc2.weight", "fc3.weight")


@dataclasses.dataclass
class Run:
    """Final weights, one record per suppress operation, and the training time."""

    weights: dict[str, np.ndarray]
    operations: list[dict[str, Any]]
    seconds: float
    ctrl: Any


def short(name: str) -> str:
    return name[len("networks."):] if name.startswith("networks.") else name


def counts_of(ctrl: Any, compat: bool) -> list[int]:
    if compat:
        return list(ctrl.suppressed_counts)
    return [int(ctrl.grads_mask_list[i].sparse_pos_list[-1]) for i in range(len(LAYERS))]


def train_lenet(api: Any, mode: int, compat: bool, conv2_scale: float = 50.0, conv2_upper_bound: float = 0.35,
                parity: bool = True) -> Run:
    """Train 4 epochs of 10 steps; operations from epoch 2, mask_times 3, nn.SGD(lr=0.05)."""
    ms.set_context(mode=mode)
    net = LeNet5()
    init_lenet(net, seed=0, conv2_scale=conv2_scale)
    images, labels = lenet_data(0, BATCH_SIZE, BATCH_NUM)
    extra = {"reference_parity": parity, "seed": 0} if compat else {}
    ctrl = api.SuppressPrivacyFactory().create(
        networks=net, mask_layers=lenet_mask_layers(api.MaskLayerDes, conv2_upper_bound), policy="local_train",
        end_epoch=EPOCHS, batch_num=BATCH_NUM, start_epoch=2, mask_times=3, lr=0.05, sparse_end=0.90,
        sparse_start=0.0, **extra,
    )
    model = api.SuppressModel(network=net, loss_fn=nn.SoftmaxCrossEntropyWithLogits(sparse=True, reduction="mean"),
                              optimizer=nn.SGD(weights_first(net), 0.05))
    model.link_suppress_ctrl(ctrl)
    weight_params = [p for p in net.get_parameters() if short(p.name) in LAYERS]
    operations: list[dict[str, Any]] = []
    before: dict[str, Any] = {}

    class Before(ms.train.Callback):
        def on_train_step_end(self, run_context):
            before["weights"] = [p.asnumpy().copy() for p in weight_params]

    class After(ms.train.Callback):
        def on_train_step_end(self, run_context):
            if ctrl.to_do_mask:
                operations.append({
                    "step": run_context.original_args().cur_step_num,
                    "sparsity": ctrl.cur_sparse,
                    "counts": counts_of(ctrl, compat),
                    "weights_before": before["weights"],
                })

    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        model.train(EPOCHS, make_dataset(images, labels, BATCH_SIZE),
                    callbacks=[Before(), api.SuppressMasker(model, ctrl), After()], dataset_sink_mode=False)
    seconds = time.perf_counter() - start
    weights = {short(p.name): p.asnumpy().copy() for p in net.get_parameters()}
    ms.set_context(mode=ms.PYNATIVE_MODE)
    return Run(weights, operations, seconds, ctrl)
