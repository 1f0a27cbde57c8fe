"""Every argument check of MindArmour 2.0.0 raises here too, with the same exception type.

Each row is run against compat_mindspore and against the reference (the oracle), so the
expected type is the reference's, not a guess.
"""

from __future__ import annotations

import numpy as np
import pytest
from mindspore import nn

import compat_mindspore
from compat_mindspore import MaskLayerDes, SuppressCtrl, SuppressMasker, SuppressModel, SuppressPrivacyFactory

pytestmark = pytest.mark.mindspore

GOOD_DES = ("fc.weight", 0, False, True, 10, 1.2)

DES_CASES = [
    ("layer_name not str", {0: 1}, TypeError),
    ("grad_idx str", {1: "0"}, TypeError),
    ("grad_idx float", {1: 1.0}, TypeError),
    ("grad_idx negative", {1: -1}, ValueError),
    ("is_add_noise int", {2: 1}, TypeError),
    ("is_lower_clip None", {3: None}, TypeError),
    ("min_num float", {4: 1.5}, TypeError),
    ("upper_bound str", {5: "1"}, TypeError),
    ("upper_bound zero", {5: 0}, ValueError),
    ("upper_bound negative", {5: -1.0}, ValueError),
]


class Net(nn.Cell):
    def __init__(self):
        super().__init__()
        self.fc = nn.Dense(4, 3)
        self.out = nn.Dense(3, 2)

    def construct(self, x):
        return self.out(self.fc(x))


def des_args(changes):
    args = list(GOOD_DES)
    for i, value in changes.items():
        args[i] = value
    return args


@pytest.mark.parametrize("changes,expected", [c[1:] for c in DES_CASES], ids=[c[0] for c in DES_CASES])
def test_mask_layer_des_checks(reference, changes, expected):
    with pytest.raises(expected):
        reference.MaskLayerDes(*des_args(changes))
    with pytest.raises(expected):
        MaskLayerDes(*des_args(changes))


def test_mask_layer_des_valid_and_negative_min_num():
    des = MaskLayerDes("fc.weight", 0, False, True, -5)
    assert (des.upper_bound, des.min_num, des.effective_min_num) == (1.2, -5, -1)


@pytest.mark.parametrize("field", [1, 4, 5])
def test_mask_layer_des_rejects_bool_numbers(reference, field):
    """Stricter than the reference, which takes True as 1 for grad_idx, min_num, upper_bound."""
    reference.MaskLayerDes(*des_args({field: True}))
    with pytest.raises(TypeError):
        MaskLayerDes(*des_args({field: True}))


GOOD_CREATE = dict(policy="local_train", end_epoch=10, batch_num=20, start_epoch=3, mask_times=100,
                   lr=0.05, sparse_end=0.9, sparse_start=0.0)

CREATE_CASES = [
    ("policy not str", dict(policy=1), TypeError),
    ("policy unknown", dict(policy="federated"), ValueError),
    ("networks not Cell", dict(networks="net"), TypeError),
    ("mask_layers tuple", dict(mask_layers="tuple"), TypeError),
    ("end_epoch zero", dict(end_epoch=0), ValueError),
    ("end_epoch str", dict(end_epoch="10"), TypeError),
    ("end_epoch bool", dict(end_epoch=True), ValueError),
    ("end_epoch over 100", dict(end_epoch=101), ValueError),
    ("batch_num negative", dict(batch_num=-1), ValueError),
    ("batch_num float", dict(batch_num=2.0), TypeError),
    ("start_epoch zero", dict(start_epoch=0), ValueError),
    ("start_epoch after end", dict(start_epoch=11), ValueError),
    ("mask_times zero", dict(mask_times=0), ValueError),
    ("mask_times float", dict(mask_times=10.0), TypeError),
    ("lr zero", dict(lr=0), ValueError),
    ("lr negative", dict(lr=-0.1), ValueError),
    ("lr over 0.5", dict(lr=0.6), ValueError),
    ("lr str", dict(lr="0.1"), TypeError),
    ("sparse_end int", dict(sparse_end=1), TypeError),
    ("sparse_end one", dict(sparse_end=1.0), ValueError),
    ("sparse_end zero", dict(sparse_end=0.0), ValueError),
    ("sparse_start negative", dict(sparse_start=-0.1), ValueError),
    ("sparse_start str", dict(sparse_start="0"), TypeError),
    ("sparse_start not below end", dict(sparse_start=0.9), ValueError),
    ("mask layer not MaskLayerDes", dict(mask_layers="not des"), ValueError),
    ("duplicate layer name", dict(mask_layers="dup name"), ValueError),
    ("duplicate grad_idx", dict(mask_layers="dup idx"), ValueError),
    ("layer matches nothing", dict(mask_layers="unmatched"), ValueError),
]


def mask_layers_for(api, kind):
    des = api.MaskLayerDes
    if kind == "tuple":
        return (des("fc.weight", 0, False, False, -1),)
    if kind == "not des":
        return ["out.weight", des("fc.weight", 0, False, False, -1)]  # later items: AttributeError in the reference
    if kind == "dup name":
        return [des("fc.weight", 0, False, False, -1), des("fc.weight", 2, False, False, -1)]
    if kind == "dup idx":
        return [des("fc.weight", 0, False, False, -1), des("out.weight", 0, False, False, -1)]
    if kind == "unmatched":
        return [des("fc.weight", 0, False, False, -1), des("conv9.weight", 2, False, False, -1)]
    return [des("fc.weight", 0, False, False, -1), des("out.weight", 2, False, False, -1)]


def create_kwargs(api, changes):
    kwargs = dict(GOOD_CREATE, networks=Net(), mask_layers=mask_layers_for(api, None))
    for key, value in changes.items():
        kwargs[key] = mask_layers_for(api, value) if key == "mask_layers" else value
    return kwargs


@pytest.mark.parametrize("changes,expected", [c[1:] for c in CREATE_CASES], ids=[c[0] for c in CREATE_CASES])
def test_factory_create_checks(reference, changes, expected):
    with pytest.raises(expected):
        reference.SuppressPrivacyFactory().create(**create_kwargs(reference, changes))
    with pytest.raises(expected):
        SuppressPrivacyFactory().create(**create_kwargs(compat_mindspore, changes), seed=0)


@pytest.mark.parametrize("changes,expected", [c[1:] for c in CREATE_CASES[2:]], ids=[c[0] for c in CREATE_CASES[2:]])
def test_suppress_ctrl_constructor_checks(reference, changes, expected):
    kwargs = create_kwargs(compat_mindspore, changes)
    del kwargs["policy"]
    with pytest.raises(expected):
        SuppressCtrl(**kwargs, seed=0)
    ref_kwargs = create_kwargs(reference, changes)
    del ref_kwargs["policy"]
    with pytest.raises(expected):
        reference.SuppressCtrl(**ref_kwargs)


def test_factory_defaults_are_documented():
    ctrl = SuppressPrivacyFactory.create(Net(), mask_layers_for(compat_mindspore, None), seed=0)
    assert (ctrl.mask_end_epoch, ctrl.batch_num, ctrl.mask_start_epoch, ctrl.mask_times) == (10, 20, 3, 1000)
    assert (ctrl.lr, ctrl.sparse_end, ctrl.sparse_start, ctrl.reference_parity) == (0.05, 0.9, 0.0, False)
    assert ctrl.mask_step_interval == pytest.approx(0.16)


@pytest.mark.parametrize(
    "changes,expected",
    [(dict(reference_parity="yes"), TypeError), (dict(seed=1.5), TypeError), (dict(seed="1"), TypeError)],
)
def test_extra_keywords_checks(changes, expected):
    with pytest.raises(expected):
        SuppressPrivacyFactory.create(**create_kwargs(compat_mindspore, {}), **changes)


def test_grad_idx_beyond_parameters_is_value_error(reference):
    layers = [MaskLayerDes("fc.weight", 9, False, False, -1)]
    with pytest.raises(ValueError, match="beyond"):
        SuppressPrivacyFactory.create(Net(), layers, seed=0)
    with pytest.raises(IndexError):  # the reference fails with an IndexError
        reference.SuppressPrivacyFactory.create(Net(), [reference.MaskLayerDes("fc.weight", 9, False, False, -1)])


def test_seed_none_draws_one():
    a = SuppressPrivacyFactory.create(**create_kwargs(compat_mindspore, {}))
    assert isinstance(a.seed, int)


def make_model(net=None, optimizer=None):
    net = net or Net()
    optimizer = optimizer or nn.SGD(net.trainable_params(), 0.05)
    return SuppressModel(net, nn.MSELoss(), optimizer)


def test_model_masker_and_report_type_checks(reference):
    net = Net()
    ctrl = SuppressPrivacyFactory.create(net, mask_layers_for(compat_mindspore, None), seed=0)
    with pytest.raises(TypeError):
        SuppressModel("net", nn.MSELoss(), nn.SGD(net.trainable_params(), 0.05))
    with pytest.raises(TypeError):
        SuppressModel(net, nn.MSELoss(), "sgd")
    model = make_model(net)
    with pytest.raises(TypeError):
        model.link_suppress_ctrl("ctrl")
    with pytest.raises(TypeError):
        SuppressMasker("model", ctrl)
    with pytest.raises(TypeError):
        SuppressMasker(model, "ctrl")
    with pytest.raises(TypeError):
        ctrl.calc_actual_sparse_for_layer("net", "fc.weight")
    with pytest.raises(TypeError):
        ctrl.calc_actual_sparse_for_layer(net, 1)
    ref_net = Net()
    ref_ctrl = reference.SuppressPrivacyFactory.create(ref_net, mask_layers_for(reference, None))
    for call in (lambda: ref_ctrl.calc_actual_sparse_for_layer("net", "fc.weight"),
                 lambda: ref_ctrl.calc_actual_sparse_for_layer(ref_net, 1),
                 lambda: reference.SuppressModel("net", nn.MSELoss(), nn.SGD(ref_net.trainable_params(), 0.05))):
        with pytest.raises(TypeError):
            call()


def test_loss_scale_manager_is_rejected():
    from mindspore.train import FixedLossScaleManager

    net = Net()
    with pytest.raises(ValueError, match="loss scaling"):
        SuppressModel(net, nn.MSELoss(), nn.SGD(net.trainable_params(), 0.05),
                      loss_scale_manager=FixedLossScaleManager(128.0, drop_overflow_update=False))


def test_masker_refuses_an_unlinked_model():
    import mindspore.dataset as ds

    net = Net()
    ctrl = SuppressPrivacyFactory.create(net, mask_layers_for(compat_mindspore, None), seed=0)
    model = make_model(net)
    data = ds.NumpySlicesDataset({"x": np.ones((4, 4), np.float32), "y": np.zeros((4, 2), np.float32)}).batch(2)
    with pytest.raises(ValueError, match="link_suppress_ctrl"):
        model.train(1, data, callbacks=[SuppressMasker(model, ctrl)], dataset_sink_mode=False)


def test_mask_layer_list_is_not_modified():
    layers = mask_layers_for(compat_mindspore, None)
    SuppressPrivacyFactory.create(Net(), layers, seed=0)
    SuppressPrivacyFactory.create(Net(), layers, seed=0)  # the reference would fail here (inited flags)
    assert not hasattr(layers[0], "inited")


def test_first_unmatched_description_wins():
    """A parameter takes the first description it contains that is not matched yet."""
    net = Net()
    layers = [MaskLayerDes("weight", 0, False, False, -1), MaskLayerDes("fc.weight", 2, False, False, -1)]
    with pytest.raises(ValueError, match="fc.weight"):
        # "weight" takes fc.weight (first parameter), then out.weight can't take "fc.weight"
        SuppressPrivacyFactory.create(net, layers, seed=0)
    layers = [MaskLayerDes("fc.weight", 0, False, False, -1), MaskLayerDes("weight", 2, False, False, -1)]
    ctrl = SuppressPrivacyFactory.create(net, layers, seed=0)
    assert [m.parameter.name for m in ctrl.layers] == ["fc.weight", "out.weight"]
