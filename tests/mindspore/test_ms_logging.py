"""compat logs through MindArmour's ``LogUtil`` logger when mindarmour is importable, else its own.

MindArmour's example calls ``LogUtil.get_instance().set_level('INFO')`` and then sees the
controller's per-layer lines and ``print_paras``; a migrated script must see compat's there.
"""

from __future__ import annotations

import contextlib
import io
import logging
import sys

import numpy as np
import pytest

from compat_mindspore import MaskLayerDes, SuppressPrivacyFactory, _log
from tests.mindspore.test_ms_ctrl import Holder

pytestmark = pytest.mark.mindspore

ARGS = dict(end_epoch=10, batch_num=20, start_epoch=3, mask_times=10, lr=0.05, sparse_end=0.9, sparse_start=0.0)


class Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@pytest.fixture()
def log_util():
    """MindArmour's LogUtil with a collecting handler; its level and handlers restored afterwards."""
    with contextlib.redirect_stdout(io.StringIO()):
        from mindarmour.utils.logger import LogUtil
    util = LogUtil.get_instance()
    target = logging.getLogger("MA")
    level, handlers = target.level, list(target.handlers)
    collect = Collect()
    util.add_handler(collect)
    yield util, collect
    target.handlers = handlers
    target.setLevel(level)


def weights() -> np.ndarray:
    return np.linspace(-1.0, 1.0, 100, dtype=np.float32)


def reference_ctrl(reference):
    """MindArmour's controller over a fresh 100-weight ``suplayer`` (its import banner silenced)."""
    with contextlib.redirect_stdout(io.StringIO()):
        return reference.SuppressPrivacyFactory.create(
            Holder(weights()), [reference.MaskLayerDes("suplayer", 1, False, False, -1)], **ARGS)


def compat_ctrl(net=None):
    """compat's controller over ``net`` (default a fresh 100-weight ``suplayer``)."""
    net = Holder(weights()) if net is None else net
    return SuppressPrivacyFactory.create(net, [MaskLayerDes("suplayer", 1, False, False, -1)], seed=0, **ARGS)


def test_print_paras_and_layer_lines_reach_logutil_at_info(log_util, reference):
    util, collect = log_util
    util.set_level("INFO")
    ref = reference_ctrl(reference)
    collect.messages.clear()
    ref.print_paras()
    ref_paras = [m for m in collect.messages if "paras:" in m]
    net = Holder(weights())
    ctrl = compat_ctrl(net)
    collect.messages.clear()
    ctrl.print_paras()
    ours = [m for m in collect.messages if "paras:" in m]
    assert len(ref_paras) == len(ours) == 1
    # LogUtil's layout: " [<file>:<line>] [<tag>] <message>", and the reference's values first
    head = ref_paras[0].split("] ", 2)[2]
    assert ours[0].split("] ", 2)[1] == "[compat_mindspore"
    assert ours[0].split("] ", 2)[2].startswith(head + ", reference_parity:False, seed:0")
    collect.messages.clear()
    ctrl.update_mask(net, 1, target_sparse=0.3)
    layer = [m for m in collect.messages if "] suplayer: " in m]
    assert layer == [m for m in layer if "100 weights, layer sparsity 0.3, threshold" in m] and len(layer) == 1
    assert "suppressed 30" in layer[0]
    assert any("sparsity 0.3, suppressed [30]" in m for m in collect.messages)


def test_nothing_at_the_default_level(log_util, reference):
    """LogUtil starts at WARNING: print_paras shows nothing, for the reference and for compat."""
    util, collect = log_util
    util.set_level("WARNING")
    ref = reference_ctrl(reference)
    ctrl = compat_ctrl()
    collect.messages.clear()
    ref.print_paras()
    ctrl.print_paras()
    assert collect.messages == []


def test_own_logger_without_mindarmour(monkeypatch, caplog, log_util):
    """mindarmour not importable: plain records on the logger ``compat_mindspore``, none on ``MA``."""
    util, collect = log_util
    util.set_level("DEBUG")
    monkeypatch.setitem(sys.modules, "mindarmour", None)  # what `import mindarmour` sees when it is absent
    _log._mindarmour_importable.cache_clear()
    try:
        assert _log.logger().name == "compat_mindspore"
        net = Holder(weights())
        ctrl = compat_ctrl(net)
        collect.messages.clear()
        with caplog.at_level(logging.INFO, logger="compat_mindspore"):
            ctrl.print_paras()
            ctrl.update_mask(net, 1, target_sparse=0.3)
        texts = [r.getMessage() for r in caplog.records if r.name == "compat_mindspore"]
        assert texts[0].startswith("paras: start_epoch:3, end_epoch:10, batch_num:20, interval:16.0, lr:0.05")
        assert any(t.startswith("suplayer: 100 weights, layer sparsity 0.3") for t in texts)
        assert collect.messages == []
    finally:
        monkeypatch.undo()
        _log._mindarmour_importable.cache_clear()
    assert _log.logger().name == "MA"
