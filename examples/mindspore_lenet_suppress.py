"""MindArmour's suppress-privacy tutorial on MindSpore 2.10, with compat_mindspore.

Trains the tutorial's LeNet5 on Fashion-MNIST (Debian's ``dataset-fashion-mnist``; without
it, scikit-learn's 8x8 digits), 28x28 images padded to 32x32, with the tutorial's five
``MaskLayerDes``. Unlike MindArmour 2.0.0 it runs in GRAPH_MODE and with any optimizer
(``--optimizer momentum`` or ``adam``: suppressed weights stay exactly 0). At the end it
prints the test accuracy and each layer's sparsity.

Run it (a few minutes on 2 CPU cores with the defaults):

    python examples/mindspore_lenet_suppress.py [--mode graph] [--optimizer sgd] [--epochs 6]
"""

from __future__ import annotations

import argparse
import time

import mindspore as ms
import mindspore.dataset as ds
import numpy as np
from mindspore import nn

from compat_mindspore import MaskLayerDes, SuppressMasker, SuppressModel, SuppressPrivacyFactory
from compat_mindspore._lenet import LeNet5, weights_first
from supjax_app.data import load_digits, load_fashion_mnist

LR = 0.05


def load(train_samples: int, test_samples: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """NCHW float32 images padded to 32x32, int32 labels."""
    try:
        data = load_fashion_mnist()
    except FileNotFoundError:
        data = load_digits()

    def nchw(x: np.ndarray) -> np.ndarray:
        x = np.transpose(x, (0, 3, 1, 2))
        pad_h, pad_w = 32 - x.shape[2], 32 - x.shape[3]
        return np.pad(x, ((0, 0), (0, 0), (pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2)))

    return (nchw(data.x_train[:train_samples]), data.y_train[:train_samples],
            nchw(data.x_test[:test_samples]), data.y_test[:test_samples])


def dataset(x: np.ndarray, y: np.ndarray, batch_size: int, shuffle: bool) -> ds.Dataset:
    return ds.NumpySlicesDataset({"image": x, "label": y}, shuffle=shuffle).batch(batch_size, drop_remainder=True)


def make_optimizer(name: str, params: list) -> nn.Optimizer:
    if name == "momentum":
        return nn.Momentum(params, LR, 0.9)
    if name == "adam":
        return nn.Adam(params, 0.001)
    return nn.SGD(params, LR)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["graph", "pynative"], default="graph")
    parser.add_argument("--optimizer", choices=["sgd", "momentum", "adam"], default="sgd")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--train-samples", type=int, default=2560)
    parser.add_argument("--test-samples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    ms.set_context(mode=ms.GRAPH_MODE if args.mode == "graph" else ms.PYNATIVE_MODE)
    ms.set_seed(args.seed)
    x_train, y_train, x_test, y_test = load(args.train_samples, args.test_samples)
    batch_num = len(x_train) // args.batch_size
    start_epoch = 2
    mask_times = max(1, (args.epochs - start_epoch + 1) * batch_num // 15)  # an operation every ~15 steps

    network = LeNet5()
    mask_layers = [
        MaskLayerDes("conv1.weight", 0, False, True, 10),
        MaskLayerDes("conv2.weight", 1, False, True, 50),
        MaskLayerDes("fc1.weight", 2, True, False, -1),
        MaskLayerDes("fc2.weight", 3, True, False, -1),
        MaskLayerDes("fc3.weight", 4, True, False, 50),
    ]
    ctrl = SuppressPrivacyFactory().create(
        networks=network, mask_layers=mask_layers, policy="local_train", end_epoch=args.epochs,
        batch_num=batch_num, start_epoch=start_epoch, mask_times=mask_times, lr=LR, sparse_end=0.90,
        sparse_start=0.0, seed=args.seed,
    )
    loss = nn.SoftmaxCrossEntropyWithLogits(sparse=True, reduction="mean")
    # Weights first, so that the grad_idx 0..4 above are their positions (checked at link time).
    model = SuppressModel(network, loss, make_optimizer(args.optimizer, weights_first(network)),
                          metrics={"Accuracy": nn.Accuracy()})
    model.link_suppress_ctrl(ctrl)
    masker = SuppressMasker(model, ctrl)

    start = time.perf_counter()
    model.train(args.epochs, dataset(x_train, y_train, args.batch_size, True),
                callbacks=[masker, ms.train.LossMonitor(batch_num)], dataset_sink_mode=False)
    seconds = time.perf_counter() - start
    accuracy = model.eval(dataset(x_test, y_test, args.batch_size, False), dataset_sink_mode=False)["Accuracy"]

    print(f"{args.mode} mode, {args.optimizer}, {ctrl.correction_form} form: trained in {seconds:.1f} s, "
          f"{ctrl.operations} suppress operations, test accuracy {accuracy:.4f}")
    for layer, keep in zip(ctrl.layers, ctrl.keep_masks):
        name = layer.parameter.name
        weights = layer.parameter.asnumpy()
        print(f"  {name:14s} sparsity {ctrl.calc_actual_sparse_for_layer(network, name):.4f}  "
              f"suppressed weights all 0: {bool((weights[~keep] == 0).all())}")


if __name__ == "__main__":
    main()
