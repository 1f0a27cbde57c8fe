"""Checkpoints: Orbax round trips of the whole training state, and a kill during an
asynchronous save, then a resume from the last complete checkpoint, bitwise."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import textwrap

import jax
import numpy as np
import optax
import pytest

import supjax
from supjax_app.train.checkpoint import Checkpointer, CheckpointMismatch
from supjax_app.train.loop import init_state

from tests.test_train_support import PYTHON, subprocess_env

RULES = [supjax.LayerRule("w", is_add_noise=True, min_num=2)]


def _state(seed: int = 0):
    params = {"w": jax.random.normal(jax.random.PRNGKey(seed), (6, 4)), "b": np.zeros(4, np.float32)}
    tx = optax.chain(optax.sgd(0.1, momentum=0.9),
                     supjax.suppress(RULES, supjax.SuppressSchedule.from_steps(1, 10, 5), seed=seed))
    state = init_state(params, tx, jax.random.PRNGKey(seed + 1), data_seed=seed)
    sup = supjax.find_suppress_state(state.opt_state)
    mask = np.arange(24).reshape(6, 4) % 3 != 0
    new_sup = sup._replace(keep_masks=(jax.numpy.asarray(mask),), count=sup.count + 7)
    opt = (state.opt_state[0], new_sup)
    return state._replace(opt_state=opt, step=state.step + 7, epoch=state.epoch + 1,
                          step_in_epoch=state.step_in_epoch + 3)


def test_round_trip_keeps_every_leaf_bitwise_with_its_dtype(tmp_path):
    state = _state(3)
    with Checkpointer(tmp_path / "ck") as ckpt:
        ckpt.save(7, state, {"history": {"steps": [1, 2]}, "note": "x"})
        ckpt.save(7, state, {})  # an existing step is left alone
        assert ckpt.all_steps() == [7]
    with Checkpointer(tmp_path / "ck") as ckpt:  # a new manager, as in a new process
        restored, meta = ckpt.restore(_state(0))
        arrays, meta2 = ckpt.read()
    assert meta == meta2 == {"history": {"steps": [1, 2]}, "note": "x"}
    assert type(restored) is type(state)
    sup = supjax.find_suppress_state(restored.opt_state)
    assert isinstance(sup, supjax.SuppressState)
    for a, b in zip(jax.tree_util.tree_leaves(state), jax.tree_util.tree_leaves(restored)):
        assert np.asarray(a).dtype == np.asarray(b).dtype
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert sup.keep_masks[0].dtype == np.bool_ and sup.key.dtype == np.uint32
    assert "opt_state/1/keep_masks/0" in arrays and "params/w" in arrays
    assert int(restored.step) == 7 and int(restored.step_in_epoch) == 3


def test_keeps_the_last_three(tmp_path):
    state = _state()
    with Checkpointer(tmp_path) as ckpt:
        for step in (1, 2, 3, 4, 5):
            ckpt.save(step, state)
        assert ckpt.all_steps() == [3, 4, 5] and ckpt.latest_step() == 5


def test_restore_into_another_structure_is_refused(tmp_path):
    with Checkpointer(tmp_path) as ckpt:
        ckpt.save(1, _state())
        with pytest.raises(CheckpointMismatch, match="different model or optimizer"):
            ckpt.restore({"w": np.zeros(3)})
        bigger = _state()._replace(params={"w": np.zeros((7, 4), np.float32), "b": np.zeros(4, np.float32)})
        with pytest.raises(CheckpointMismatch, match="params/w"):
            ckpt.restore(bigger)


def test_restore_without_checkpoint_says_so(tmp_path):
    with Checkpointer(tmp_path) as ckpt:
        assert ckpt.latest_step() is None
        with pytest.raises(FileNotFoundError, match="no checkpoint"):
            ckpt.restore(_state())


# ------------------------------------------------------------ kill, then resume in a new process

# Suppression runs over steps 43..168 (epochs 2-4 of 42 steps), checkpoints every 20 steps.
# The run is killed while the asynchronous save of checkpoint 120 is still being written
# (by a background thread of Orbax's async CheckpointManager); the last complete checkpoint
# is then 100, 16 steps into epoch 3, with 4 of 8 suppress operations done.
OPTIONS = ["train", "--quick", "--epochs", "4", "--start-epoch", "2", "--attacks", "none",
           "--attack-size", "50", "--checkpoint-every", "20"]
KILL_AT = 120
EVERY = 20
DEADLINE = 300  # seconds for any child process; a silent, hung child is killed at it

_DRIVER = textwrap.dedent("""
    import os, signal, sys
    from supjax_app.train import checkpoint

    save = checkpoint.Checkpointer.save

    def save_then_die(self, step, state, meta=None):
        save(self, step, state, meta)  # asynchronous: returns while the write goes on
        if self.directory.name == "suppressed" and step >= {kill}:
            if not (self.directory / str(step)).exists():  # not yet renamed: still writing
                listing = sorted(p.name for p in self.directory.iterdir())
                print("KILLED-DURING-SAVE", step, listing, flush=True)
                os.kill(os.getpid(), signal.SIGKILL)
            print("SAVE-FINISHED-BEFORE-THE-KILL", step, flush=True)

    checkpoint.Checkpointer.save = save_then_die
    from supjax_app.cli import main
    sys.exit(main(sys.argv[1:]))
""")


def _start(args):
    return subprocess.Popen([PYTHON, *args], env=subprocess_env(), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _finish(proc: subprocess.Popen, timeout: float = DEADLINE) -> str:
    """The child's whole output once it exits; a child still running (printing or silent)
    after ``timeout`` seconds is killed and the test fails, so nothing here can hang."""
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        raise AssertionError(f"child still running after {timeout} s; output:\n{out}") from None
    return out


def test_deadline_holds_for_a_silent_child():
    """A child that prints nothing and never exits is killed at the deadline."""
    silent = _start(["-c", "import time; time.sleep(600)"])
    with pytest.raises(AssertionError, match="still running after 2 s"):
        _finish(silent, timeout=2)
    assert silent.returncode == -signal.SIGKILL


def test_kill_during_an_async_save_then_resume_is_bitwise_equal(tmp_path):
    driver = tmp_path / "driver.py"
    driver.write_text(_DRIVER.format(kill=KILL_AT))
    killed_out, whole_out = tmp_path / "killed", tmp_path / "whole"
    killed = _start([str(driver), *OPTIONS, "--out", str(killed_out)])
    whole = _start(["-m", "supjax_app", *OPTIONS, "--out", str(whole_out)])  # uninterrupted, in parallel
    try:
        out_killed = _finish(killed)
        assert killed.returncode == -signal.SIGKILL, out_killed
        assert "SAVE-FINISHED-BEFORE-THE-KILL" not in out_killed, out_killed
        marker = re.search(r"KILLED-DURING-SAVE (\d+) (\[.*\])", out_killed)
        assert marker and int(marker.group(1)) == KILL_AT, out_killed
        last = KILL_AT - EVERY
        sup_dir = killed_out / "checkpoints" / "suppressed"
        # on disk after the kill (read before a new manager cleans up): the complete steps and
        # the half-written one, which never got its final name
        left = sorted(p.name for p in sup_dir.iterdir())
        assert str(KILL_AT) not in left and any(n.startswith(f"{KILL_AT}.") for n in left), left
        assert {str(last - 2 * EVERY), str(last - EVERY), str(last)} <= set(left), left
        with Checkpointer(sup_dir) as ck:
            assert ck.all_steps() == [last - 2 * EVERY, last - EVERY, last]
            arrays, meta = ck.read()
        assert not meta["history"]["finished"]
        assert not (killed_out / "report.json").exists()
        # Mid-suppression: some operations done, some still to come.
        assert 0 < int(arrays["opt_state/1/operations"]) < 8
        assert int(arrays["epoch"]) == 2 and int(arrays["step_in_epoch"]) == 16 and int(arrays["step"]) == last

        resumed = _start(["-m", "supjax_app", *OPTIONS, "--out", str(killed_out), "--resume"])
        out_resumed = _finish(resumed)
        out_whole = _finish(whole)
    finally:
        for p in (killed, whole):
            if p.poll() is None:
                p.kill()
    assert resumed.returncode == 0, out_resumed
    assert whole.returncode == 0, out_whole
    assert f"resumed suppressed from step {last}" in out_resumed

    for run in ("dense", "suppressed"):
        with Checkpointer(killed_out / "checkpoints" / run) as a, Checkpointer(whole_out / "checkpoints" / run) as b:
            assert a.latest_step() == b.latest_step() == 4 * 42
            got, meta_a = a.read()
            want, meta_b = b.read()
        assert sorted(got) == sorted(want)
        for path in want:  # params, momentum-free SGD state, SuppressState (masks, counts, key), position
            np.testing.assert_array_equal(got[path], want[path], err_msg=f"{run}: {path}")
        for key in ("test_accuracy", "train_loss", "steps", "layer_sparsity", "target_sparsity"):
            assert meta_a["history"][key] == meta_b["history"][key]
    masks = [p for p in want if "keep_masks" in p]
    assert len(masks) == 5 and not want[masks[0]].all()

    ra = json.loads((killed_out / "report.json").read_text())
    rb = json.loads((whole_out / "report.json").read_text())
    for run in ("dense", "suppressed"):
        for key in ("accuracy", "sparsity", "membership_inference"):
            assert ra[run][key] == rb[run][key]
    assert ra["suppressed"]["resumed_from_step"] == last and rb["suppressed"]["resumed_from_step"] is None
