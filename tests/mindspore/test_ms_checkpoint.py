"""SuppressCtrl's state in MindSpore checkpoints: a killed run resumed in a new process continues bitwise.

The whole controller state (counts, schedule position, target sparsity, operations, noise
key, pending corrections, keep-mask and correction buffers) lives in non-trainable
parameters of the network, so ``ModelCheckpoint`` saves it and ``load_param_into_net``
restores it into a controller built with the same arguments.
"""

from __future__ import annotations

import os
import pathlib
import selectors
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
from mindspore import Parameter, Tensor, load_checkpoint, load_param_into_net, nn, save_checkpoint

from compat_mindspore import MaskLayerDes, SuppressPrivacyFactory
from tests.mindspore.ckpt_run import EPOCHS, VARIANTS

pytestmark = pytest.mark.mindspore

ROOT = pathlib.Path(__file__).resolve().parents[2]
KILL_AFTER_EPOCH = 2
CHILD_DEADLINE_S = 900.0  # a silent or hung child fails the test instead of blocking it


def child(args: list[str], log: pathlib.Path) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-m", "tests.mindspore.ckpt_run", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=log.open("w"), text=True)


def finish(proc: subprocess.Popen, log: pathlib.Path) -> None:
    try:
        proc.wait(timeout=CHILD_DEADLINE_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        pytest.fail(f"child {proc.args} did not finish within {CHILD_DEADLINE_S} s")
    assert proc.returncode == 0, log.read_text()[-3000:]


def kill_after_epoch(proc: subprocess.Popen, epoch: int) -> list[str]:
    """Read the child's lines until ``SAVED <epoch>``, then SIGKILL it; the deadline holds if it is silent."""
    seen: list[str] = []
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + CHILD_DEADLINE_S
    try:
        while f"SAVED {epoch}" not in seen:
            left = deadline - time.monotonic()
            if left <= 0 or not selector.select(timeout=left):
                pytest.fail(f"no 'SAVED {epoch}' within {CHILD_DEADLINE_S} s; saw {seen}")
            line = proc.stdout.readline()
            if not line:
                pytest.fail(f"child ended before 'SAVED {epoch}'; saw {seen}")
            seen.append(line.strip())
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        selector.close()
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    return seen


def load(path: pathlib.Path) -> dict[str, np.ndarray]:
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_killed_run_resumes_bitwise(variant, tmp_path):
    full_out, resumed_out, ckpt_dir = tmp_path / "full.npz", tmp_path / "resumed.npz", tmp_path / "ckpt"
    ckpt_dir.mkdir()
    full = child([variant, "full", str(full_out)], tmp_path / "full.log")
    train = child([variant, "train", str(ckpt_dir)], tmp_path / "train.log")
    seen = kill_after_epoch(train, KILL_AFTER_EPOCH)
    assert train.returncode == -signal.SIGKILL and "FINISHED" not in seen and f"SAVED {EPOCHS}" not in seen

    checkpoint = ckpt_dir / f"lenet-{KILL_AFTER_EPOCH}_10.ckpt"
    saved = {k: v.asnumpy() for k, v in load_checkpoint(str(checkpoint)).items()}
    # the state is not trivial: two operations done, the one after step 20 still to be applied
    assert saved["suppress_ctrl.operations"].reshape(-1)[0] == 2 and saved["suppress_ctrl.pending"].all()
    assert saved["suppress_ctrl.schedule"].tolist() == [1, 1, 20]
    assert not np.array_equal(saved["suppress_ctrl.key"], np.asarray(jax.random.PRNGKey(3)))

    resumed = child([variant, "resume", str(checkpoint), str(KILL_AFTER_EPOCH), str(resumed_out)],
                    tmp_path / "resumed.log")
    finish(resumed, tmp_path / "resumed.log")
    finish(full, tmp_path / "full.log")
    a, b = load(full_out), load(resumed_out)
    ops_full, ops_resumed = a.pop("operations"), b.pop("operations")
    assert len(ops_full) == 4 and np.array_equal(ops_full[ops_full[:, 0] > KILL_AFTER_EPOCH], ops_resumed)
    assert a.keys() == b.keys() and "param:suppress_ctrl.key" in a and "param:conv2.weight" in a
    different = [k for k in a if a[k].dtype != b[k].dtype or not np.array_equal(a[k], b[k])]
    assert different == []



class Holder(nn.Cell):
    def __init__(self, weights: np.ndarray):
        super().__init__()
        self.a0 = Parameter(Tensor(np.ones(3, np.float32)), name="a0")
        self.suplayer = Parameter(Tensor(weights), name="suplayer")

    def construct(self, x):
        return x


def controller(net: nn.Cell):
    des = [MaskLayerDes("suplayer", 1, True, True, 10, 1.5)]
    return SuppressPrivacyFactory.create(net, des, end_epoch=4, batch_num=10, start_epoch=2, mask_times=3,
                                         lr=0.05, sparse_end=0.9, seed=11)


def snapshot(ctrl) -> tuple:
    muls, adds = ctrl.mask_buffers
    return (ctrl.mask_started, ctrl.mask_start_step, ctrl.mask_prev_step, ctrl.cur_sparse, ctrl.operations,
            ctrl.suppressed_counts, [k.tolist() for k in ctrl.keep_masks], [m.asnumpy().tolist() for m in muls],
            [a.asnumpy().tolist() for a in adds])


def test_state_round_trips_through_save_checkpoint(tmp_path):
    """In one process: save_checkpoint(network), a fresh network and controller, load_param_into_net;
    the restored controller holds the same state and its next operations (noise included) are the same."""
    weights = np.random.default_rng(5).normal(scale=0.8, size=400).astype(np.float32)
    net = Holder(weights.copy())
    ctrl = controller(net)
    for step in range(1, 16):
        ctrl.update_status((step - 1) // 10 + 1, step, (step - 1) % 10 + 1)
        if ctrl.to_do_mask:
            ctrl.update_mask(net, step)
    assert ctrl.operations == 1 and ctrl.mask_started
    save_checkpoint(net, str(tmp_path / "net.ckpt"))
    fresh_net = Holder(np.zeros(400, np.float32))
    fresh = controller(fresh_net)
    assert snapshot(fresh) != snapshot(ctrl)
    not_loaded, _ = load_param_into_net(fresh_net, load_checkpoint(str(tmp_path / "net.ckpt")))
    assert not_loaded == [] and snapshot(fresh) == snapshot(ctrl)
    for c, n in ((ctrl, net), (fresh, fresh_net)):
        n.suplayer.set_data(Tensor(weights * 1.1))
        c.reset_zeros()
        c.update_mask(n, 25)
    assert snapshot(fresh) == snapshot(ctrl)
    noised = (np.abs(weights * 1.1) > 0.5) & (np.abs(weights * 1.1) <= 1.5) & ctrl.keep_masks[0]
    assert noised.sum() > 20 and (ctrl.mask_buffers[1][0].asnumpy()[noised] != 0).all()


def test_state_parameters_follow_the_network_and_are_not_matched():
    """The state comes after the network's parameters, is not trainable, and a second controller on
    the same network matches the network's parameters, not the first controller's buffers."""
    net = Holder(np.linspace(-1, 1, 50, dtype=np.float32))
    controller(net)
    names = [p.name for p in net.get_parameters()]
    assert names[:2] == ["a0", "suplayer"] and all(n.startswith(("suppress_",)) for n in names[2:])
    assert [p.name for p in net.trainable_params()] == ["a0", "suplayer"]
    second = controller(net)
    assert [m.parameter.name for m in second.layers] == ["suplayer"]
    assert [p.name for p in net.get_parameters()][2:] == names[2:]  # the second replaced the first
