"""The audit's PNGs: ROC on log-log axes per attack, the privacy-utility frontier, dense vs suppressed scores.

>>> import matplotlib
>>> matplotlib.get_backend().lower()
'agg'
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.metrics import roc_curve  # noqa: E402

from supjax_app.audit.core import AuditResult  # noqa: E402

__all__ = ["plot_frontier", "plot_roc", "plot_score_pairs", "write_plots"]


def _color(i: int) -> Any:
    """A distinct colour for the ``i``-th arm (tab10, then tab20's lighter shades: 20 arms apart)."""
    return plt.cm.tab10(i) if i < 10 else plt.cm.tab20(2 * (i - 10) % 20 + 1)


def plot_roc(result: AuditResult, path: Path) -> Path:
    """One panel per attack, one curve per arm, pooled over targets, log-log axes."""
    attacks = list(next(iter(result.scores.values())))
    fig, axes = plt.subplots(1, len(attacks), figsize=(4.2 * len(attacks), 4), squeeze=False)
    member = result.keep.ravel()
    floor = 1.0 / max(1, (~member).sum())
    for ax, attack in zip(axes[0], attacks):
        for i, (arm, by) in enumerate(result.scores.items()):
            fpr, tpr, _ = roc_curve(member, by[attack].ravel())
            ax.plot(np.maximum(fpr, floor), np.maximum(tpr, floor), label=arm, lw=1.2, color=_color(i))
        ax.plot([floor, 1], [floor, 1], "k:", lw=0.8)
        ax.set(xscale="log", yscale="log", xlim=(floor, 1), ylim=(floor, 1), title=attack,
               xlabel="false-positive rate", ylabel="true-positive rate")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_frontier(report: Mapping[str, Any], path: Path) -> Path:
    """Test accuracy against TPR at 1 % FPR (summary attack): one point per arm, DP-SGD as a curve over ε."""
    attack = report["main_attack"]
    fig, ax = plt.subplots(figsize=(6, 4.5))
    dp = []
    for i, (name, arm) in enumerate(report["arms"].items()):
        m = arm["attacks"][attack]["all"]
        x, y = m.get("tpr@0.01"), arm["test_accuracy"]["mean"]
        if x is None:
            continue
        lo, hi = m["tpr@0.01_ci"]
        ax.errorbar([x], [y], xerr=[[x - lo], [hi - x]], yerr=[[arm["test_accuracy"]["std"]]] * 2, fmt="o",
                    capsize=3, label=name, color=_color(i))
        if name.startswith("dpsgd") and not name.startswith("dpsgd_suppressed") and arm["epsilon"]:
            dp.append((x, y, arm["epsilon"]["rdp"]))
    if len(dp) > 1:
        dp.sort()
        ax.plot([d[0] for d in dp], [d[1] for d in dp], "k--", lw=0.8)
        for x, y, eps in dp:
            ax.annotate(f"ε={eps:.1f}", (x, y), fontsize=7, xytext=(4, -10), textcoords="offset points")
    ax.axvline(0.01, color="grey", lw=0.6, ls=":")
    ax.set(xlabel=f"TPR at 1 % FPR ({attack}); left is more private", ylabel="test accuracy",
           title="privacy-utility frontier")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_score_pairs(result: AuditResult, path: Path, attack: str, other: str) -> Path | None:
    """Per example, model 0 as target: the dense arm's score against ``other``'s (members, non-members, canaries)."""
    if "dense" not in result.scores or other not in result.scores:
        return None
    x, y = result.scores["dense"][attack][0], result.scores[other][attack][0]
    member, canary = result.keep[0], result.canary
    fig, ax = plt.subplots(figsize=(5, 5))
    for mask, label, style in ((~member & ~canary, "non-member", "C0."), (member & ~canary, "member", "C1."),
                               (canary & ~member, "canary, non-member", "C2x"), (canary & member, "canary, member", "C3x")):
        ax.plot(x[mask], y[mask], style, ms=3, alpha=0.6, label=label)
    lo, hi = np.nanmin([x.min(), y.min()]), np.nanmax([x.max(), y.max()])
    ax.plot([lo, hi], [lo, hi], "k:", lw=0.8)
    ax.set(xlabel=f"dense: {attack} score", ylabel=f"{other}: {attack} score", title="per-example score, model 0")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_plots(report: Mapping[str, Any], result: AuditResult, out: Path) -> list[Path]:
    """``roc.png``, ``frontier.png`` and ``scores.png`` (dense vs the first suppressed arm) in ``out``."""
    paths = [plot_roc(result, out / "roc.png"), plot_frontier(report, out / "frontier.png")]
    suppressed = [n for n in result.scores if n.startswith("suppressed")]
    if suppressed:
        pair = plot_score_pairs(result, out / "scores.png", report["main_attack"], suppressed[0])
        if pair is not None:
            paths.append(pair)
    return paths
