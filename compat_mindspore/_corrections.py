"""What the correction buffer holds, given supjax's ``delta`` (the next step lands on ``w - delta``).

* update form: ``delta`` itself (subtracted after the optimizer step);
* gradient form: ``delta / lr`` (SGD then lands on ``w - lr * (delta / lr + g)``), computed with
  MindArmour's arithmetic: float64 on the exact path, the weights' dtype on its large-layer path.

WORKAROUND (until supjax reports which target each correction aims at, see
:func:`reference_gradient_correction`): MindArmour subtracts its clip targets ``0.005`` and
``upper_bound`` as float64 Python numbers, while supjax's ``delta`` uses their float32
roundings; the resulting one-ulp differences change which clipped weights tie at the next
operation. Under reference parity the targets are recovered from supjax's own ``delta``
and the correction is recomputed in float64. No rule is decided here.
"""

from __future__ import annotations

import numpy as np

from supjax.rules import LOWER_BOUND

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
    keep: np.ndarray,
    threshold: float,
    upper_bound: float,
    lr: float,
) -> np.ndarray:
    """MindArmour's ``(w - target) / lr`` for the exact path, bit for bit (see the module note).

    A kept weight whose ``delta`` equals ``w - sign(w) * float32(c)`` for ``c`` in
    (``upper_bound``, ``0.005``) was clipped or pulled to ``+-c``; its correction becomes
    ``(float64(w) - sign(w) * c) / lr``. Every other correction is ``float64(delta) / lr``
    (MindArmour's arithmetic too). The ``0.005`` case is skipped when the threshold equals
    ``float32(0.005)``: MindArmour then pulls to the float32 threshold itself. A kept weight
    sitting exactly on ``+-float32(upper_bound)`` above the float64 bound gets MindArmour's
    tiny correction too. (Not covered: a weight sitting exactly on ``+-float32(0.005)`` that
    MindArmour clips again; its correction stays 0 instead of about ``1e-7 / lr``.)
    ``upper_bound`` is the effective bound (``max(0.10, upper_bound)``) as MindArmour holds it.

    >>> w = np.array([0.9, -0.002, 0.3, 0.01], np.float32)
    >>> delta = np.array([w[0] - np.float32(0.35), w[1] + np.float32(0.005), 0.0, w[3]], np.float32)
    >>> keep = np.array([True, True, True, False])
    >>> out = reference_gradient_correction(w, delta, keep, 0.01, 0.35, 0.05)
    >>> out.dtype, float(out[0]) == float(np.float32((np.float64(w[0]) - 0.35) / 0.05))
    (dtype('float32'), True)
    """
    dtype = weights.dtype
    w = weights.reshape(-1)
    d = delta.reshape(-1)
    kept = keep.reshape(-1).astype(bool) & (d != 0)
    sign = np.where(w > 0, np.ones_like(w), -np.ones_like(w))
    out = d.astype(np.float64) / lr
    constants = [upper_bound]
    if np.asarray(threshold, dtype=dtype) != np.asarray(LOWER_BOUND, dtype=dtype):
        constants.append(LOWER_BOUND)
    w64, sign64 = w.astype(np.float64), sign.astype(np.float64)
    for c in constants:
        c_low = np.asarray(c, dtype=dtype)
        hit = kept & ((w - sign * c_low) == d)
        out = np.where(hit, (w64 - sign64 * c) / lr, out)
    ub_low = np.asarray(upper_bound, dtype=dtype)
    if float(ub_low) > upper_bound:
        # A weight already at +-float32(upper_bound) is still above the float64 bound:
        # supjax's delta is 0 there, MindArmour's correction is not.
        on_bound = keep.reshape(-1).astype(bool) & (d == 0) & (np.abs(w) == ub_low)
        out = np.where(on_bound, (w64 - sign64 * upper_bound) / lr, out)
    return out.astype(dtype).reshape(delta.shape)
