"""A LeNet5, its tutorial suppression list and MNIST-shaped random data (tests and benchmarks).

The network and the mask list are the ones of MindArmour's suppress privacy tutorial:
conv1 1->6 5x5, conv2 6->16 5x5, fc1 400->120, fc2 120->84, fc3 84->10 on 32x32 inputs.
The optimizer's parameter list puts the five weights first (``weights_first``) so that the
tutorial's ``grad_idx`` 0..4 point at them.
"""

from __future__ import annotations

from typing import Any, Callable

import mindspore.dataset as ds
import numpy as np
from mindspore import Parameter, Tensor, nn

__all__ = [
    "LeNet5",
    "init_lenet",
    "lenet_data",
    "lenet_mask_layers",
    "make_dataset",
    "weights_first",
]


class LeNet5(nn.Cell):
    """LeNet5 for 1x32x32 inputs and 10 classes.

    >>> [p.name for p in LeNet5().get_parameters()][:3]
    ['conv1.weight', 'conv2.weight', 'fc1.weight']
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5, pad_mode="valid")
        self.conv2 = nn.Conv2d(6, 16, 5, pad_mode="valid")
        self.fc1 = nn.Dense(16 * 5 * 5, 120)
        self.fc2 = nn.Dense(120, 84)
        self.fc3 = nn.Dense(84, 10)
        self.relu = nn.ReLU()
        self.pool = nn.MaxPool2d(kernel_size=2, stride=2)
        self.flatten = nn.Flatten()

    def construct(self, x):
        x = self.pool(self.relu(self.conv1(x)))
        x = self.pool(self.relu(self.conv2(x)))
        x = self.flatten(x)
        x = self.relu(self.fc1(x))
        x = self.relu(self.fc2(x))
        return self.fc3(x)


def init_lenet(net: nn.Cell, seed: int = 0, conv2_scale: float = 1.0) -> dict[str, np.ndarray]:
    """Set every parameter to ``N(0, 0.1)`` draws (conv2's weights times ``conv2_scale``).

    Returns the values by parameter name, so a second network can get the same ones.

    >>> values = init_lenet(LeNet5(), seed=1)
    >>> round(float(values["conv1.weight"].std()), 1)
    0.1
    """
    rng = np.random.default_rng(seed)
    values = {}
    for param in net.get_parameters():
        value = rng.normal(0.0, 0.1, tuple(param.shape)).astype(np.float32)
        if param.name.endswith("conv2.weight"):
            value = value * np.float32(conv2_scale)
        values[param.name] = value
        param.set_data(Tensor(value))
    return values


def weights_first(net: nn.Cell) -> list[Parameter]:
    """Trainable parameters with the weights first, so ``grad_idx`` 0..4 are conv1..fc3.

    >>> [p.name for p in weights_first(LeNet5())][4:6]
    ['fc3.weight', 'fc1.bias']
    """
    params = net.trainable_params()
    return [p for p in params if p.name.endswith("weight")] + [p for p in params if not p.name.endswith("weight")]


def lenet_mask_layers(mask_layer_des: Callable[..., Any], conv2_upper_bound: float = 1.20) -> list:
    """The tutorial's five ``MaskLayerDes`` (noise off), built with the given class.

    >>> from compat_mindspore import MaskLayerDes
    >>> [d.layer_name for d in lenet_mask_layers(MaskLayerDes)]
    ['conv1.weight', 'conv2.weight', 'fc1.weight', 'fc2.weight', 'fc3.weight']
    """
    return [
        mask_layer_des("conv1.weight", 0, False, True, 10),
        mask_layer_des("conv2.weight", 1, False, True, 50, upper_bound=conv2_upper_bound),
        mask_layer_des("fc1.weight", 2, False, False, -1),
        mask_layer_des("fc2.weight", 3, False, False, -1),
        mask_layer_des("fc3.weight", 4, False, False, 50),
    ]


def lenet_data(seed: int = 0, batch_size: int = 16, batch_num: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """MNIST-shaped random images in [0, 1) and labels 0..9.

    >>> x, y = lenet_data(batch_size=2, batch_num=3)
    >>> x.shape, y.shape
    ((6, 1, 32, 32), (6,))
    """
    rng = np.random.default_rng(seed)
    n = batch_size * batch_num
    images = rng.random((n, 1, 32, 32), dtype=np.float32)
    labels = rng.integers(0, 10, n).astype(np.int32)
    return images, labels


def make_dataset(images: np.ndarray, labels: np.ndarray, batch_size: int) -> ds.Dataset:
    """An unshuffled ``NumpySlicesDataset`` of (image, label) batches.

    >>> x, y = lenet_data(batch_size=2, batch_num=3)
    >>> make_dataset(x, y, 2).get_dataset_size()
    3
    """
    data = ds.NumpySlicesDataset({"image": images, "label": labels}, shuffle=False)
    return data.batch(batch_size)
