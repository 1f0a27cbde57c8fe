"""Optimizers other than plain SGD, the two correction forms, and the grad_idx check."""

from __future__ import annotations

import mindspore as ms
import mindspore.dataset as ds
import numpy as np
import pytest
from mindspore import Tensor, nn

from compat_mindspore import MaskLayerDes, SuppressMasker, SuppressModel, SuppressPrivacyFactory
from compat_mindspore._lenet import LeNet5, init_lenet, lenet_data, lenet_mask_layers, make_dataset, weights_first

pytestmark = pytest.mark.mindspore

OPTIMIZERS = {
    "momentum": lambda params: nn.Momentum(params, 0.05, 0.9),
    "adam": lambda params: nn.Adam(params, 0.01),
    "sgd_momentum": lambda params: nn.SGD(params, 0.05, momentum=0.9),
    "sgd": lambda params: nn.SGD(params, 0.05),
}


class MLP(nn.Cell):
    def __init__(self):
        super().__init__()
        self.fc = nn.Dense(20, 32)
        self.out = nn.Dense(32, 4)
        self.relu = nn.ReLU()

    def construct(self, x):
        return self.out(self.relu(self.fc(x)))


def mlp(seed=0):
    net = MLP()
    rng = np.random.default_rng(seed)
    for p in net.get_parameters():
        p.set_data(Tensor(rng.normal(0, 0.3, tuple(p.shape)).astype(np.float32)))
    return net


def mlp_layers():
    return [MaskLayerDes("fc.weight", 0, True, True, 20), MaskLayerDes("out.weight", 2, False, False, -1)]


def mlp_data(batches=6, batch=8):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(batches * batch, 20)).astype(np.float32)
    y = rng.integers(0, 4, batches * batch).astype(np.int32)
    return ds.NumpySlicesDataset({"x": x, "y": y}, shuffle=False).batch(batch)


LOSS = nn.SoftmaxCrossEntropyWithLogits(sparse=True, reduction="mean")


class ZeroChecker(ms.train.Callback):
    """Before the masker runs: every weight suppressed by an earlier operation is exactly 0."""

    def __init__(self, ctrl):
        super().__init__()
        self.ctrl = ctrl
        self.checked = 0

    def on_train_step_end(self, run_context):
        for layer, keep in zip(self.ctrl.layers, self.ctrl.keep_masks):
            weights = layer.parameter.asnumpy()
            assert (weights[~keep] == 0.0).all(), f"{layer.parameter.name} at step {run_context.original_args().cur_step_num}"
            self.checked += int((~keep).sum())


@pytest.mark.parametrize("optimizer", ["momentum", "adam", "sgd_momentum", "sgd"])
def test_suppressed_weights_are_exactly_zero_after_every_step(optimizer, ms_mode):
    net = mlp()
    initial = net.fc.weight.asnumpy().copy()
    ctrl = SuppressPrivacyFactory.create(net, mlp_layers(), end_epoch=4, batch_num=6, start_epoch=2,
                                         mask_times=6, lr=0.05, sparse_end=0.8, seed=0)
    model = SuppressModel(net, LOSS, OPTIMIZERS[optimizer](net.trainable_params()))
    model.link_suppress_ctrl(ctrl)
    assert ctrl.correction_form == ("gradient" if optimizer == "sgd" else "update")
    checker = ZeroChecker(ctrl)
    model.train(5, mlp_data(), callbacks=[checker, SuppressMasker(model, ctrl)], dataset_sink_mode=False)
    assert ctrl.operations >= 5 and checker.checked > 0
    for layer, keep in zip(ctrl.layers, ctrl.keep_masks):
        assert (layer.parameter.asnumpy()[~keep] == 0.0).all()
    assert ctrl.suppressed_counts == (512, 102)  # 640 * min(1 - 20/640, 0.8) and 128 * 0.8
    kept = ctrl.keep_masks[0]
    assert not np.array_equal(net.fc.weight.asnumpy()[kept], initial[kept])  # kept weights still train


@pytest.mark.parametrize("optimizer", ["momentum", "adam"])
def test_update_form_lands_on_the_optimizer_result_minus_delta(optimizer, ms_mode):
    """One step right after an operation: w = keep ? w_optimizer - delta : 0, bit for bit."""
    x = Tensor(np.random.default_rng(2).normal(size=(8, 20)).astype(np.float32))
    y = Tensor(np.arange(8, dtype=np.int32) % 4)
    plain, suppressed = mlp(), mlp()
    plain_cell = nn.TrainOneStepCell(nn.WithLossCell(plain, LOSS), OPTIMIZERS[optimizer](plain.trainable_params()))
    ctrl = SuppressPrivacyFactory.create(suppressed, mlp_layers(), seed=3)
    model = SuppressModel(suppressed, LOSS, OPTIMIZERS[optimizer](suppressed.trainable_params()))
    model.link_suppress_ctrl(ctrl)
    ctrl.update_mask(suppressed, cur_step=1, target_sparse=0.5)
    deltas = [add.asnumpy().copy() for add in ctrl.mask_buffers[1]]
    assert any((d != 0).any() for d in deltas)
    plain_cell.set_train()(x, y)
    model._train_network(x, y)
    expected = {p.name: p.asnumpy() for p in plain.get_parameters()}
    for layer, keep, delta in zip(ctrl.layers, ctrl.keep_masks, deltas):
        name = layer.parameter.name
        expected[name] = np.where(keep, expected[name] - delta, np.float32(0.0))
    own = suppressed.trainable_params()  # the network's parameters (not the controller's state)
    assert sorted(p.name for p in own) == sorted(expected)
    for p in own:
        np.testing.assert_array_equal(p.asnumpy(), expected[p.name], err_msg=p.name)


def test_gradient_form_matches_the_update_form_for_sgd(ms_mode):
    """Plain SGD: MindArmour's g' = delta / lr + g * mul lands where the update form does."""
    x = Tensor(np.random.default_rng(2).normal(size=(8, 20)).astype(np.float32))
    y = Tensor(np.arange(8, dtype=np.int32) % 4)
    plain, suppressed = mlp(), mlp()
    plain_cell = nn.TrainOneStepCell(nn.WithLossCell(plain, LOSS), nn.SGD(plain.trainable_params(), 0.05))
    ctrl = SuppressPrivacyFactory.create(suppressed, mlp_layers(), seed=3)
    model = SuppressModel(suppressed, LOSS, nn.SGD(suppressed.trainable_params(), 0.05))
    model.link_suppress_ctrl(ctrl)
    ctrl.update_mask(suppressed, cur_step=1, target_sparse=0.5)
    corrections = [add.asnumpy().copy() for add in ctrl.mask_buffers[1]]
    plain_cell.set_train()(x, y)
    model._train_network(x, y)
    for layer, keep, add in zip(ctrl.layers, ctrl.keep_masks, corrections):
        landed = np.where(keep, plain.parameters_dict()[layer.parameter.name].asnumpy() - add * np.float32(0.05), 0)
        got = layer.parameter.asnumpy()
        np.testing.assert_allclose(got, landed, rtol=0, atol=1e-6)
        assert (got[~keep] == 0.0).all()  # exactly 0 outside reference parity


def test_lenet_adam_graph_mode_keeps_zeros(ms_mode):
    net = LeNet5()
    init_lenet(net, seed=0)
    ctrl = SuppressPrivacyFactory.create(net, lenet_mask_layers(MaskLayerDes), end_epoch=3, batch_num=6,
                                         start_epoch=2, mask_times=3, lr=0.05, sparse_end=0.9, seed=0)
    model = SuppressModel(net, LOSS, nn.Adam(weights_first(net), 0.001))
    model.link_suppress_ctrl(ctrl)
    images, labels = lenet_data(0, 8, 6)
    checker = ZeroChecker(ctrl)
    model.train(3, make_dataset(images, labels, 8), callbacks=[checker, SuppressMasker(model, ctrl)],
                dataset_sink_mode=False)
    assert ctrl.operations == 4 and checker.checked > 0
    assert ctrl.calc_actual_sparse_for_layer(net, "fc1.weight") == pytest.approx(ctrl.suppressed_counts[2] / 48000)


def test_grad_idx_mismatch_is_a_value_error(reference):
    """The tutorial's grad_idx 0..4 against an optimizer list with interleaved biases."""
    net = LeNet5()
    ctrl = SuppressPrivacyFactory.create(net, lenet_mask_layers(MaskLayerDes), seed=0)
    model = SuppressModel(net, LOSS, nn.SGD(net.trainable_params(), 0.05))
    with pytest.raises(ValueError, match=r"MaskLayerDes\('fc2.weight'\) has grad_idx=3, but its parameter "
                                         r"'fc2.weight' is at position \d+ of the optimizer's parameter list"):
        model.link_suppress_ctrl(ctrl)
    # MindArmour links without a word, and masks fc1.bias with fc2.weight's mask.
    ref_net = LeNet5()
    ref_ctrl = reference.SuppressPrivacyFactory.create(ref_net, lenet_mask_layers(reference.MaskLayerDes))
    reference.SuppressModel(ref_net, LOSS, nn.SGD(ref_net.trainable_params(), 0.05)).link_suppress_ctrl(ref_ctrl)


def test_parameter_outside_the_optimizer_is_a_value_error():
    net = mlp()
    ctrl = SuppressPrivacyFactory.create(net, mlp_layers(), seed=0)
    model = SuppressModel(net, LOSS, nn.SGD([net.out.weight, net.out.bias], 0.05))
    with pytest.raises(ValueError, match="not in the optimizer's parameter list"):
        model.link_suppress_ctrl(ctrl)


def test_reference_parity_needs_sgd():
    net = mlp()
    ctrl = SuppressPrivacyFactory.create(net, mlp_layers(), reference_parity=True, seed=0)
    model = SuppressModel(net, LOSS, nn.Adam(net.trainable_params(), 0.01))
    with pytest.raises(TypeError, match="nn.SGD"):
        model.link_suppress_ctrl(ctrl)


def test_sgd_at_another_learning_rate_uses_the_update_form():
    net = mlp()
    ctrl = SuppressPrivacyFactory.create(net, mlp_layers(), lr=0.05, seed=0)
    model = SuppressModel(net, LOSS, nn.SGD(net.trainable_params(), 0.1))
    model.link_suppress_ctrl(ctrl)
    assert ctrl.correction_form == "update"


def test_unlinked_model_trains_like_a_plain_model(ms_mode):
    x = Tensor(np.random.default_rng(2).normal(size=(8, 20)).astype(np.float32))
    y = Tensor(np.arange(8, dtype=np.int32) % 4)
    plain, ours = mlp(), mlp()
    nn.TrainOneStepCell(nn.WithLossCell(plain, LOSS), nn.Adam(plain.trainable_params(), 0.01)).set_train()(x, y)
    SuppressModel(ours, LOSS, nn.Adam(ours.trainable_params(), 0.01))._train_network(x, y)
    for a, b in zip(plain.get_parameters(), ours.get_parameters()):
        np.testing.assert_array_equal(a.asnumpy(), b.asnumpy())
