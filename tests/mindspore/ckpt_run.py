"""Child process of ``test_ms_checkpoint``: LeNet5 under compat, checkpointed, killed, resumed.

``python -m tests.mindspore.ckpt_run <variant> full <out.npz>``: train all epochs, save the result.
``python -m tests.mindspore.ckpt_run <variant> train <ckpt_dir>``: train with a ``ModelCheckpoint``
after every epoch, printing ``SAVED <epoch>`` once the epoch's checkpoint is written (the test
kills the process after one of them).
``python -m tests.mindspore.ckpt_run <variant> resume <ckpt> <epoch> <out.npz>``: a new process
builds the network and a controller with the same arguments, loads the checkpoint into the
network and the optimizer, and trains on from ``initial_epoch=<epoch>``.

The result is every parameter of the network (its weights and the controller's state) and the
step, sparsity and counts of each suppress operation.
"""

from __future__ import annotations

import sys

import mindspore as ms
import numpy as np
from mindspore import nn
from mindspore.train import Callback, CheckpointConfig, ModelCheckpoint

from compat_mindspore import MaskLayerDes, SuppressMasker, SuppressModel, SuppressPrivacyFactory
from compat_mindspore._lenet import LeNet5, init_lenet, lenet_data, make_dataset, weights_first

EPOCHS, BATCH_NUM, BATCH_SIZE = 4, 10, 16
#: variant -> (MindSpore mode, optimizer, reference_parity)
VARIANTS = {
    "sgd-parity-pynative": (ms.PYNATIVE_MODE, "sgd", True),
    "momentum-graph": (ms.GRAPH_MODE, "momentum", False),
}


def build(variant: str):
    """Network, controller (noise on conv2 and fc2), optimizer and linked model, always the same."""
    mode, optimizer, parity = VARIANTS[variant]
    ms.set_context(mode=mode)
    net = LeNet5()
    init_lenet(net, seed=0, conv2_scale=20.0)  # many conv2 weights in (0.5, 1.2]: they get noise
    layers = [
        MaskLayerDes("conv1.weight", 0, False, True, 10),
        MaskLayerDes("conv2.weight", 1, True, True, 50),
        MaskLayerDes("fc1.weight", 2, False, False, -1),
        MaskLayerDes("fc2.weight", 3, True, False, -1),
        MaskLayerDes("fc3.weight", 4, False, False, 50),
    ]
    # interval (4 - 1 + 1) * 10 / 4 = 10: operations after steps 10, 20, 30 and the last one at 38,
    # so the correction decided after step 20 is pending when epoch 2's checkpoint is written
    ctrl = SuppressPrivacyFactory.create(net, layers, end_epoch=EPOCHS, batch_num=BATCH_NUM, start_epoch=1,
                                         mask_times=4, lr=0.05, sparse_end=0.9, reference_parity=parity, seed=3)
    params = weights_first(net)
    opt = nn.SGD(params, 0.05) if optimizer == "sgd" else nn.Momentum(params, 0.01, 0.9)
    model = SuppressModel(net, nn.SoftmaxCrossEntropyWithLogits(sparse=True, reduction="mean"), opt)
    model.link_suppress_ctrl(ctrl)
    return net, opt, ctrl, model


class Record(Callback):
    """Records each suppress operation; prints ``SAVED <epoch>`` at each epoch's end (after the checkpoint)."""

    def __init__(self, ctrl, announce: bool):
        super().__init__()
        self.ctrl, self.announce, self.operations = ctrl, announce, []

    def on_train_step_end(self, run_context):
        if self.ctrl.to_do_mask:
            args = run_context.original_args()
            self.operations.append([args.cur_epoch_num, self.ctrl.mask_prev_step, self.ctrl.cur_sparse,
                                    *self.ctrl.suppressed_counts])

    def on_train_epoch_end(self, run_context):
        if self.announce:
            print(f"SAVED {run_context.original_args().cur_epoch_num}", flush=True)


def save(path: str, net, record: Record) -> None:
    arrays = {f"param:{p.name}": p.asnumpy().copy() for p in net.get_parameters()}
    np.savez(path, operations=np.array(record.operations, dtype=np.float64), **arrays)


def main(argv: list[str]) -> None:
    variant, what = argv[0], argv[1]
    net, opt, ctrl, model = build(variant)
    data = make_dataset(*lenet_data(0, BATCH_SIZE, BATCH_NUM), BATCH_SIZE)
    masker = SuppressMasker(model, ctrl)
    if what == "full":
        record = Record(ctrl, announce=False)
        model.train(EPOCHS, data, callbacks=[masker, record], dataset_sink_mode=False)
        save(argv[2], net, record)
    elif what == "train":
        config = CheckpointConfig(save_checkpoint_steps=BATCH_NUM, keep_checkpoint_max=EPOCHS)
        checkpoint = ModelCheckpoint(prefix="lenet", directory=argv[2], config=config)
        # the masker first: a checkpoint after step t holds the operation decided after step t
        model.train(EPOCHS, data, callbacks=[masker, checkpoint, Record(ctrl, announce=True)],
                    dataset_sink_mode=False)
        print("FINISHED", flush=True)
    elif what == "resume":
        checkpoint, epoch = argv[2], int(argv[3])
        params = ms.load_checkpoint(checkpoint)
        not_loaded, _ = ms.load_param_into_net(net, params)
        ms.load_param_into_net(opt, params)
        assert not not_loaded, not_loaded
        record = Record(ctrl, announce=False)
        model.train(EPOCHS, data, callbacks=[masker, record], dataset_sink_mode=False, initial_epoch=epoch)
        save(argv[4], net, record)
    else:
        raise ValueError(f"unknown command {what!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
