"""The reporting methods of ``SuppressCtrl`` (sparsity measures and logged lines), as a mixin.

Each result is also logged at INFO through :mod:`compat_mindspore._log` (MindArmour's
``LogUtil`` logger when mindarmour is importable), as MindArmour's controller logs it; the
numbers come from :mod:`compat_mindspore._reports` (supjax's ``weight_sparsity`` and
``mask_sparsity``).
"""

from __future__ import annotations

from logging import INFO
from typing import Sequence

import numpy as np
from mindspore import Parameter, nn

from supjax import weight_sparsity

from compat_mindspore import _reports
from compat_mindspore._checks import check_instance
from compat_mindspore._log import log

__all__ = ["ReportsMixin", "log_operation"]


def log_operation(
    params: Sequence[Parameter],
    weights: Sequence[np.ndarray],
    stops: np.ndarray,
    counts: np.ndarray,
    thresholds: np.ndarray,
    cur_step: int,
    sparsity: float,
) -> None:
    """Log one line per suppressed layer after an operation (INFO), then a summary line.

    Each line has what MindArmour logs per layer: its size, the target sparsity of the
    layer (``stop / size``), the threshold, and max / min / mean of ``|w|`` and the mean of ``w``
    before the operation; and the suppressed count recorded after it.

    >>> import numpy as np
    >>> from mindspore import Parameter, Tensor
    >>> p = Parameter(Tensor(np.ones(4, np.float32)), name="w")
    >>> log_operation([p], [np.ones(4, np.float32)], np.array([2]), np.array([2]), np.array([1.0]), 3, 0.5)
    """
    for i, param in enumerate(params):
        w = np.asarray(weights[i], np.float64).reshape(-1)
        a = np.abs(w)
        log(
            INFO,
            "%s: %d weights, layer sparsity %s, threshold %s, |w| max %s min %s mean %s, w mean %s; suppressed %d",
            param.name, w.size, int(stops[i]) / w.size, float(thresholds[i]), a.max(initial=0.0),
            a.min(initial=0.0), a.mean() if w.size else 0.0, w.mean() if w.size else 0.0, int(counts[i]),
        )
    log(INFO, "suppress operation at step %s: sparsity %s, suppressed %s", cur_step, sparsity, counts.tolist())


class ReportsMixin:
    """``calc_*_sparse_*`` and ``print_paras`` for :class:`~compat_mindspore.ctrl.SuppressCtrl`.

    >>> from mindspore import nn
    >>> from compat_mindspore import MaskLayerDes, SuppressPrivacyFactory
    >>> net = nn.SequentialCell([nn.Dense(10, 10)])
    >>> ctrl = SuppressPrivacyFactory.create(net, [MaskLayerDes("0.weight", 0, False, False, -1)], seed=0)
    >>> ctrl.update_mask(net, 1, target_sparse=0.3)  # the masks now; the weights at the next step
    >>> ctrl.calc_theoretical_sparse_for_conv()[1], ctrl.calc_actual_sparse_for_layer(net, "0.weight")
    (0.3, 0.0)
    """

    _layers: tuple
    _buffers: object
    mask_start_epoch: int
    mask_end_epoch: int
    batch_num: int
    mask_step_interval: float
    lr: float
    sparse_end: float
    sparse_start: float
    reference_parity: bool
    seed: int

    def calc_theoretical_sparse_for_conv(self) -> tuple[float, float, float]:
        """Mask sparsity of the layers at ``grad_idx`` 0 and 1: (both, first, second)."""
        masks = {m.description.grad_idx: keep for m, keep in zip(self._layers, self._buffers.keeps)}
        out = _reports.combined_sparsity(masks.get(0), masks.get(1), masks=True)
        log(INFO, "conv mask sparsity %s (first %s, second %s)", *out)
        return out

    def calc_actual_sparse_for_conv(self, networks: nn.Cell) -> tuple[float, float, float]:
        """Weight sparsity (``|w| <= 1e-7``) of the network's conv1 and conv2: (both, conv1, conv2).

        Args:
            networks (Cell): the training network.
        """
        check_instance("networks", networks, nn.Cell)
        out = _reports.combined_sparsity(*_reports.find_conv_weights(networks))
        log(INFO, "conv weight sparsity %s (conv1 %s, conv2 %s)", *out)
        return out

    def calc_actual_sparse_for_fc1(self, networks: nn.Cell) -> float:
        """Weight sparsity of the first parameter named ``fc1.weight``.

        Args:
            networks (Cell): the training network.
        """
        return self.calc_actual_sparse_for_layer(networks, "fc1.weight")

    def calc_actual_sparse_for_layer(self, networks: nn.Cell, layer_name: str) -> float:
        """Weight sparsity (``|w| <= 1e-7``) of the first parameter whose name contains ``layer_name``.

        Returns 0.0 when no parameter matches.

        Args:
            networks (Cell): the training network.
            layer_name (str): the name of the target layer.
        """
        check_instance("networks", networks, nn.Cell)
        check_instance("layer_name", layer_name, str)
        value = _reports.find_layer(networks, layer_name)
        if value is None:
            log(INFO, "no parameter named like %s to measure", layer_name)
            return 0.0
        out = weight_sparsity(value)
        log(INFO, "%s weight sparsity %s", layer_name, out)
        return out

    def print_paras(self) -> None:
        """Log the schedule's parameters at INFO, as MindArmour does (shown after ``LogUtil.set_level('INFO')``)."""
        log(
            INFO,
            "paras: start_epoch:%s, end_epoch:%s, batch_num:%s, interval:%s, lr:%s, sparse_end:%s, "
            "sparse_start:%s, reference_parity:%s, seed:%s",
            self.mask_start_epoch, self.mask_end_epoch, self.batch_num, self.mask_step_interval,
            self.lr, self.sparse_end, self.sparse_start, self.reference_parity, self.seed,
        )
        log(INFO, "lr must be the learning_rate of the optimizer, end_epoch the epoch of Model.train")
