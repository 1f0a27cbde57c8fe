"""The ``inversion`` section of ``supjax audit``: the paired image-inversion attack on every arm.

Models ``0 .. INVERSION_MODELS - 1`` of every arm are the targets (model ``m`` of every arm
trained on the same examples), with 30 members and 30 non-members each (10 and 10 with
``--quick``), reconstructed from fc1's ReLU output (:mod:`supjax_app.attacks.inversion`).

>>> INVERSION_MODELS
3
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Callable

from supjax_app.attacks.inversion import (
    DEFAULT_WEIGHTS, TUTORIAL_WEIGHTS, InversionResult, inversion_markdown, run_inversion, write_inversion_outputs,
)
from supjax_app.audit.config import AuditConfig
from supjax_app.audit.core import AuditResult
from supjax_app.audit.split import AuditData
from supjax_app.models import LeNet5, lenet5_features

__all__ = ["INVERSION_MODELS", "inversion_json", "inversion_section", "write_inversion"]

#: Target models per arm of the inversion attack.
INVERSION_MODELS = 3


def inversion_section(model: LeNet5, result: AuditResult, data: AuditData, evaluator: Callable,
                      evaluator_accuracy: float, cfg: AuditConfig) -> dict[str, Any]:
    """Run the paired inversion on the first models of every arm; return ``{"result", "summary", "markdown"}``."""
    n_models = min(INVERSION_MODELS, len(result.keep))
    arms = {name: outcome.params[:n_models] for name, outcome in result.outcomes.items()}
    per_group = 10 if cfg.quick else 30
    inv = run_inversion(functools.partial(lenet5_features, model), arms, data.x_pool, data.y_pool_true,
                        result.keep[:n_models], evaluator, n_members=per_group, n_nonmembers=per_group,
                        iters=100, weights=TUTORIAL_WEIGHTS if cfg.inversion_weights == "tutorial" else DEFAULT_WEIGHTS,
                        reference="dense" if "dense" in arms else next(iter(arms)),
                        seed=cfg.seed, n_boot=cfg.bootstrap)
    text = (f"Evaluator: a LeNet5 trained on the {len(data.y_val)} validation examples (disjoint from the pool), "
            f"test accuracy {100 * evaluator_accuracy:.2f} %. Targets: models 0-{n_models - 1} of each arm, "
            f"{per_group} members and {per_group} non-members each, the same images and start for every arm.\n\n")
    return {"result": inv, "summary": inversion_json(inv, evaluator_accuracy),
            "markdown": text + inversion_markdown(inv)}


def inversion_json(inv: InversionResult, evaluator_accuracy: float) -> dict[str, Any]:
    """The inversion numbers as JSON-ready values (each interval as mean, low, high)."""
    def intervals(tree: dict) -> dict:
        return {arm: {group: {metric: list(map(float, iv)) for metric, iv in metrics.items()}
                      for group, metrics in groups.items()} for arm, groups in tree.items()}

    return {
        "evaluator_test_accuracy": evaluator_accuracy,
        "settings": {k: (list(v) if isinstance(v, tuple) else v) for k, v in inv.settings.items()},
        "summary": intervals(inv.summary),
        "paired_difference_vs_" + inv.reference: intervals(inv.paired),
        "original_confidence": {g: list(map(float, iv)) for g, iv in inv.original_confidence.items()},
        "dead_targets": int(inv.dead_targets.sum()),
    }


def write_inversion(section: dict[str, Any], out: Path) -> list[Path]:
    """``inversion.npz`` and ``inversion.png`` in ``out``."""
    return list(write_inversion_outputs(section["result"], out))
