"""SuppressCtrl's methods one by one, against MindArmour 2.0.0's."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
from mindspore import Parameter, Tensor, nn

from compat_mindspore import MaskLayerDes, SuppressPrivacyFactory
from compat_mindspore._lenet import LeNet5, init_lenet, lenet_mask_layers

pytestmark = pytest.mark.mindspore


class Holder(nn.Cell):
    """A dummy first parameter, then one layer ``suplayer`` with the given weights."""

    def __init__(self, weights: np.ndarray):
        super().__init__()
        self.a0 = Parameter(Tensor(np.ones(3, np.float32)), name="a0")
        self.suplayer = Parameter(Tensor(weights.astype(np.float32)), name="suplayer")

    def construct(self, x):
        return x


def pair(reference, weights, parity=True, **des):
    """The same one-layer controller under the reference and under compat (grad_idx 1)."""
    options = dict(is_add_noise=False, is_lower_clip=True, min_num=10, upper_bound=1.2)
    options.update(des)
    args = ("suplayer", 1, options["is_add_noise"], options["is_lower_clip"], options["min_num"], options["upper_bound"])
    kwargs = dict(end_epoch=4, batch_num=10, start_epoch=2, mask_times=3, lr=0.05, sparse_end=0.9)
    with contextlib.redirect_stdout(io.StringIO()):
        ref = reference.SuppressPrivacyFactory.create(Holder(weights), [reference.MaskLayerDes(*args)], **kwargs)
    ours = SuppressPrivacyFactory.create(Holder(weights), [MaskLayerDes(*args)], reference_parity=parity,
                                         seed=0, **kwargs)
    return ref, ours


SCHEDULES = [
    dict(start_epoch=2, end_epoch=4, batch_num=10, mask_times=3),
    dict(start_epoch=3, end_epoch=10, batch_num=20, mask_times=10),
    dict(start_epoch=1, end_epoch=2, batch_num=7, mask_times=5),
    dict(start_epoch=1, end_epoch=1, batch_num=2, mask_times=4),
]


@pytest.mark.parametrize("schedule", SCHEDULES, ids=lambda s: "-".join(str(v) for v in s.values()))
def test_update_status_follows_the_reference(reference, schedule):
    weights = np.linspace(-1, 1, 50, dtype=np.float32)
    kwargs = dict(schedule, lr=0.05, sparse_end=0.9)
    with contextlib.redirect_stdout(io.StringIO()):
        ref = reference.SuppressPrivacyFactory.create(
            Holder(weights), [reference.MaskLayerDes("suplayer", 1, False, False, -1)], **kwargs)
    ours = SuppressPrivacyFactory.create(Holder(weights), [MaskLayerDes("suplayer", 1, False, False, -1)],
                                         seed=0, **kwargs)
    batch_num = schedule["batch_num"]
    for step in range(1, (schedule["end_epoch"] + 2) * batch_num + 1):
        epoch, in_epoch = (step - 1) // batch_num + 1, (step - 1) % batch_num + 1
        ref.update_status(epoch, step, in_epoch)
        ours.update_status(epoch, step, in_epoch)
        got = (ours.to_do_mask, ours.mask_started, ours.mask_start_step, ours.mask_prev_step)
        assert got == (ref.to_do_mask, ref.mask_started, ref.mask_start_step, ref.mask_prev_step), step
        if ref.to_do_mask:
            ref.update_mask(ref.networks, step)
            ours.update_mask(ours.networks, step)
            assert ours.cur_sparse == ref.cur_sparse


def reference_arrays(ref):
    cell, de_weight = ref.grads_mask_list[1], ref.de_weight_mask_list[1]
    return cell.mul_mask_array_flat > 0, de_weight.add_mask_array_flat


def test_update_mask_layer_matches_the_reference(reference):
    rng = np.random.default_rng(0)
    weights = (rng.normal(0, 0.3, 400) * rng.choice([1, 0.01], 400)).astype(np.float32)
    weights[:5] = 0.0
    ref, ours = pair(reference, weights, upper_bound=0.35)
    abs_w = np.abs(weights)
    for stop in (150, 300, 395):
        thd = np.partition(abs_w, stop - 1)[stop - 1]
        ref.update_mask_layer(weights, thd, stop, float(abs_w.max()), 1)
        ours.update_mask_layer(weights, thd, stop, float(abs_w.max()), 1)
        keep_ref, add_ref = reference_arrays(ref)
        assert np.array_equal(ours.keep_masks[0].reshape(-1), keep_ref)
        np.testing.assert_array_equal(ours.mask_buffers[1][0].asnumpy().reshape(-1), add_ref.astype(np.float32))
        assert ours.suppressed_counts[0] == ref.grads_mask_list[1].sparse_pos_list[-1]


def test_corrections_on_the_bounds_match_the_reference(reference):
    """Weights sitting on +-float32(0.005) and +-float32(0.3), and weights pulled to 0.005.

    MindArmour clips a weight at float32(0.005) again (it is <= 0.005) and one at
    float32(0.3) (> 0.3 in float64) with corrections of about 1e-9 / lr, and pulls the kept
    weights below a threshold above 0.005 to 0.005 as a float64 number: supjax's move codes
    let compat redo exactly that arithmetic.
    """
    rng = np.random.default_rng(2)
    weights = rng.normal(0, 0.3, 400).astype(np.float32)
    weights[:40] = rng.uniform(0, 0.004, 40).astype(np.float32) * rng.choice([-1, 1], 40)
    weights[40:50] = np.float32(0.005) * rng.choice([-1, 1], 10).astype(np.float32)
    weights[50:60] = np.float32(0.3) * rng.choice([-1, 1], 10).astype(np.float32)
    ref, ours = pair(reference, weights, upper_bound=0.3, min_num=300)
    abs_w = np.abs(weights)
    for stop in (30, 150):  # threshold in (0.0025, 0.005), then above 0.005 with min_num binding
        thd = np.partition(abs_w, stop - 1)[stop - 1]
        ref.update_mask_layer(weights, thd, stop, float(abs_w.max()), 1)
        ours.update_mask_layer(weights, thd, stop, float(abs_w.max()), 1)
        keep_ref, add_ref = reference_arrays(ref)
        assert np.array_equal(ours.keep_masks[0].reshape(-1), keep_ref)
        add_ours = ours.mask_buffers[1][0].asnumpy().reshape(-1)
        np.testing.assert_array_equal(add_ours, add_ref.astype(np.float32))
        on_bounds = add_ours[40:60] if stop == 30 else add_ours[50:60]
        assert np.all(on_bounds != 0) and np.all(np.abs(on_bounds) < 1e-6), on_bounds
    pulled = ours.keep_masks[0].reshape(-1) & (abs_w <= thd)  # kept below a threshold > 0.005
    assert thd > 0.005 and pulled.sum() > 10
    w64 = weights[pulled].astype(np.float64)
    expected = ((w64 - np.sign(w64) * 0.005) / 0.05).astype(np.float32)
    np.testing.assert_array_equal(add_ours[pulled], expected)


def test_update_mask_layer_approximity_matches_the_reference(reference):
    rng = np.random.default_rng(1)
    weights = np.round(rng.normal(0, 0.2, 12000), 3).astype(np.float32)  # many ties
    ref, ours = pair(reference, weights, is_lower_clip=False, min_num=-1)
    abs_w = np.abs(weights)
    for stop in (4000, 9000, 11000):
        with contextlib.redirect_stdout(io.StringIO()):
            thd_ref = ref.update_mask_layer_approximity(weights, abs_w, stop, 1)
        thd = ours.update_mask_layer_approximity(weights, abs_w, stop, 1)
        keep_ref, add_ref = reference_arrays(ref)
        assert thd == pytest.approx(float(thd_ref), abs=0, rel=1e-7)
        assert np.array_equal(ours.keep_masks[0].reshape(-1), keep_ref)
        np.testing.assert_array_equal(ours.mask_buffers[1][0].asnumpy().reshape(-1), add_ref.astype(np.float32))
        assert ours.suppressed_counts[0] == ref.grads_mask_list[1].sparse_pos_list[-1]


def test_update_mask_and_reports_match_on_lenet(reference):
    ref_net, net = LeNet5(), LeNet5()
    init_lenet(ref_net, seed=4)
    init_lenet(net, seed=4)
    kwargs = dict(end_epoch=4, batch_num=10, start_epoch=2, mask_times=3, lr=0.05, sparse_end=0.9)
    with contextlib.redirect_stdout(io.StringIO()):
        ref = reference.SuppressPrivacyFactory.create(ref_net, lenet_mask_layers(reference.MaskLayerDes), **kwargs)
        ref.update_mask(ref_net, 5, target_sparse=0.6)
    ours = SuppressPrivacyFactory.create(net, lenet_mask_layers(MaskLayerDes), reference_parity=True, seed=0, **kwargs)
    ours.update_mask(net, 5, target_sparse=0.6)
    assert ours.cur_sparse == ref.cur_sparse == 0.6
    assert ours.calc_theoretical_sparse_for_conv() == pytest.approx(ref.calc_theoretical_sparse_for_conv(), abs=1e-12)
    # Land the weights on the masks in both networks, then measure them.
    for cell, params in ((ref, ref_net), (ours, net)):
        masks = ([cell.grads_mask_list[i].mul_mask_array_flat for i in range(5)] if cell is ref
                 else [k.reshape(-1) for k in cell.keep_masks])
        weights = [p for p in params.get_parameters() if p.name.endswith("weight")]
        for p, m in zip(weights, masks):
            p.set_data(Tensor(p.asnumpy() * m.reshape(p.shape).astype(np.float32)))
    with contextlib.redirect_stdout(io.StringIO()):
        expected = (ref.calc_actual_sparse_for_conv(ref_net), ref.calc_actual_sparse_for_fc1(ref_net),
                    ref.calc_actual_sparse_for_layer(ref_net, "fc3.weight"),
                    ref.calc_actual_sparse_for_layer(ref_net, "no.such.layer"))
    got = (ours.calc_actual_sparse_for_conv(net), ours.calc_actual_sparse_for_fc1(net),
           ours.calc_actual_sparse_for_layer(net, "fc3.weight"), ours.calc_actual_sparse_for_layer(net, "no.such.layer"))
    assert got[0] == pytest.approx(expected[0], abs=1e-12)
    assert got[1:] == pytest.approx(expected[1:], abs=1e-12)
    assert got[1] > 0.5 and got[3] == 0.0


def test_reset_zeros_clears_the_corrections():
    net = LeNet5()
    init_lenet(net, seed=0)
    ctrl = SuppressPrivacyFactory.create(net, lenet_mask_layers(MaskLayerDes), seed=0)
    ctrl.update_mask(net, 1, target_sparse=0.5)
    adds = ctrl.mask_buffers[1]
    assert all(np.abs(a.asnumpy()).max() > 0 for a in adds)
    ctrl.reset_zeros()
    assert all((a.asnumpy() == 0).all() for a in adds)
    muls = ctrl.mask_buffers[0]
    assert [float((m.asnumpy() == 0).mean()) for m in muls] == pytest.approx([0.5] * 5, abs=1e-3)


def test_default_rules_suppress_exactly_the_stop_count():
    """Documented behaviour: ties at the threshold are taken in index order up to the target."""
    weights = np.full(100, 0.3, np.float32)
    net = Holder(weights)
    ctrl = SuppressPrivacyFactory.create(net, [MaskLayerDes("suplayer", 1, False, False, -1)], seed=0)
    ctrl.update_mask(net, 1, target_sparse=0.37)
    assert ctrl.suppressed_counts == (37,)
    assert not ctrl.keep_masks[0][:37].any() and ctrl.keep_masks[0][37:].all()


def test_give_up_when_the_first_parameter_is_tiny():
    net = LeNet5()
    for p in net.get_parameters():
        p.set_data(Tensor(np.full(tuple(p.shape), 0.01, np.float32)))
    ctrl = SuppressPrivacyFactory.create(net, lenet_mask_layers(MaskLayerDes), seed=0)
    ctrl.update_mask(net, 1, target_sparse=0.5)
    assert ctrl.operations == 0 and ctrl.suppressed_counts == (0,) * 5


def test_seeded_noise_is_reproducible():
    weights = np.linspace(-2, 2, 200, dtype=np.float32)
    results = []
    for seed in (7, 7, 8):
        net = Holder(weights)
        ctrl = SuppressPrivacyFactory.create(net, [MaskLayerDes("suplayer", 1, True, False, -1, 5.0)], seed=seed)
        ctrl.update_mask(net, 1, target_sparse=0.2)
        results.append(ctrl.mask_buffers[1][0].asnumpy().copy())
    noised = np.abs(weights) > 0.5
    assert np.array_equal(results[0], results[1]) and not np.array_equal(results[0], results[2])
    assert (results[0][noised] != 0).all() and (np.abs(results[0][noised] * 0.05) <= 0.1 + 1e-6).all()


def test_pending_corrections_follow_a_form_change():
    """update_mask before link_suppress_ctrl: the buffers switch from delta / lr to delta."""
    weights = np.linspace(-2, 2, 200, dtype=np.float32)
    net = Holder(weights)
    ctrl = SuppressPrivacyFactory.create(net, [MaskLayerDes("suplayer", 1, False, True, -1, 1.0)], seed=0)
    ctrl.update_mask(net, 1, target_sparse=0.3)
    add = ctrl.mask_buffers[1][0]
    gradient_form = add.asnumpy().copy()
    ctrl.set_correction_form("update")
    np.testing.assert_allclose(add.asnumpy(), gradient_form * 0.05, rtol=1e-6)
    landed = weights - add.asnumpy()
    keep = ctrl.keep_masks[0]
    assert (landed[~keep] == 0).all() and np.abs(landed[keep]).max() == pytest.approx(1.0)
    ctrl.reset_zeros()
    ctrl.set_correction_form("gradient")
    assert (add.asnumpy() == 0).all()
