"""What ``supjax train --dp`` reports: model sizes dense vs sparse, and the Markdown table.

Sizes: ``dense_bytes`` stores every parameter as float32; ``sparse_bytes`` stores each
weight kernel as its non-zeros (float32 value + int32 flat index, 8 bytes each) and the
rest dense — a flat COO layout. The suppressed model also gets ``supjax.export_sparse``'s
figure (BCOO: one int32 index per dimension, so 12 bytes per kept fc weight, 20 per conv one).

>>> import numpy as np
>>> s = model_size({"fc": {"kernel": np.array([[0.0, 2.0], [0.0, 0.0]]), "bias": np.zeros(2)}})
>>> s["parameters"], s["nonzeros"], s["dense_bytes"], s["sparse_bytes"]
(6, 1, 24, 16)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import jax
import numpy as np

__all__ = [
    "MODELS",
    "model_size",
    "write_markdown",
]

#: The three models of the report, in order.
MODELS = ("non_private_dense", "dp_dense", "dp_suppressed")

_VALUE_BYTES, _INDEX_BYTES = 4, 4


def model_size(params: Any) -> dict[str, int]:
    """Parameters, non-zeros, float32 dense bytes and sparse (COO kernels) bytes of ``params``.

    >>> model_size({"conv": {"kernel": np.ones((2, 2)), "bias": np.ones(1)}})["sparse_bytes"]
    36
    """
    flat = jax.tree_util.tree_flatten_with_path(jax.device_get(params))[0]
    total = nonzeros = sparse = 0
    for path, leaf in flat:
        leaf = np.asarray(leaf)
        nz = int(np.count_nonzero(leaf))
        total += leaf.size
        nonzeros += nz
        kernel = str(getattr(path[-1], "key", path[-1])) == "kernel"
        sparse += nz * (_VALUE_BYTES + _INDEX_BYTES) if kernel else leaf.size * _VALUE_BYTES
    return {"parameters": total, "nonzeros": nonzeros, "dense_bytes": total * _VALUE_BYTES, "sparse_bytes": sparse}


def _eps(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def write_markdown(report: Mapping[str, Any], path: str | Path) -> Path:
    """The report as a Markdown table (one row per model) and its settings; return the path.

    >>> import os, tempfile
    >>> row = {"test_accuracy": 0.9, "epsilon": {"rdp": None, "pld": None}, "zeros": {"fc1/kernel": 0.0},
    ...        "size": model_size({"k": np.ones(2)}), "seconds": 1.0}
    >>> p = write_markdown({"models": {"non_private_dense": row}, "command": "supjax train --dp",
    ...                     "settings": {"epochs": 1}, "notes": ["n"]}, os.path.join(tempfile.mkdtemp(), "r.md"))
    >>> "| non_private_dense | 90.00 % |" in p.read_text()
    True
    """
    models = report["models"]
    layers = list(next(iter(models.values()))["zeros"])
    averaged = any(row.get("accuracy_by_average") for row in models.values())
    head = (["model", "test acc"] + (["released (last iterate acc)"] if averaged else []) + ["ε RDP", "ε PLD"]
            + [f"zeros {p.split('/')[0]}" for p in layers]
            + ["non-zeros / params", "dense bytes", "sparse bytes (COO)", "export_sparse bytes (BCOO)", "train s"])
    lines = [f"# supjax train --dp: {report.get('dataset', '')}", "", f"`{report['command']}`", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, row in models.items():
        size = row["size"]
        scores = row.get("accuracy_by_average")
        released = [f"{row['released']} ({100 * scores['last']:.2f} %)" if scores else "-"] if averaged else []
        cells = ([name, f"{100 * row['test_accuracy']:.2f} %"] + released
                 + [_eps(row["epsilon"]["rdp"]), _eps(row["epsilon"]["pld"])]
                 + [f"{100 * row['zeros'][p]:.1f} %" for p in layers]
                 + [f"{size['nonzeros']} / {size['parameters']}", str(size["dense_bytes"]), str(size["sparse_bytes"]),
                    "-" if row.get("export_sparse") is None else str(row["export_sparse"]["sparse_bytes"]),
                    f"{row['seconds']:.0f}"])
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "## Settings", ""]
    lines += [f"- {k}: {v}" for k, v in report["settings"].items()]
    lines += ["", "## Notes", ""] + [f"- {n}" for n in report["notes"]]
    path = Path(path)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
