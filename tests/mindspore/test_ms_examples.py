"""The two ``Examples`` blocks of the API documentation, verbatim but for the import lines.

Each block runs as documented, then trains with ``SuppressMasker`` on generated data in
PYNATIVE_MODE and GRAPH_MODE; the suppressed layer must end at the scheduled sparsity
with exactly-zero suppressed weights. Changed lines carry a ``# changed`` comment: the
imports (``mindarmour.privacy.sup_privacy`` -> ``compat_mindspore.sup_privacy``), the
``ops`` import that the first documented block forgets, and its ``device_target="GPU"``
(the available device here).
"""

from __future__ import annotations

import doctest
import importlib.util
import itertools
import sys
from pathlib import Path

import mindspore as ms
import mindspore.dataset as ds
import numpy as np
import pytest

from supjax.engine import stop_count

pytestmark = pytest.mark.mindspore

_COUNTER = itertools.count()

# From "class mindarmour.privacy.sup_privacy.SuppressMasker", Examples.
MASKER_EXAMPLE = """
>>> import mindspore.nn as nn
>>> import mindspore as ms
>>> from mindspore import set_context, ops  # changed: the documented block uses ops without importing it
>>> from mindspore.nn import Accuracy
>>> from compat_mindspore.sup_privacy import SuppressModel  # changed import
>>> from compat_mindspore.sup_privacy import SuppressMasker  # changed import
>>> from compat_mindspore.sup_privacy import SuppressPrivacyFactory  # changed import
>>> from compat_mindspore.sup_privacy import MaskLayerDes  # changed import
>>> class Net(nn.Cell):
...     def __init__(self):
...         super(Net, self).__init__()
...         self._softmax = ops.Softmax()
...         self._Dense = nn.Dense(10,10)
...         self._squeeze = ops.Squeeze(1)
...     def construct(self, inputs):
...         out = self._softmax(inputs)
...         out = self._Dense(out)
...         return self._squeeze(out)
>>> set_context(mode=ms.PYNATIVE_MODE, device_target=ms.get_context("device_target"))  # changed: documented "GPU"; the available device here
>>> network = Net()
>>> masklayers = []
>>> masklayers.append(MaskLayerDes("_Dense.weight", 0, False, True, 10))
>>> suppress_ctrl_instance = SuppressPrivacyFactory().create(networks=network,
...                                                          mask_layers=masklayers,
...                                                          policy="local_train",
...                                                          end_epoch=10,
...                                                          batch_num=1,
...                                                          start_epoch=3,
...                                                          mask_times=10,
...                                                          lr=0.05,
...                                                          sparse_end=0.95,
...                                                          sparse_start=0.0)
>>> net_loss = nn.SoftmaxCrossEntropyWithLogits(sparse=True, reduction="mean")
>>> net_opt = nn.SGD(network.trainable_params(), 0.05)
>>> model_instance = SuppressModel(network=network,
...                                loss_fn=net_loss,
...                                optimizer=net_opt,
...                                metrics={"Accuracy": Accuracy()})
>>> model_instance.link_suppress_ctrl(suppress_ctrl_instance)
>>> masker_instance = SuppressMasker(model_instance, suppress_ctrl_instance)
"""

# From "static create(...)" of SuppressPrivacyFactory, Examples.
FACTORY_EXAMPLE = """
>>> import mindspore.nn as nn
>>> import mindspore as ms
>>> from mindspore import set_context, ops
>>> from mindspore.nn import Accuracy
>>> from compat_mindspore.sup_privacy import SuppressPrivacyFactory  # changed import
>>> from compat_mindspore.sup_privacy import MaskLayerDes  # changed import
>>> from compat_mindspore.sup_privacy import SuppressModel  # changed import
>>> class Net(nn.Cell):
...     def __init__(self):
...         super(Net, self).__init__()
...         self._softmax = ops.Softmax()
...         self._Dense = nn.Dense(10,10)
...         self._squeeze = ops.Squeeze(1)
...     def construct(self, inputs):
...         out = self._softmax(inputs)
...         out = self._Dense(out)
...         return self._squeeze(out)
>>> set_context(mode=ms.PYNATIVE_MODE, device_target="CPU")
>>> network = Net()
>>> masklayers = []
>>> masklayers.append(MaskLayerDes("_Dense.weight", 0, False, True, 10))
>>> suppress_ctrl_instance = SuppressPrivacyFactory().create(networks=network,
...                                                          mask_layers=masklayers,
...                                                          policy="local_train",
...                                                          end_epoch=10,
...                                                          batch_num=1,
...                                                          start_epoch=3,
...                                                          mask_times=10,
...                                                          lr=0.05,
...                                                          sparse_end=0.95,
...                                                          sparse_start=0.0)
>>> net_loss = nn.SoftmaxCrossEntropyWithLogits(sparse=True, reduction="mean")
>>> net_opt = nn.SGD(network.trainable_params(), 0.05)
>>> model_instance = SuppressModel(network=network,
...                                loss_fn=net_loss,
...                                optimizer=net_opt,
...                                metrics={"Accuracy": Accuracy()})
>>> model_instance.link_suppress_ctrl(suppress_ctrl_instance)"""


def run_block(text: str, directory: Path) -> dict:
    """Execute every example of a documentation block, in order, as one module.

    The block is written to a file and imported, so that GRAPH_MODE can read the source of
    the ``Net`` it defines.
    """
    source = "".join(example.source for example in doctest.DocTestParser().get_examples(text))
    name = f"doc_example_{next(_COUNTER)}"
    path = directory / f"{name}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return vars(module)


def generated_data(samples: int = 8) -> ds.Dataset:
    """One batch per epoch (the examples use batch_num=1) of (N, 1, 10) inputs and labels 0..9."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(samples, 1, 10)).astype(np.float32)
    y = rng.integers(0, 10, samples).astype(np.int32)
    return ds.NumpySlicesDataset({"x": x, "y": y}, shuffle=False).batch(samples)


def train_and_check(namespace: dict, mode: int) -> None:
    from compat_mindspore import SuppressMasker

    network = namespace["network"]
    model = namespace["model_instance"]
    ctrl = namespace["suppress_ctrl_instance"]
    masker = namespace.get("masker_instance") or SuppressMasker(model, ctrl)
    ms.set_context(mode=mode)
    model.train(10, generated_data(), callbacks=[masker], dataset_sink_mode=False)
    weights = network._Dense.weight.asnumpy()
    keep = ctrl.keep_masks[0]
    expected = stop_count(weights.size, 10, ctrl.cur_sparse)
    assert ctrl.operations == 8  # interval 0.8: one operation after every step of epochs 3..10
    assert expected == 90  # min_num=10 caps the 0.95 target
    assert ctrl.calc_actual_sparse_for_layer(network, "_Dense.weight") == expected / weights.size
    assert int((~keep).sum()) == expected
    assert (weights[~keep] == 0.0).all()


@pytest.mark.parametrize("block", ["masker", "factory"])
def test_documented_example_trains(block, ms_mode, tmp_path):
    namespace = run_block(MASKER_EXAMPLE if block == "masker" else FACTORY_EXAMPLE, tmp_path)
    assert ms.get_context("mode") == ms.PYNATIVE_MODE  # the block set it
    train_and_check(namespace, ms_mode)


def test_masker_example_builds_the_documented_objects(tmp_path):
    from compat_mindspore import SuppressCtrl, SuppressMasker, SuppressModel

    namespace = run_block(MASKER_EXAMPLE, tmp_path)
    assert isinstance(namespace["suppress_ctrl_instance"], SuppressCtrl)
    assert isinstance(namespace["model_instance"], SuppressModel)
    assert isinstance(namespace["masker_instance"], SuppressMasker)
    assert namespace["suppress_ctrl_instance"].correction_form == "gradient"
