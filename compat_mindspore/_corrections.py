"""What the correction buffer holds, given supjax's ``delta`` (the next step lands on ``w - delta``).

* update form: ``delta`` itself (subtracted after the optimizer step);
* gradient form: ``delta / lr`` (SGD then lands on ``w - lr * (delta / lr + g)``), computed with
  MindArmour's arithmetic: float64 on the exact path, the weights' dtype on its large-layer path.

Under reference parity the exact path's corrections are recomputed in float64: MindArmour
subtracts its clip targets ``0.005`` and ``upper_bound`` as float64 Python numbers, while
supjax's ``delta`` uses their float32 roundings, and the resulting one-ulp differences change
which clipped weights tie at the next operation. supjax says which rule moved each weight
(``Move``) and where each rule puts it (:func:`supjax.engine.target_magnitudes`); this module
only redoes the arithmetic in MindArmour's precision. No rule is decided here.
"""

from __future__ import annotations

import numpy as np

from supjax.engine import target_magnitudes

__all__ = ["gradient_correction", "reference_gradient_correction"]


def gradient_correction(delta: np.ndarray, lr: float, float64: bool = True) -> np.ndarray:
    """``delta / lr`` rounded to ``delta``'s dtype, divided in float64 (or in that dtype).

    >>> gradient_correction(np.array([0.1], np.float32), 0.05).tolist()
    [2.0]
    """
    if float64:
        return (delta.astype(np.float64) / lr).astype(delta.dtype)
    return delta / np.asarray(lr, dtype=delta.dtype)


def reference_gradient_correction(
    weights: np.ndarray,
    delta: np.ndarray,
    move: np.ndarray,
    threshold: float,
    upper_bound: float,
    lr: float,
) -> np.ndarray:
    """MindArmour's ``(w - target) / lr`` for the exact path, bit for bit (see the module note).

    ``move`` is supjax's :class:`~supjax.engine.Move` code per weight. A weight whose rule puts
    it at ``sign(w) * c`` with ``c`` a constant of the rules (supjax's
    :func:`~supjax.engine.target_magnitudes` read with the threshold in the weights' dtype:
    the clips to ``0.005`` and ``upper_bound``, and the pull to ``0.005`` when the threshold
    is above it) gets ``(float64(w) - sign(w) * c) / lr``, as MindArmour subtracts a Python
    float; where ``c`` is the threshold itself (a float32 in MindArmour too) and for every
    other rule the correction is ``float64(delta) / lr``. ``upper_bound`` is the effective
    bound (``max(0.10, upper_bound)``) as MindArmour holds it.

    >>> from supjax.engine import Move
    >>> w = np.array([0.9, -0.002, 0.3, 0.01], np.float32)
    >>> delta = np.array([w[0] - np.float32(0.35), w[1] + np.float32(0.005), 0.0, w[3]], np.float32)
    >>> move = np.array([Move.UPPER_CLIP, Move.LOWER_CLIP, Move.NONE, Move.SUPPRESSED])
    >>> out = reference_gradient_correction(w, delta, move, 0.01, 0.35, 0.05)
    >>> out.dtype, float(out[0]) == float(np.float32((np.float64(w[0]) - 0.35) / 0.05))
    (dtype('float32'), True)
    """
    w64 = weights.astype(np.float64).reshape(delta.shape)
    sign64 = np.where(w64 > 0, 1.0, -1.0)
    out = delta.astype(np.float64) / lr
    threshold = np.asarray(threshold, dtype=weights.dtype)[()]  # a NumPy scalar, as in MindArmour
    for code, magnitude in target_magnitudes(threshold, float(upper_bound)).items():
        if isinstance(magnitude, np.generic):
            continue  # the threshold itself: MindArmour subtracts it in the weights' dtype, as supjax did
        out = np.where(move.reshape(delta.shape) == code, (w64 - sign64 * magnitude) / lr, out)
    return out.astype(delta.dtype)
