"""Parameter averaging (``--ema-decay``): the averages by hand, the released model, the selection runs."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from supjax_app.cli import main
from supjax_app.dp import app as dp_app
from supjax_app.dp import select
from supjax_app.dp.average import check_decay, make_averager, masked_like
from supjax_app.dp.config import DPConfig
from supjax_app.dp.train import dp_optimizer, train_dp


def test_averages_are_the_debiased_moving_averages_by_hand():
    iterates = [np.array([1.0, -2.0]), np.array([3.0, 0.5]), np.array([-1.0, 4.0])]
    decays = (0.5, 0.9)
    init, update = make_averager(decays)
    state = init(jnp.zeros(2))
    for p in iterates:
        averages, state = update(state, jnp.asarray(p))
    t = len(iterates)
    for d, got in zip(decays, averages):
        # sum_i (1 - d) d^(t - i) p_i / (1 - d^t)
        want = sum((1 - d) * d ** (t - 1 - i) * p for i, p in enumerate(iterates)) / (1 - d ** t)
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-6)
    assert update._cache_size() == 1  # the later steps reuse the first compilation


def test_masked_like_zeros_what_is_not_kept_and_nothing_else():
    averaged = {"b": jnp.array([0.3, -0.2]), "w": jnp.array([[0.5, -0.25], [1.0, 2.0]])}
    keep = {"b": jnp.asarray(True), "w": jnp.array([[False, True], [True, False]])}
    out = masked_like(averaged, keep)
    assert out["w"].tolist() == [[0.0, -0.25], [1.0, 0.0]]
    assert out["b"].tolist() == pytest.approx([0.3, -0.2])


@pytest.mark.parametrize("value", [0, 1, 1.5, -0.1, float("nan"), True, "0.9"])
def test_bad_decay_is_refused_naming_the_option(value):
    with pytest.raises(ValueError, match=r"--ema-decay must be a number in \(0, 1\)"):
        check_decay("--ema-decay", value)
    with pytest.raises(ValueError, match="--ema-decay"):
        DPConfig(ema_decay=value).validate()


def test_train_dp_hands_every_steps_params_to_on_step():
    tx = dp_optimizer(0.5, 0.0, 1.0, 0.5, 4, seed=0)
    x, y = np.eye(2, dtype=np.float32).repeat(4, 0), np.array([0, 1]).repeat(4)
    seen = []
    params, _, info = train_dp(lambda p, x: x @ p, jnp.zeros((2, 2)), tx, x, y, epochs=2, batch_size=4, seed=0,
                               on_step=lambda p: seen.append(np.array(p)))
    assert len(seen) == info["steps"] == 4
    np.testing.assert_array_equal(seen[-1], params)
    assert not np.array_equal(seen[0], seen[-1])


@pytest.fixture(scope="module")
def digits():
    from supjax_app.train.app import load_data
    from supjax_app.train.config import TrainConfig

    ds = load_data(TrainConfig(data="digits", seed=0))
    return ds.x_train, ds.y_train, ds.x_test, ds.y_test, ds.num_classes


def _train(config, digits, **kw):
    x, y, xt, yt, k = digits
    return dp_app.train_models(config, x, y, xt, yt, k, models=("dp_dense", "dp_suppressed"), log=lambda m: None,
                               **kw)["models"]


def test_the_released_average_keeps_the_zeros_and_training_is_unchanged(digits):
    base = DPConfig(epochs=3, batch_size=128, noise_multiplier=1.0, seed=0)
    last = _train(base, digits)
    averaged = _train(DPConfig(**{**base.to_json(), "ema_decay": 0.9}), digits, score_decays=(0.5,))
    for name in ("dp_dense", "dp_suppressed"):
        scores = averaged[name]["accuracy_by_average"]
        assert list(scores) == ["last", "ema 0.9", "ema 0.5"]
        # averaging reads the iterates and changes none of them: the last iterate is the run without it
        assert scores["last"] == last[name]["test_accuracy"]
        assert averaged[name]["test_accuracy"] == scores["ema 0.9"]
        assert (averaged[name]["released"], last[name]["released"]) == ("ema 0.9", "last iterate")
        assert last[name]["accuracy_by_average"] is None
    # the suppressed model's average has exactly the last iterate's zeros, so the same size
    assert averaged["dp_suppressed"]["zeros"] == last["dp_suppressed"]["zeros"]
    assert min(averaged["dp_suppressed"]["zeros"].values()) > 0.9
    assert averaged["dp_suppressed"]["size"] == last["dp_suppressed"]["size"]
    assert averaged["dp_suppressed"]["export_sparse"] == last["dp_suppressed"]["export_sparse"]
    assert all(v == 0.0 for v in averaged["dp_dense"]["zeros"].values())


def test_candidates_differing_only_in_the_decay_share_one_training_run(monkeypatch, tmp_path):
    small = (2, 128, 2.0, 0.1, 2, 2.4, True, None)
    for name, decay in (("s1", 0.9), ("s2", None), ("s3", 0.5)):
        monkeypatch.setitem(select.GRID, name, small + (decay,))
    monkeypatch.setitem(select.GRID, "s4", (2, 128, 2.0, 0.1, 1, 2.4, True, None, 0.9))
    calls = []
    real = dp_app.train_models

    def counted(config, *args, **kw):
        calls.append((config.end_epoch, config.ema_decay, tuple(kw["score_decays"])))
        return real(config, *args, **kw)

    monkeypatch.setattr(dp_app, "train_models", counted)
    out = tmp_path / "sel.json"
    assert select.main(["--data", "digits", "--validation", "300", "--candidates", "s1,s2,s4,s3",
                        "--out", str(out)]) == 0
    assert calls == [(2, None, (0.9, 0.5)), (1, None, (0.9,))]
    rows = {r["name"]: r for r in json.loads(out.read_text())["candidates"]}
    assert rows["s2"]["validation_accuracy"] == rows["s1"]["last_iterate_accuracy"] == rows["s3"][
        "last_iterate_accuracy"]
    assert rows["s1"]["seconds"] == rows["s3"]["seconds"] != rows["s4"]["seconds"]
    assert [rows[n]["ema_decay"] for n in ("s1", "s2", "s3", "s4")] == [0.9, None, 0.5, 0.9]


@pytest.mark.parametrize("value", ["0", "1", "2"])
def test_cli_bad_ema_decay_fails_before_training(value, capsys, tmp_path):
    with pytest.raises(SystemExit) as exc:
        main(["train", "--dp", "--quick", "--ema-decay", value, "--out", str(tmp_path / "r")])
    assert exc.value.code == 2
    captured = capsys.readouterr()
    assert "--ema-decay must be a number in (0, 1)" in captured.err
    assert not (tmp_path / "r").exists()


def test_cli_ema_decay_needs_dp(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--ema-decay", "0.9"])
    assert "--ema-decay needs --dp" in capsys.readouterr().err


def test_cli_passes_ema_decay_to_the_config():
    from supjax_app.cli import build_parser
    from supjax_app.dp.cli import config_from_args

    args = build_parser().parse_args(["train", "--dp", "--ema-decay", "0.99"])
    assert config_from_args(args).ema_decay == 0.99
    assert config_from_args(build_parser().parse_args(["train", "--dp"])).ema_decay is None


def test_report_table_gives_the_released_average_and_the_last_iterate(tmp_path):
    from supjax_app.dp.report import model_size, write_markdown

    row = {"test_accuracy": 0.86, "epsilon": {"rdp": 3.0, "pld": 2.7}, "zeros": {"fc1/kernel": 0.95},
           "size": model_size({"k": np.ones(2)}), "seconds": 1.0, "released": "ema 0.99",
           "accuracy_by_average": {"last": 0.845, "ema 0.99": 0.86}}
    ref = {**row, "test_accuracy": 0.89, "epsilon": {"rdp": None, "pld": None}, "released": None,
           "accuracy_by_average": None}
    text = write_markdown({"models": {"non_private_dense": ref, "dp_suppressed": row}, "command": "c",
                           "settings": {}, "notes": []}, tmp_path / "r.md").read_text()
    assert "| dp_suppressed | 86.00 % | ema 0.99 (84.50 %) | 3.000 |" in text
    assert "| non_private_dense | 89.00 % | - | - |" in text
