"""Sparsity of MindSpore parameters, measured with ``supjax.reports``.

The reference's ``calc_actual_sparse_*`` count weights with ``|w| <= 1e-7``
(:func:`supjax.weight_sparsity`); ``calc_theoretical_sparse_for_conv`` counts zeros in the
keep-masks (:func:`supjax.mask_sparsity`).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from mindspore import nn

from supjax import mask_sparsity, weight_sparsity

from compat_mindspore._convert import read_parameter

__all__ = ["CONV1_NAMES", "CONV2_NAMES", "combined_sparsity", "find_conv_weights", "find_layer"]

#: Parameter names MindArmour takes as "conv1" and "conv2" (LeNet5, VGG16, ResNet50).
CONV1_NAMES = ("conv1.weight", "layers.0.weight")
CONV2_NAMES = ("conv2.weight", "layers.3.weight", "layer1.0.conv1.weight")


def _is_named(name: str, candidates: Sequence[str]) -> bool:
    """``name`` is a candidate, or ends with ``.<candidate>`` (a parent cell's prefix)."""
    return any(name == c or name.endswith("." + c) for c in candidates)


def find_layer(networks: nn.Cell, layer_name: str) -> np.ndarray | None:
    """Value of the first parameter whose name contains ``layer_name``, or ``None``.

    >>> from mindspore import nn
    >>> find_layer(nn.Dense(2, 3), "weight").shape
    (3, 2)
    """
    for param in networks.get_parameters(expand=True):
        if layer_name in param.name:
            return read_parameter(param)
    return None


def find_conv_weights(networks: nn.Cell) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The first parameter named like a first and like a second convolution (or ``None``).

    >>> from mindspore import nn
    >>> net = nn.SequentialCell([nn.Dense(2, 3)])
    >>> find_conv_weights(net)
    (None, None)
    """
    conv1 = conv2 = None
    for param in networks.get_parameters(expand=True):
        if conv1 is None and _is_named(param.name, CONV1_NAMES):
            conv1 = read_parameter(param)
        elif conv2 is None and _is_named(param.name, CONV2_NAMES):
            conv2 = read_parameter(param)
    return conv1, conv2


def combined_sparsity(
    first: np.ndarray | None, second: np.ndarray | None, masks: bool = False
) -> tuple[float, float, float]:
    """(sparsity of both together, of the first, of the second).

    A missing array counts as one dense element, as in the reference. ``masks=True`` reads
    the arrays as keep-masks (0 = suppressed) instead of weights.

    >>> import numpy as np
    >>> combined_sparsity(np.array([0.0, 1.0]), np.array([0.0, 0.0, 0.0, 1.0]))
    (0.6666666666666666, 0.5, 0.75)
    """
    measure = (lambda a: mask_sparsity(np.asarray(a) > 0)) if masks else weight_sparsity
    parts = [np.ones(1, np.float32) if a is None else a for a in (first, second)]
    sizes = [int(np.size(a)) for a in parts]
    values = [measure(a) for a in parts]
    both = (values[0] * sizes[0] + values[1] * sizes[1]) / (sizes[0] + sizes[1])
    return float(both), float(values[0]), float(values[1])
