"""compat_mindspore (reference_parity=True) against MindArmour 2.0.0 on the tutorial's LeNet5.

Same initial weights, same data, nn.SGD, noise off; every parameter after MindArmour's own
SuppressModel training is compared bit for bit (``np.array_equal`` on float32). conv2's weights are scaled by 50 and
its upper bound is 0.35, so most of them are clipped to 0.35 and then tie at the threshold
of the next operation, where MindArmour's prefix-count rule suppresses more than the stop
count (SPEC.md section 4); fc1 (48000 weights) takes MindArmour's large-layer path.
"""

from __future__ import annotations

import mindspore as ms
import numpy as np
import pytest

import compat_mindspore
from supjax.engine import stop_count

from tests.mindspore.lenet_run import LAYERS, train_lenet

pytestmark = pytest.mark.mindspore

MIN_NUMS = (10, 50, -1, -1, 50)


@pytest.fixture(scope="module")
def reference_run(reference):
    return train_lenet(reference, ms.PYNATIVE_MODE, compat=False)


@pytest.fixture(scope="module", params=["pynative", "graph"])
def compat_run(request):
    mode = ms.GRAPH_MODE if request.param == "graph" else ms.PYNATIVE_MODE
    return train_lenet(compat_mindspore, mode, compat=True)


def test_same_operations_and_counts(reference_run, compat_run):
    ref = [(op["step"], op["sparsity"], op["counts"]) for op in reference_run.operations]
    ours = [(op["step"], op["sparsity"], op["counts"]) for op in compat_run.operations]
    assert len(ref) == 4 and ref == ours


def test_same_weights_bit_for_bit(reference_run, compat_run):
    """Every parameter after 40 steps of MindArmour's SuppressModel equals compat's, bit for bit."""
    assert len(reference_run.weights) == 8  # LeNet5: 5 weights, 3 biases (the convolutions have none)
    for name, ref_w in reference_run.weights.items():
        ours = compat_run.weights[name]
        assert ours.dtype == ref_w.dtype == np.float32, name
        assert np.array_equal(ours, ref_w), (name, np.flatnonzero(ours != ref_w)[:10])
    print(f"\nLeNet5 training: reference {reference_run.seconds:.1f} s, compat {compat_run.seconds:.1f} s")


def test_conv2_overshoots_on_ties_at_the_upper_bound(reference_run, compat_run):
    """The tie case really happens: many clipped conv2 weights equal the threshold."""
    overshoots = []
    for op in reference_run.operations:
        w = np.abs(op["weights_before"][1]).reshape(-1)
        stop = stop_count(w.size, MIN_NUMS[1], op["sparsity"])
        if stop <= 0:
            continue
        thd = np.partition(w, stop - 1)[stop - 1]
        ties = int((w == thd).sum())
        if op["counts"][1] > stop:
            overshoots.append((op["step"], stop, op["counts"][1], ties, float(thd)))
    assert overshoots, "no operation overshot its stop count on conv2"
    step, stop, count, ties, thd = overshoots[0]
    assert ties > count - stop and thd == pytest.approx(0.35, abs=1e-3)
    assert [op["counts"][1] for op in compat_run.operations] == [op["counts"][1] for op in reference_run.operations]


def test_fc1_takes_the_large_layer_path_under_parity(compat_run):
    methods = [plan.method for plan in compat_run.ctrl.plans]
    assert methods == ["exact", "exact", "large_reference", "large_reference", "exact"]
    sizes = [plan.size for plan in compat_run.ctrl.plans]
    assert sizes == [150, 2400, 48000, 10080, 840] and [p.path_name for p in compat_run.ctrl.plans] == list(LAYERS)


def test_suppressed_weights_end_near_zero_and_masks_match(compat_run):
    ctrl = compat_run.ctrl
    for layer, keep in zip(ctrl.layers, ctrl.keep_masks):
        w = compat_run.weights[layer.parameter.name]
        assert np.abs(w[~keep]).max(initial=0.0) <= 1e-7  # MindArmour's SGD form leaves ~1e-9
