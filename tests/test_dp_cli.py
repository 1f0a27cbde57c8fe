"""``supjax train --dp``: bad input is refused before training, and the quick run end to end (CI)."""

from __future__ import annotations

import json
import platform

import pytest

from supjax_app.bench.dp_step import measure_dp_step_ratio
from supjax_app.bench.timing import Counts
from supjax_app.cli import main
from supjax_app.dp.accounting import default_delta, dpsgd_epsilon
from supjax_app.dp.config import DPConfig


@pytest.mark.parametrize("extra, option", [
    (["--epsilon", "0"], "--epsilon"),
    (["--epsilon", "-1"], "--epsilon"),
    (["--clip", "0"], "--clip"),
    (["--clip", "-0.5"], "--clip"),
    (["--delta", "0"], "--delta"),
    (["--delta", "1.5"], "--delta"),
    (["--noise-multiplier", "0"], "--noise-multiplier"),
    (["--epsilon", "3", "--noise-multiplier", "1.0"], "--noise-multiplier and --epsilon"),
    (["--lr", "1000"], "--lr"),
    (["--attacks", "lr"], "--attacks"),
])
def test_bad_options_fail_with_the_option_named(extra, option, capsys, tmp_path):
    with pytest.raises(SystemExit) as exc:
        main(["train", "--dp", "--quick", "--out", str(tmp_path / "r"), *extra])
    assert exc.value.code == 2
    captured = capsys.readouterr()
    assert option in captured.err
    assert "epoch" not in captured.out and not (tmp_path / "r").exists()  # refused before training


def _digits_train_size() -> int:
    from supjax_app.train.app import load_data
    from supjax_app.train.config import TrainConfig

    return len(load_data(TrainConfig(data="digits", seed=0)).x_train)


def test_delta_above_one_over_n_fails_after_loading_before_training(capsys, tmp_path):
    n = _digits_train_size()  # --quick on digits: all of the training split (about 1350 examples)
    assert 1 / n < 0.001
    status = main(["train", "--dp", "--quick", "--delta", "0.001", "--out", str(tmp_path / "r")])
    captured = capsys.readouterr()
    assert status == 2
    assert f"--delta must be a number in (0, 1/n] = (0, {1 / n:g}] for n = {n} training examples" in captured.err
    assert "epoch" not in captured.out and "accuracy" not in captured.out


@pytest.mark.parametrize("option", [["--activation", "tanh"], ["--end-epoch", "2"]])
def test_dp_options_need_dp(capsys, option):
    with pytest.raises(SystemExit):
        main(["train", *option])
    assert f"{option[0]} needs --dp" in capsys.readouterr().err


def test_dp_quick_end_to_end(tmp_path):
    out = tmp_path / "dp"
    assert main(["train", "--dp", "--quick", "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert (out / "report.md").exists()
    models = report["models"]
    assert list(models) == ["non_private_dense", "dp_dense", "dp_suppressed"]
    priv = report["privacy"]
    n = report["data"]["train_size"]
    assert (n, priv["delta"], priv["target_epsilon"]) == (_digits_train_size(), 1e-4, 3.0)
    assert default_delta(n) == 1e-4
    assert priv["steps"] == 3 * (n // 128) and priv["sampling_rate"] == 128 / n
    # the reported ε is the accountant's for the noise multiplier used: 3 (within 1 %), PLD below it
    eps = dpsgd_epsilon(priv["noise_multiplier"], 128 / n, priv["steps"], priv["delta"])
    assert eps == pytest.approx(3.0, rel=0.01)
    for name in ("dp_dense", "dp_suppressed"):
        assert models[name]["epsilon"]["rdp"] == pytest.approx(eps)
        assert models[name]["epsilon"]["pld"] < eps
    assert models["non_private_dense"]["epsilon"] == {"rdp": None, "pld": None}
    # suppression after DP-SGD: 95 % zeros (conv1 keeps its min_num = 10 of 150), a sparse model
    zeros = models["dp_suppressed"]["zeros"]
    assert zeros["conv1/kernel"] == pytest.approx(140 / 150)
    assert all(zeros[p] >= 0.93 for p in zeros)
    assert all(v == 0.0 for v in models["dp_dense"]["zeros"].values())
    size_s, size_d = models["dp_suppressed"]["size"], models["dp_dense"]["size"]
    assert size_s["parameters"] == size_d["parameters"] == size_d["nonzeros"]
    assert size_s["sparse_bytes"] < size_d["dense_bytes"] / 5
    # supjax.export_sparse's BCOO: kept weights * (4 + 4 * ndim) bytes for each suppressed kernel
    export = models["dp_suppressed"]["export_sparse"]
    assert export["dense_bytes"] == size_d["dense_bytes"]
    saved = sum(size * 4 - layer["kept"] * (4 + 4 * ndim) for (size, ndim), layer in
                zip([(150, 4), (2400, 4), (64 * 120, 2), (120 * 84, 2), (84 * 10, 2)], export["layers"].values()))
    assert export["sparse_bytes"] == export["dense_bytes"] - saved < export["dense_bytes"] / 4
    assert [layer["kept"] for layer in export["layers"].values()][0] == 10  # conv1's min_num
    assert models["dp_dense"]["export_sparse"] is None
    assert models["dp_suppressed"]["training"]["masked_clipping"] is DPConfig().masked_clipping
    assert models["dp_dense"]["training"]["masked_clipping"] is False
    assert models["non_private_dense"]["test_accuracy"] > 0.5
    assert "| dp_suppressed |" in (out / "report.md").read_text()
    assert set(report["host"]["cpu"]) == {"model", "vector_extensions"}  # results differ across CPU kinds
    assert report["host"]["malloc"]["tuned"] is (platform.libc_ver()[0] == "glibc")  # main tuned it


def test_bench_dp_step_ratio_quick():
    fig = measure_dp_step_ratio(Counts(quick=True), seed=0, batch=8)
    assert fig["samples"] == 3 and fig["min"] <= fig["median"] <= fig["max"]
    assert fig["median"] > 0 and set(fig["detail"]["step_ms"]) == {"dp", "non_private"}
