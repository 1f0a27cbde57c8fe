"""The ``supjax`` command: help, option errors, missing data, and a --quick run end to end."""

from __future__ import annotations

import argparse
import json
import subprocess

import matplotlib.image
import numpy as np
import pytest

from supjax_app.cli import build_parser, main
from supjax_app.train.checkpoint import Checkpointer

from tests.test_train_support import PYTHON, subprocess_env

LAYERS = ["conv1/kernel", "conv2/kernel", "fc1/kernel", "fc2/kernel", "fc3/kernel"]
ATTACKS = ["lr", "knn", "mlp", "rf", "loss_threshold"]


def _train_parser() -> argparse.ArgumentParser:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices["train"]


def test_every_option_has_help_text():
    options = [a for a in _train_parser()._actions if a.option_strings and "--help" not in a.option_strings]
    names = {a.option_strings[0] for a in options}
    assert {"--epochs", "--batch-size", "--lr", "--sparse-end", "--start-epoch", "--mask-times", "--seed",
            "--quick", "--data", "--data-dir", "--out", "--checkpoint-dir", "--checkpoint-every",
            "--resume"} <= names
    for action in options:
        assert action.help and len(action.help) > 15, action.option_strings


def test_help_names_the_dp_defaults():
    from supjax_app.dp.config import DPConfig

    dp, helps = DPConfig(), {a.option_strings[0]: a.help for a in _train_parser()._actions if a.option_strings}
    assert f"{dp.epochs} with --dp" in helps["--epochs"]
    assert f"default {dp.batch_size})" in helps["--batch-size"] and f"default {dp.lr:g})" in helps["--lr"]


def test_help_runs_as_a_module():
    out = subprocess.run([PYTHON, "-m", "supjax_app", "train", "--help"], env=subprocess_env(),
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    for word in ("--quick", "--resume", "--checkpoint-every", "fashion-mnist", "examples:"):
        assert word in out.stdout


def test_a_command_is_required(capsys):
    with pytest.raises(SystemExit) as exc:
        main([])
    assert exc.value.code == 2
    assert "COMMAND" in capsys.readouterr().err


@pytest.mark.parametrize("args, words", [
    (["--epochs", "0"], ["--epochs", "[1, 1000]", "got 0"]),
    (["--sparse-end", "1.5"], ["--sparse-end", "(0, 1)", "1.5"]),
    (["--lr", "0"], ["--lr", "(0, 0.5]"]),
    (["--batch-size", "0"], ["--batch-size", ">= 1"]),
    (["--epochs", "3", "--start-epoch", "5"], ["--start-epoch", "[1, 3]"]),
    (["--attacks", "lr,svm"], ["--attacks", "lr, knn, mlp, rf"]),
    (["--checkpoint-every", "0"], ["--checkpoint-every", ">= 1"]),
    (["--epochs", "ten"], ["--epochs", "integer", "'ten'"]),
])
def test_bad_options_exit_2_naming_the_option(capsys, args, words):
    with pytest.raises(SystemExit) as exc:
        main(["train", *args])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    for word in words:
        assert word in err


def test_missing_data_set_says_how_to_get_it(tmp_path, capsys):
    code = main(["train", "--data", "fashion-mnist", "--data-dir", str(tmp_path / "nothing"),
                 "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 1
    assert "never downloads" in err and "apt-get install dataset-fashion-mnist" in err
    assert "train-images-idx3-ubyte" in err
    assert not (tmp_path / "out").exists()


def test_an_idx_dir_without_files_is_reported(tmp_path, capsys):
    (tmp_path / "mnist").mkdir()
    assert main(["train", "--data-dir", str(tmp_path / "mnist"), "--out", str(tmp_path / "o")]) == 1
    assert "lacks some IDX files" in capsys.readouterr().err


def test_digits_take_no_data_dir(tmp_path, capsys):
    assert main(["train", "--data", "digits", "--data-dir", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "--data-dir cannot be used with --data digits" in capsys.readouterr().err


def test_existing_checkpoints_need_resume_and_the_same_options(tmp_path, capsys):
    ck = tmp_path / "ck"
    with Checkpointer(ck / "dense") as c:
        c.save(5, {"w": np.zeros(2)}, {"config": {"epochs": 2}})
    base = ["train", "--quick", "--checkpoint-dir", str(ck), "--out", str(tmp_path / "o")]
    assert main(base) == 2
    assert "already holds checkpoints" in capsys.readouterr().err
    assert main([*base, "--resume"]) == 2
    err = capsys.readouterr().err
    assert "were written with other options" in err and "epochs=2 (now 10)" in err


# ------------------------------------------------------------------ a --quick run, end to end


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("quick") / "report"
    proc = subprocess.run([PYTHON, "-m", "supjax_app", "train", "--quick", "--out", str(out)],
                          env=subprocess_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out, proc.stdout


def test_quick_run_writes_the_report(quick_run):
    out, _ = quick_run
    report = json.loads((out / "report.json").read_text())
    assert report["dataset"] == "digits"
    cfg = report["config"]
    assert cfg["quick"] and cfg["epochs"] == 10 and cfg["sparse_end"] == 0.95 and cfg["lr"] == 0.05
    assert report["seconds"] > 0
    for run in ("dense", "suppressed"):
        r = report[run]
        assert 0.0 <= r["accuracy"] <= 1.0 and r["seconds"] > 0
        assert sorted(r["sparsity"]) == sorted(LAYERS)
        assert list(r["membership_inference"]) == ATTACKS
        for metrics in r["membership_inference"].values():
            assert set(metrics) >= {"precision", "recall", "accuracy", "auc"}
            assert all(0.0 <= metrics[k] <= 1.0 for k in ("precision", "recall", "accuracy", "auc"))
        assert len(r["history"]["test_accuracy"]) == 10
    assert all(v == 0.0 for v in report["dense"]["sparsity"].values())
    # Suppression reached the schedule's end (min_num caps conv1 at 140/150, fc3 at 790/840).
    sup = report["suppressed"]["sparsity"]
    assert sup["conv2/kernel"] > 0.93 and sup["fc1/kernel"] > 0.93 and sup["conv1/kernel"] > 0.9
    assert report["suppressed"]["mask_sparsity"] == sup
    # Accuracy on the 10-class digits test split (chance: 0.1). Measured on this machine:
    # dense 0.876 / suppressed 0.731 (newest JAX), 0.873 / 0.727 (lowest: JAX 0.7.0). The
    # suppressed LeNet5, 93-95 % of its weights zero, keeps most of the dense accuracy: at
    # least 0.6, and within 0.2 of the dense model trained with the same seed and split.
    dense, suppressed = report["dense"]["accuracy"], report["suppressed"]["accuracy"]
    assert dense > 0.8
    assert suppressed > 0.6
    assert dense - suppressed < 0.2
    for run in ("dense", "suppressed"):  # the reported accuracy is the last epoch's
        assert report[run]["accuracy"] == report[run]["history"]["test_accuracy"][-1]


def test_quick_run_draws_readable_plots(quick_run):
    out, _ = quick_run
    for name in ("sparsity.png", "accuracy.png", "roc.png"):
        path = out / name
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        image = matplotlib.image.imread(path)
        assert image.shape[0] >= 400 and image.shape[1] >= 700
        assert image[..., :3].std() > 0.05  # not blank
    md = (out / "report.md").read_text()
    for name in ("sparsity.png", "accuracy.png", "roc.png", "## Membership inference", "loss threshold"):
        assert name in md


def test_quick_run_prints_progress_and_the_table(quick_run):
    _, stdout = quick_run
    assert "dense epoch 10/10" in stdout and "suppressed epoch 10/10" in stdout
    for row in ("test accuracy", "zeros conv1/kernel", "MIA RF AUC", "MIA loss threshold AUC"):
        assert row in stdout
