"""The report of ``supjax train``: ``report.json``, ``report.md`` and the console table.

Everything is built from one JSON-ready dict (see :func:`run_summary`), so a saved
``report.json`` is enough to redraw the table, the Markdown and the plots.

>>> rows = comparison_rows({"dense": _EXAMPLE_RUN, "suppressed": _EXAMPLE_RUN})
>>> rows[0]
('test accuracy', '97.50%', '97.50%')
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import jax
import numpy as np

from supjax_app.train.membership import METRICS

__all__ = [
    "ATTACK_LABELS",
    "RUNS",
    "LeakingMasksError",
    "check_masks_hold",
    "comparison_rows",
    "model_size",
    "print_table",
    "run_summary",
    "write_json",
    "write_markdown",
    "zero_fractions",
]

#: The two runs of a report, in display order.
RUNS = ("dense", "suppressed")
#: Display names of the attacks.
ATTACK_LABELS = {"lr": "LR", "knn": "KNN", "mlp": "MLP", "rf": "RF", "loss_threshold": "loss threshold"}

_EXAMPLE_RUN = {
    "accuracy": 0.975,
    "sparsity": {"fc3/kernel": 0.5},
    "membership_inference": {"lr": {"precision": 0.5, "recall": 0.5, "accuracy": 0.5, "auc": 0.52}},
    "seconds": 1.0,
}

# A whole (small) report, as ``supjax_app.train.app.run`` returns it, for the examples.
_EXAMPLE_REPORT = {
    "dataset": "digits",
    "data": {"train_size": 1437, "test_size": 360, "attack_members": 200, "attack_nonmembers": 200},
    "config": {"seed": 0, "epochs": 2, "batch_size": 32, "lr": 0.05, "start_epoch": 1, "mask_times": 6,
               "sparse_end": 0.9, "schedule": {"start_step": 1}},
    "seconds": 2.0,
    "dense": {
        **_EXAMPLE_RUN,
        "sparsity": {"fc3/kernel": 0.0},
        "history": {"test_accuracy": [0.9, 0.975], "steps": [44, 88], "target_sparsity": [0.0, 0.0],
                    "layer_sparsity": {"fc3/kernel": [0.0, 0.0]}},
        "membership_roc": {"lr": {"fpr": [0.0, 0.5, 1.0], "tpr": [0.0, 0.54, 1.0]}},
    },
    "suppressed": {
        **_EXAMPLE_RUN,
        "accuracy": 0.95,
        "sparsity": {"fc3/kernel": 0.9},
        "membership_inference": {"lr": {"precision": 0.5, "recall": 0.5, "accuracy": 0.5, "auc": 0.5}},
        "history": {"test_accuracy": [0.85, 0.95], "steps": [44, 88], "target_sparsity": [0.5, 0.9],
                    "layer_sparsity": {"fc3/kernel": [0.5, 0.9]}},
        "membership_roc": {"lr": {"fpr": [0.0, 0.5, 1.0], "tpr": [0.0, 0.5, 1.0]}},
    },
}


def zero_fractions(params: Any, paths: Sequence[str]) -> dict[str, float]:
    """Fraction of exactly-zero weights of each parameter in ``paths``.

    >>> import numpy as np
    >>> zero_fractions({"w": np.array([0.0, 1.0])}, ["w"])
    {'w': 0.5}
    """
    from supjax.layers import leaf_indices

    leaves = jax.tree_util.tree_leaves(params)
    return {p: float(np.mean(np.asarray(jax.device_get(leaves[i])) == 0))
            for p, i in zip(paths, leaf_indices(params, paths))}


def model_size(params: Any, sup: Any, paths: Sequence[str]) -> dict[str, int]:
    """Bytes of the model stored dense, and with its suppressed layers as BCOO.

    ``sup`` is the run's ``SuppressState`` (``None`` for a dense run: both sizes are the
    dense one); ``paths`` the suppressed layers. Built on :func:`supjax.export_sparse`.

    >>> import jax.numpy as jnp
    >>> model_size({"w": jnp.ones((10, 10))}, None, ["w"])
    {'dense_bytes': 400, 'sparse_bytes': 400}
    """
    from supjax import LayerRule, export_sparse

    if sup is None:
        dense = sum(int(np.asarray(leaf).nbytes) for leaf in jax.tree_util.tree_leaves(params))
        return {"dense_bytes": dense, "sparse_bytes": dense}
    _, report = export_sparse(params, sup, [LayerRule(p) for p in paths])
    return {"dense_bytes": report.dense_bytes, "sparse_bytes": report.sparse_bytes}


class LeakingMasksError(ValueError):
    """A suppressed run whose masked weights are not zero (``supjax train`` prints it as an error).

    >>> issubclass(LeakingMasksError, ValueError)
    True
    """


def check_masks_hold(params: Any, sup: Any, rules: Sequence[Any]) -> None:
    """Refuse (:class:`LeakingMasksError`) to report a run whose masked weights are not zero.

    ``sup`` is the run's :class:`supjax.SuppressState` (``None`` for a dense run); a layer
    with ``leaked > 0`` would make the report's sparsity columns disagree (see
    :func:`supjax.format_report`'s warning for the likely causes).

    >>> import jax.numpy as jnp, optax, supjax
    >>> rules = [supjax.LayerRule("w")]
    >>> state = supjax.suppress(rules, supjax.SuppressSchedule.from_steps(1, 4, 2)).init({"w": jnp.ones(4)})
    >>> check_masks_hold({"w": jnp.ones(4)}, state._replace(leaked=jnp.array([1])), rules)
    Traceback (most recent call last):
    supjax_app.train.report.LeakingMasksError: refusing to report a run whose masks leak (1 masked weights not zero in w): ...
    """
    from supjax import format_report, sparsity_report

    if sup is None:
        return
    rows = sparsity_report(params, sup, rules)
    if any(r.leaked for r in rows):
        where = ", ".join(f"{r.leaked} masked weights not zero in {r.path}" for r in rows if r.leaked)
        warnings = [line for line in format_report(rows).splitlines() if line.startswith("warning: ")]
        raise LeakingMasksError(f"refusing to report a run whose masks leak ({where}): " + " ".join(warnings))


def run_summary(
    accuracy: float,
    train_accuracy: float,
    sparsity: Mapping[str, float],
    membership: Mapping[str, Mapping[str, float]],
    roc: Mapping[str, Any],
    history: Mapping[str, Any],
    seconds: float,
    eval_seconds: float,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """One run's part of the report (``report["dense"]`` or ``report["suppressed"]``).

    >>> from supjax_app.train.loop import History
    >>> run = run_summary(accuracy=0.95, train_accuracy=0.99, sparsity={"fc3/kernel": 0.9},
    ...                   membership={"lr": {"auc": 0.52}}, roc={}, history=History(steps=[44]).to_json(),
    ...                   seconds=12.0, eval_seconds=1.5, extra={"operations": 6})
    >>> run["accuracy"], run["operations"], sorted(run["history"])
    (0.95, 6, ['layer_sparsity', 'steps', 'target_sparsity', 'test_accuracy', 'train_accuracy', 'train_loss'])
    """
    out = {
        "accuracy": float(accuracy),
        "train_accuracy": float(train_accuracy),
        "sparsity": dict(sparsity),
        "membership_inference": {k: dict(v) for k, v in membership.items()},
        "membership_roc": dict(roc),
        "history": {k: history[k] for k in ("test_accuracy", "train_loss", "train_accuracy", "steps",
                                            "target_sparsity", "layer_sparsity")},
        "seconds": float(seconds),
        "eval_seconds": float(eval_seconds),
    }
    out.update(extra or {})
    return out


def write_json(report: Mapping[str, Any], path: str | os.PathLike) -> Path:
    """Write ``report`` as indented JSON; return the path.

    >>> import os, tempfile
    >>> path = write_json({"dataset": "digits", "seconds": 1.5}, os.path.join(tempfile.mkdtemp(), "report.json"))
    >>> path.name, json.loads(path.read_text())
    ('report.json', {'dataset': 'digits', 'seconds': 1.5})
    """
    path = Path(path)
    path.write_text(json.dumps(report, indent=2) + "\n")
    return path


def _pct(x: float) -> str:
    return f"{100.0 * x:.2f}%"


def comparison_rows(report: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """``(what, dense, suppressed)`` rows: accuracy, per-layer sparsity, attack AUCs, time.

    >>> for row in comparison_rows(_EXAMPLE_REPORT):
    ...     print(row)
    ('test accuracy', '97.50%', '95.00%')
    ('zeros fc3/kernel', '0.00%', '90.00%')
    ('MIA LR AUC', '0.520', '0.500')
    ('training seconds (fit loop)', '1.0', '1.0')
    """
    dense, sup = report["dense"], report["suppressed"]
    rows = [("test accuracy", _pct(dense["accuracy"]), _pct(sup["accuracy"]))]
    if "train_accuracy" in dense:
        rows.append(("train accuracy", _pct(dense["train_accuracy"]), _pct(sup["train_accuracy"])))
    for path in sup["sparsity"]:
        rows.append((f"zeros {path}", _pct(dense["sparsity"].get(path, 0.0)), _pct(sup["sparsity"][path])))
    if "model_size" in sup:  # dense storage vs the suppressed layers as BCOO (supjax.export_sparse)
        size = sup["model_size"]
        rows.append(("model size, KiB (sparse layers as BCOO)", f"{size['dense_bytes'] / 1024:.1f}",
                     f"{size['sparse_bytes'] / 1024:.1f} ({size['sparse_bytes'] / size['dense_bytes']:.1%})"))
    for name in sup["membership_inference"]:
        label = ATTACK_LABELS.get(name, name)
        d = dense["membership_inference"].get(name, {})
        s = sup["membership_inference"][name]
        rows.append((f"MIA {label} AUC", f"{d.get('auc', float('nan')):.3f}", f"{s['auc']:.3f}"))
    rows.append(("training seconds (fit loop)", f"{dense['seconds']:.1f}", f"{sup['seconds']:.1f}"))
    return rows


def print_table(report: Mapping[str, Any], console: Any = None) -> None:
    """Print the comparison table with rich (to ``console``, a ``rich.console.Console``).

    >>> import io
    >>> from rich.console import Console
    >>> console = Console(file=io.StringIO(), width=100)
    >>> print_table(_EXAMPLE_REPORT, console)
    >>> text = console.file.getvalue()
    >>> "dense vs suppressed on digits" in text, "MIA LR AUC" in text, "90.00%" in text
    (True, True, True)
    """
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    table = Table(title=f"supjax: dense vs suppressed on {report['dataset']}")
    table.add_column("metric")
    table.add_column("dense", justify="right")
    table.add_column("suppressed", justify="right")
    for row in comparison_rows(report):
        table.add_row(*row)
    console.print(table)


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def write_markdown(report: Mapping[str, Any], path: str | os.PathLike, plots: Sequence[str] = ()) -> Path:
    """Write a Markdown version of the report, embedding the plots (file names in ``plots``).

    >>> import os, tempfile
    >>> path = write_markdown(_EXAMPLE_REPORT, os.path.join(tempfile.mkdtemp(), "report.md"), ["roc.png"])
    >>> lines = path.read_text().splitlines()
    >>> lines[0], "| MIA LR AUC | 0.520 | 0.500 |" in lines, lines[-1]
    ('# supjax report: digits', True, '![roc](roc.png)')
    """
    cfg = report["config"]
    data = report.get("data", {})
    lines = [
        f"# supjax report: {report['dataset']}",
        "",
        f"LeNet5 trained twice with the same seed ({cfg['seed']}) and data split: a dense baseline "
        "and a run with Suppress Privacy (`optax.chain(optax.sgd(lr), supjax.suppress(...))`).",
        "",
        "## Setup",
        "",
    ]
    setup = [
        ("data set", f"{report['dataset']} ({data.get('train_size', '?')} train / {data.get('test_size', '?')} test)"),
        ("epochs, batch size, learning rate", f"{cfg['epochs']}, {cfg['batch_size']}, {cfg['lr']}"),
        ("suppression", f"epochs {cfg['start_epoch']}-{cfg['epochs']}, {cfg['mask_times']} operations, "
                        f"sparse_end {cfg['sparse_end']}"),
        ("attack split", f"{data.get('attack_members', '?')} members (train) vs "
                         f"{data.get('attack_nonmembers', '?')} non-members (test)"),
        ("wall time", f"{report['seconds']:.1f} s"),
    ]
    lines += _md_table(["setting", "value"], setup)
    lines += ["", "## Results", ""]
    lines += _md_table(["metric", "dense", "suppressed"], comparison_rows(report))
    lines += ["", "## Membership inference", "",
              "Attack-test metrics (label 1 = member). AUC near 0.5 means the attack cannot tell "
              "members from non-members.", ""]
    rows = []
    for run in RUNS:
        for name, m in report[run]["membership_inference"].items():
            rows.append([run, ATTACK_LABELS.get(name, name)] + [f"{m[k]:.3f}" for k in METRICS])
    lines += _md_table(["model", "attack", *METRICS], rows)
    if plots:
        lines += ["", "## Plots", ""]
        lines += [f"![{Path(p).stem}]({Path(p).name})" for p in plots]
    path = Path(path)
    path.write_text("\n".join(lines) + "\n")
    return path
