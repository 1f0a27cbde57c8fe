"""``supjax train --dp --upper-bound``: checked before training, and it reaches every suppressed layer's rule."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

import supjax
from supjax_app.cli import main
from supjax_app.dp import app as dp_app
from supjax_app.dp.config import DPConfig
from supjax_app.dp.train import dp_optimizer
from supjax_app.train.app import load_data
from supjax_app.train.config import TrainConfig


@pytest.mark.parametrize("value", [0, -1.0, float("inf"), float("nan"), True, "2"])
def test_upper_bound_outside_range_is_refused_naming_it(value):
    with pytest.raises(ValueError, match=r"--upper-bound must be a number > 0, got"):
        DPConfig(upper_bound=value).validate()


def test_bad_upper_bound_on_the_command_line_fails_before_training(capsys, tmp_path):
    with pytest.raises(SystemExit) as exc:
        main(["train", "--dp", "--quick", "--upper-bound", "0", "--out", str(tmp_path / "r")])
    assert exc.value.code == 2
    captured = capsys.readouterr()
    assert "--upper-bound must be a number > 0, got 0.0" in captured.err
    assert "epoch 1" not in captured.out and not (tmp_path / "r").exists()


def test_upper_bound_needs_dp(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--upper-bound", "2"])
    assert "--upper-bound needs --dp" in capsys.readouterr().err


def test_default_is_the_chosen_candidates_and_rules_keep_mindarmours():
    from supjax_app.dp.select import FIELDS, GRID

    chosen = dict(zip(FIELDS, GRID["R"]))  # the best validation accuracy (docs/dp-fashion-mnist)
    d = DPConfig()
    assert {f: getattr(d, f if f != "end_epoch" else "epochs") for f in FIELDS} == {**chosen, "end_epoch": 25}
    assert d.resolved_end_epoch() == 25
    assert supjax.LayerRule("w").upper_bound == 1.2  # the library keeps MindArmour's default


def test_upper_bound_reaches_every_rule_of_the_suppressed_model(monkeypatch):
    """train_models builds the DP + suppressed optimizer with every LeNet5 rule at --upper-bound."""
    seen = []

    def recording(*args, **kwargs):
        seen.append(kwargs.get("rules"))
        return dp_optimizer(*args, **kwargs)

    monkeypatch.setattr(dp_app, "dp_optimizer", recording)
    ds = load_data(TrainConfig(data="digits", train_size=300, test_size=50, seed=0))
    config = DPConfig(epochs=1, batch_size=100, upper_bound=3.5, noise_multiplier=1.0)
    dp_app.train_models(config, ds.x_train, ds.y_train, ds.x_test, ds.y_test, ds.num_classes,
                        models=("dp_suppressed", "dp_dense"), log=lambda msg: None)
    suppressed, dense = seen
    assert dense is None
    assert len(suppressed) == 5 and {r.upper_bound for r in suppressed} == {3.5}


def test_kept_weights_are_clipped_to_the_bound_at_an_operation():
    """Through the DP optimizer: the first operation clips kept weights to the bound given, not to 1.2."""
    params = {"w": jnp.linspace(-3.0, 3.0, 40).reshape(4, 10)}
    zero = {"w": jnp.zeros((1, 4, 10))}  # one example, zero gradient, no noise: only suppression moves w
    schedule = supjax.SuppressSchedule.from_steps(1, 4, 4, sparse_end=0.5)
    for bound, expected in ((1.2, 1.2), (2.4, 2.4), (9.6, 3.0)):
        tx = dp_optimizer(0.1, 0.0, 1.0, 0.0, 1, seed=0, rules=[supjax.LayerRule("w", upper_bound=bound)],
                          schedule=schedule)
        state = tx.init(params)
        p = params
        for _ in range(3):  # the first operation's corrections have landed after the third update
            updates, state = tx.update(zero, state, p)
            p = {"w": p["w"] + updates["w"]}
        w = np.asarray(p["w"])
        assert 0 < np.mean(w == 0) < 0.5  # the first operation, not the last
        assert np.isclose(np.abs(w).max(), expected), bound
        # |w| = 3 - 6k/39 > bound for k = 0..11 (1.2) and k = 0..3 (2.4), on both signs; 9.6 clips nothing
        assert np.sum(np.isclose(np.abs(w), expected)) == {1.2: 24, 2.4: 8, 9.6: 2}[bound]
