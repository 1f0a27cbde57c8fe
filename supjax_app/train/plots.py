"""PNG plots of a ``supjax train`` report (matplotlib, Agg backend: no display needed).

* ``sparsity.png``: target and actual sparsity per layer over the steps of the suppressed run;
* ``accuracy.png``: test accuracy per epoch of both runs;
* ``roc.png``: ROC curves of the membership-inference attacks on both models.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from supjax_app.train.report import ATTACK_LABELS, RUNS  # noqa: E402

__all__ = [
    "plot_accuracy",
    "plot_roc",
    "plot_sparsity",
    "write_plots",
]

_DPI = 110


def _save(fig: Any, path: str | os.PathLike) -> Path:
    path = Path(path)
    fig.tight_layout()
    fig.savefig(path, dpi=_DPI)
    plt.close(fig)
    return path


def plot_sparsity(report: Mapping[str, Any], path: str | os.PathLike) -> Path:
    """Target and actual (exactly-zero) sparsity per layer over the suppressed run's steps.

    >>> import os, tempfile
    >>> from supjax_app.train.report import _EXAMPLE_REPORT as report  # a small report.json, loaded
    >>> path = plot_sparsity(report, os.path.join(tempfile.mkdtemp(), "sparsity.png"))
    >>> path.name, path.read_bytes()[1:4]
    ('sparsity.png', b'PNG')
    """
    hist = report["suppressed"]["history"]
    cfg = report["config"]
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    steps = hist["steps"]
    for layer, values in hist["layer_sparsity"].items():
        ax.plot(steps, values, label=f"actual {layer}", linewidth=1.4)
    ax.plot(steps, hist["target_sparsity"], "k--", label="target", linewidth=1.6)
    start_step = cfg.get("schedule", {}).get("start_step")
    if start_step:
        ax.axvline(start_step, color="grey", linestyle=":", linewidth=1)
        ax.annotate("suppression starts", (start_step, 0.5), rotation=90, va="center", ha="right",
                    color="grey", fontsize=8)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("fraction of weights that are zero")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(f"Suppressed LeNet5 on {report['dataset']}: sparsity per layer")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    return _save(fig, path)


def plot_accuracy(report: Mapping[str, Any], path: str | os.PathLike) -> Path:
    """Test accuracy after each epoch, dense and suppressed.

    >>> import os, tempfile
    >>> from supjax_app.train.report import _EXAMPLE_REPORT as report  # a small report.json, loaded
    >>> path = plot_accuracy(report, os.path.join(tempfile.mkdtemp(), "accuracy.png"))
    >>> path.name, path.read_bytes()[1:4]
    ('accuracy.png', b'PNG')
    """
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for run, style in zip(RUNS, ("o-", "s-")):
        acc = report[run]["history"]["test_accuracy"]
        ax.plot(range(1, len(acc) + 1), [100 * a for a in acc], style, label=run, markersize=4)
    start = report["config"].get("start_epoch")
    if start:
        ax.axvspan(start - 1, report["config"]["epochs"], color="orange", alpha=0.1,
                   label="suppression phase")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epochs done")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"LeNet5 on {report['dataset']}: test accuracy per epoch")
    ax.grid(alpha=0.3)
    ax.legend(loc="best")
    return _save(fig, path)


def plot_roc(report: Mapping[str, Any], path: str | os.PathLike) -> Path:
    """ROC curves of every attack, one panel per model, AUC in the legend.

    >>> import os, tempfile
    >>> from supjax_app.train.report import _EXAMPLE_REPORT as report  # a small report.json, loaded
    >>> path = plot_roc(report, os.path.join(tempfile.mkdtemp(), "roc.png"))
    >>> path.name, path.read_bytes()[1:4]
    ('roc.png', b'PNG')
    """
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.6), sharey=True)
    for ax, run in zip(axes, RUNS):
        roc = report[run]["membership_roc"]
        mia = report[run]["membership_inference"]
        for name, curve in roc.items():
            label = f"{ATTACK_LABELS.get(name, name)} (AUC {mia[name]['auc']:.3f})"
            ax.plot(curve["fpr"], curve["tpr"], label=label, linewidth=1.4)
        ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
        ax.set_title(f"{run} model (test accuracy {100 * report[run]['accuracy']:.1f}%)")
        ax.set_xlabel("false positive rate")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_aspect("equal")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    axes[0].set_ylabel("true positive rate")
    fig.suptitle(f"Membership inference on {report['dataset']}")
    return _save(fig, path)


def write_plots(report: Mapping[str, Any], out_dir: str | os.PathLike) -> list[Path]:
    """Write the three PNGs into ``out_dir``; return their paths.

    >>> import tempfile
    >>> from supjax_app.train.report import _EXAMPLE_REPORT as report  # a small report.json, loaded
    >>> out = tempfile.mkdtemp()
    >>> [path.name for path in write_plots(report, out)], sorted(os.listdir(out))
    (['sparsity.png', 'accuracy.png', 'roc.png'], ['accuracy.png', 'roc.png', 'sparsity.png'])
    """
    out = Path(out_dir)
    return [
        plot_sparsity(report, out / "sparsity.png"),
        plot_accuracy(report, out / "accuracy.png"),
        plot_roc(report, out / "roc.png"),
    ]
