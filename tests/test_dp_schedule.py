"""``supjax train --dp --end-epoch``: checked before training, and the suppression schedule ends there."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

import supjax
from supjax_app.cli import main
from supjax_app.dp.config import DPConfig
from supjax_app.dp.train import dp_optimizer
from supjax_app.train.config import TrainConfig


@pytest.mark.parametrize("end_epoch", [0, 2, 11, 7.5, True, "7"])
def test_end_epoch_outside_start_to_epochs_is_refused_naming_it(end_epoch):
    # epochs 10: suppression starts at epoch 3 (30 %), so --end-epoch must be in [3, 10]
    with pytest.raises(ValueError, match=r"--end-epoch must be an integer in \[3, 10\]"):
        DPConfig(epochs=10, end_epoch=end_epoch).validate()


def test_end_epoch_range_follows_start_epoch():
    assert DPConfig(epochs=10, start_epoch=5, end_epoch=5).validate()
    with pytest.raises(ValueError, match=r"--end-epoch must be an integer in \[5, 10\] .*, got 4"):
        DPConfig(epochs=10, start_epoch=5, end_epoch=4).validate()


def test_bad_end_epoch_on_the_command_line_fails_before_training(capsys, tmp_path):
    with pytest.raises(SystemExit) as exc:  # --quick: 3 epochs
        main(["train", "--dp", "--quick", "--end-epoch", "4", "--out", str(tmp_path / "r")])
    assert exc.value.code == 2
    captured = capsys.readouterr()
    assert "--end-epoch must be an integer in [1, 3]" in captured.err
    assert "epoch 1" not in captured.out and not (tmp_path / "r").exists()


def test_default_end_epoch_is_supjax_train_schedule():
    for epochs, spe in ((10, 48), (3, 58), (15, 58)):
        dp = DPConfig(epochs=epochs).schedule(spe)
        assert dp == TrainConfig(epochs=epochs, sparse_end=0.95).schedule(spe)
        assert dp == DPConfig(epochs=epochs, end_epoch=epochs).schedule(spe)
        assert not dp.stop_after_end


def test_schedule_ends_at_end_epoch():
    s = DPConfig(epochs=10, end_epoch=7).schedule(48)
    assert (s.start_step, s.end_step, s.final_step, s.stop_after_end) == (2 * 48 + 1, 7 * 48, 7 * 48 - 2, True)
    assert s.mask_times == round(5 * 48 / 15) and s.sparse_end == 0.95
    with pytest.raises(ValueError, match="--mask-times must be an integer in"):
        DPConfig(epochs=10, end_epoch=3, mask_times=49).schedule(48)


def test_no_suppress_operation_after_end_epoch_and_masks_held():
    """Trained through the DP optimizer: operations only up to end_epoch, then the same masks to the end."""
    config = DPConfig(epochs=4, end_epoch=2, mask_times=3, sparse_end=0.5)  # start epoch 1
    spe = 5
    schedule = config.schedule(spe)
    tx = dp_optimizer(0.1, 0.0, 1.0, 0.0, 4, seed=0, rules=[supjax.LayerRule("w")], schedule=schedule)
    params = {"w": jnp.linspace(-1.0, 1.0, 40).reshape(4, 10)}
    state = tx.init(params)
    rng = np.random.default_rng(0)
    ops, masks, zeros = [], [], []
    for _ in range(config.epochs * spe):
        grads = {"w": jnp.asarray(rng.normal(size=(4, 4, 10)), jnp.float32)}  # 4 examples
        updates, state = tx.update(grads, state, params)
        params = {"w": params["w"] + updates["w"]}
        sup = supjax.find_suppress_state(state)
        ops.append(int(sup.operations))
        masks.append(np.asarray(sup.keep_masks[0]))
        zeros.append(int(np.sum(np.asarray(params["w"]) == 0)))
    end = config.end_epoch * spe
    assert ops[end - 1] >= 2 and ops[end - 1] == ops[-1]  # no operation after step 10 (updates 11..20)
    for mask in masks[end:]:
        np.testing.assert_array_equal(mask, masks[end - 1])
    assert zeros[end] >= 19 and all(z == zeros[end] for z in zeros[end:])  # ~50 % of 40 held at zero
    np.testing.assert_array_equal(np.asarray(params["w"]) == 0, ~masks[-1])
