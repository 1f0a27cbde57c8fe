"""``supjax audit``: the quick run end to end (files, numbers recomputable from scores.npz), bad options."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from supjax_app.attacks.lira import make_keep_matrix
from supjax_app.audit.core import summarise_scores
from tests.test_train_support import subprocess_env

FILES = ("report.json", "report.md", "scores.npz", "roc.png", "frontier.png", "scores.png",
         "inversion.npz", "inversion.png")


@pytest.fixture(scope="module")
def quick_audit(tmp_path_factory):
    out = tmp_path_factory.mktemp("audit")
    proc = subprocess.run([sys.executable, "-m", "supjax_app", "audit", "--quick", "--out", str(out)],
                          env=subprocess_env(), capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, json.loads((out / "report.json").read_text()), proc


def test_quick_audit_writes_every_file(quick_audit):
    out, report, proc = quick_audit
    for name in FILES:
        assert (out / name).stat().st_size > 0, name
    assert "| arm | test acc |" in proc.stdout  # the summary table is printed


def test_report_has_every_arm_attack_and_metric(quick_audit):
    _, report, _ = quick_audit
    assert set(report["arms"]) == {"dense", "suppressed@0.95", "pruned@0.95", "dpsgd", "dpsgd_suppressed"}
    for name, arm in report["arms"].items():
        assert set(arm["attacks"]) == {"loss", "lira_offline", "lira_online", "rmia"}
        m = arm["attacks"]["lira_online"]["all"]
        for key in ("auc", "advantage", "tpr@0.001", "tpr@0.01", "epsilon_lower_bound"):
            assert np.isfinite(m[key]), (name, key)
        lo, hi = m["tpr@0.01_ci"]
        assert lo <= m["tpr@0.01"] <= hi
        assert 0 <= arm["test_accuracy"]["mean"] <= 1
        assert (arm["epsilon"] is not None) == name.startswith("dpsgd")
    assert report["arms"]["suppressed@0.95"]["zeros"]["mean"] > 0.9
    assert report["arms"]["dense"]["zeros"]["mean"] == 0.0
    assert report["control"]["attack"] == "lira_online"
    assert report["versions"]["jax"] and report["config"]["quick"] is True
    assert "dense" in report["inversion"]["summary"]


def test_metrics_can_be_recomputed_from_scores_npz(quick_audit):
    out, report, _ = quick_audit
    data = np.load(out / "scores.npz")
    keep, canary = data["keep"], data["canary"]
    assert keep.shape == (4, 400) and (keep.sum(0) == 2).all() and canary.sum() == 20
    for arm in ("dense", "suppressed@0.95"):
        scores = data[f"{arm}/lira_online"]
        auc = roc_auc_score(keep.ravel(), scores.ravel())
        assert auc == pytest.approx(report["arms"][arm]["attacks"]["lira_online"]["all"]["auc"], abs=1e-12)
    inv = np.load(out / "inversion.npz")
    assert inv["reconstructions"].shape[:3] == (5, 3, 20)  # arms, target models, 10 members + 10 non-members


def test_summarise_scores_on_a_known_separation():
    keep = make_keep_matrix(8, 4000, seed=1)
    rng = np.random.default_rng(0)
    scores = rng.normal(size=keep.shape) + 2.0 * keep  # d = 2: TPR at FPR f is Phi(Phi^-1(f) + 2)
    canary = np.zeros(4000, bool)
    canary[:200] = True
    m = summarise_scores(scores, keep, canary, (0.01,), bootstrap=50)
    from scipy.stats import norm

    expected = norm.cdf(norm.ppf(0.01) + 2.0)
    assert m["all"]["tpr@0.01"] == pytest.approx(expected, abs=0.03)
    assert m["all"]["auc"] == pytest.approx(norm.cdf(2.0 / np.sqrt(2)), abs=0.01)
    assert m["canaries"]["pairs"] == 8 * 200


@pytest.mark.parametrize("args, option", [
    (["--models", "1"], "--models"), (["--fpr", "0"], "--fpr"), (["--fpr", "1.5"], "--fpr"),
    (["--canary-fraction", "0.7"], "--canary-fraction"), (["--arms", "dense,magic"], "--arms"),
    (["--attacks", "oracle"], "--attacks"), (["--pool", "99999"], "--pool"),
])
def test_bad_options_fail_before_any_training(args, option, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "supjax_app", "audit", "--quick", "--out", str(tmp_path / "o"), *args],
                          env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert option in proc.stderr
    assert "validation accuracy" not in proc.stderr  # nothing was trained
    assert not (tmp_path / "o").exists()
