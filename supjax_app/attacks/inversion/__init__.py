"""Image-inversion attack on a feature extractor, and its metrics (the audit of issue 11).

The attack of MindArmour's ``ImageInversionAttack`` (Mahendran and Vedaldi, 2014,
https://arxiv.org/abs/1412.0035), which MindArmour's Suppress Privacy tutorial uses on the
ReLU output of LeNet5's fc1: knowing only the features ``t = f(image)``, reconstruct the
image by sign-gradient descent from uniform noise. One module per concern:

* :mod:`~supjax_app.attacks.inversion.attack` — the loss, the start images and
  :func:`invert_features` (the reference's formulas, and where this one differs);
* :mod:`~supjax_app.attacks.inversion.metrics` — relative L2, SSIM, the evaluator's
  confidence on the true label (the reference's ``evaluate``) and :func:`bootstrap_interval`;
* :mod:`~supjax_app.attacks.inversion.protocol` — :func:`run_inversion`, the paired protocol
  over several models per arm (dense, suppressed, ...), and its :class:`InversionResult`;
* :mod:`~supjax_app.attacks.inversion.outputs` — :func:`write_inversion_outputs` (npz, png)
  and :func:`inversion_markdown`;
* :mod:`~supjax_app.attacks.inversion.checks` — the argument checks they share.

Every public name is importable from here.

>>> import jax.numpy as jnp
>>> x = jnp.linspace(0.0, 1.0, 64).reshape(1, 8, 8, 1)
>>> float(relative_l2(x, x)[0]), float(ssim(x, x)[0])
(0.0, 1.0)
"""

from __future__ import annotations

from supjax_app.attacks.inversion.attack import (
    DEFAULT_WEIGHTS,
    PIXEL_BOUNDS,
    TUTORIAL_WEIGHTS,
    inversion_loss,
    invert_features,
    start_images,
)
from supjax_app.attacks.inversion.metrics import (
    METRICS,
    SSIM_DATA_RANGE,
    Interval,
    InversionScores,
    bootstrap_interval,
    evaluate_inversion,
    relative_l2,
    ssim,
    true_label_confidence,
)
from supjax_app.attacks.inversion.outputs import inversion_markdown, write_inversion_outputs
from supjax_app.attacks.inversion.protocol import GROUPS, InversionResult, run_inversion

__all__ = [
    "DEFAULT_WEIGHTS",
    "GROUPS",
    "METRICS",
    "PIXEL_BOUNDS",
    "SSIM_DATA_RANGE",
    "TUTORIAL_WEIGHTS",
    "Interval",
    "InversionResult",
    "InversionScores",
    "bootstrap_interval",
    "evaluate_inversion",
    "inversion_loss",
    "inversion_markdown",
    "invert_features",
    "relative_l2",
    "run_inversion",
    "ssim",
    "start_images",
    "true_label_confidence",
    "write_inversion_outputs",
]
