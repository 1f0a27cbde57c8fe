"""DP-SGD privacy accounting with Google's ``dp-accounting`` package.

DP-SGD with Poisson sampling at rate ``q`` and Gaussian noise ``noise_multiplier`` times the
clipping norm, run for ``steps`` steps, is the event
``SelfComposedDpEvent(PoissonSampledDpEvent(q, GaussianDpEvent(noise_multiplier)), steps)``.
Its ε at a given δ comes from the RDP accountant (``"rdp"``, Rényi DP, fast, a little
loose) or the PLD accountant (``"pld"``, privacy-loss distributions, tighter, slower),
both for the add-or-remove-one neighbouring relation. Shared by ``supjax train --dp`` and
``supjax audit``.

>>> round(dpsgd_epsilon(1.1, 256 / 60000, 60 * 60000 // 256, 1e-5), 2)
2.6
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Callable

import dp_accounting

__all__ = [
    "ACCOUNTANTS",
    "PLD_MIN_NOISE",
    "default_delta",
    "dpsgd_epsilon",
    "epsilons",
    "noise_multiplier_for_epsilon",
]

#: Names accepted by ``accountant=``.
ACCOUNTANTS: tuple[str, ...] = ("rdp", "pld")

#: Below this noise multiplier the PLD accountant is too slow and memory-hungry (minutes, GBs):
#: :func:`epsilons` then gives the RDP ε only (an upper bound just the same).
PLD_MIN_NOISE = 0.3

# noise_multiplier_for_epsilon searches between these noise multipliers.
_SMALLEST_NOISE = 1e-2
_LARGEST_NOISE = 1e4


def _check_real(value: Any, arg: str, allowed: str, ok: Callable[[float], bool]) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{arg} must be a float {allowed}, got {type(value).__name__}")
    if not (math.isfinite(value) and ok(float(value))):
        raise ValueError(f"{arg} must be a float {allowed}, got {value!r}")
    return float(value)


def _check_common(sampling_rate: Any, steps: Any, delta: Any, accountant: Any) -> tuple[float, int, float, str]:
    q = _check_real(sampling_rate, "sampling_rate", "in (0, 1]", lambda v: 0.0 < v <= 1.0)
    if isinstance(steps, bool) or not isinstance(steps, numbers.Integral):
        raise TypeError(f"steps must be an int >= 0, got {type(steps).__name__}")
    if steps < 0:
        raise ValueError(f"steps must be an int >= 0, got {steps}")
    d = _check_real(delta, "delta", "in (0, 1)", lambda v: 0.0 < v < 1.0)
    if accountant not in ACCOUNTANTS:
        raise ValueError(f"accountant must be one of {ACCOUNTANTS}, got {accountant!r}")
    return q, int(steps), d, accountant


def _new_accountant(accountant: str) -> dp_accounting.PrivacyAccountant:
    if accountant == "rdp":
        return dp_accounting.rdp.RdpAccountant()
    return dp_accounting.pld.PLDAccountant()


def _dpsgd_event(noise_multiplier: float, sampling_rate: float, steps: int) -> dp_accounting.DpEvent:
    step = dp_accounting.PoissonSampledDpEvent(sampling_rate, dp_accounting.GaussianDpEvent(noise_multiplier))
    return dp_accounting.SelfComposedDpEvent(step, steps)


def _bracket(epsilon: Callable[[float], float], target: float, start: float, factor: float) -> tuple[float, float]:
    """Noise multipliers ``low < high`` with ``epsilon(low) > target >= epsilon(high)``, by steps of ``factor``."""
    high = start
    while epsilon(high) > target:
        high *= factor
        if high > _LARGEST_NOISE:
            raise ValueError(
                f"target_epsilon {target} needs a noise multiplier above {_LARGEST_NOISE:g}: "
                "give a larger target_epsilon, or fewer steps or a smaller sampling_rate"
            )
    low = high / factor
    while True:
        if low < _SMALLEST_NOISE:
            raise ValueError(
                f"target_epsilon {target} is reached with a noise multiplier below {_SMALLEST_NOISE:g}: "
                "give a smaller target_epsilon"
            )
        if epsilon(low) > target:
            return low, high
        high, low = low, low / factor


def dpsgd_epsilon(
    noise_multiplier: float, sampling_rate: float, steps: int, delta: float, accountant: str = "rdp"
) -> float:
    """ε of ``steps`` Poisson-subsampled Gaussian steps (DP-SGD) at ``delta``.

    ``noise_multiplier`` > 0 is the noise standard deviation over the clipping norm,
    ``sampling_rate`` in (0, 1] the probability that an example is in a batch (batch size
    over dataset size), ``delta`` in (0, 1), ``accountant`` ``"rdp"`` or ``"pld"``. Zero
    steps give ε = 0.

    >>> round(dpsgd_epsilon(1.1, 256 / 60000, 14062, 1e-5, accountant="pld"), 1)
    2.4
    """
    sigma = _check_real(noise_multiplier, "noise_multiplier", "> 0", lambda v: v > 0.0)
    q, steps, delta, accountant = _check_common(sampling_rate, steps, delta, accountant)
    if steps == 0:
        return 0.0
    acc = _new_accountant(accountant).compose(_dpsgd_event(sigma, q, steps))
    return float(acc.get_epsilon(delta))


def noise_multiplier_for_epsilon(
    target_epsilon: float, sampling_rate: float, steps: int, delta: float, accountant: str = "rdp"
) -> float:
    """The smallest noise multiplier whose DP-SGD ε (:func:`dpsgd_epsilon`) is ``<= target_epsilon``.

    Uses ``dp_accounting.calibrate_dp_mechanism`` (Brent's method, tolerance 1e-6 in the
    noise multiplier, the answer always on the private side) inside a bracket found by
    doubling from 1; for PLD, by steps of 1.25 from the RDP answer (PLD's ε is a little
    below RDP's, and PLD is slow for small noise). Searches noise multipliers in
    [0.01, 10000]: a ``ValueError`` says when the target is out of that reach.

    >>> sigma = noise_multiplier_for_epsilon(2.6, 256 / 60000, 14062, 1e-5)
    >>> round(sigma, 2), dpsgd_epsilon(sigma, 256 / 60000, 14062, 1e-5) <= 2.6
    (1.1, True)
    """
    target = _check_real(target_epsilon, "target_epsilon", "> 0", lambda v: v > 0.0)
    q, steps, delta, accountant = _check_common(sampling_rate, steps, delta, accountant)
    if steps == 0:
        raise ValueError("steps must be >= 1 to calibrate a noise multiplier (zero steps have epsilon 0)")

    def epsilon(sigma: float) -> float:
        return dpsgd_epsilon(sigma, q, steps, delta, accountant)

    # PLD is slow for small noise: start its bracket at the RDP answer, which is close above.
    start = 1.0 if accountant == "rdp" else noise_multiplier_for_epsilon(target, q, steps, delta, "rdp")
    low, high = _bracket(epsilon, target, start, 2.0 if accountant == "rdp" else 1.25)
    return float(
        dp_accounting.calibrate_dp_mechanism(
            lambda: _new_accountant(accountant),
            lambda sigma: _dpsgd_event(sigma, q, steps),
            target,
            delta,
            dp_accounting.ExplicitBracketInterval(low, high),
        )
    )


def default_delta(n: int) -> float:
    """δ for ``n`` training examples: ``1 / n`` rounded down to a power of ten.

    >>> default_delta(60000), default_delta(1437), default_delta(100)
    (1e-05, 0.0001, 0.01)
    """
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 2:
        raise ValueError(f"n must be an int >= 2 (training examples), got {n!r}")
    exponent = math.floor(-math.log10(n))
    if 10.0 ** exponent > 1.0 / n:  # guard against log10 rounding just above a power of ten
        exponent -= 1
    return float(f"1e{exponent}")


def epsilons(noise_multiplier: float, sampling_rate: float, steps: int, delta: float) -> dict[str, float | None]:
    """ε of DP-SGD from both accountants: ``{"rdp": ..., "pld": ...}``.

    ``"pld"`` is ``None`` below :data:`PLD_MIN_NOISE` (too slow there; RDP still bounds ε).

    >>> e = epsilons(1.1, 256 / 60000, 14062, 1e-5)
    >>> round(e["rdp"], 1), round(e["pld"], 1), epsilons(0.2, 0.01, 10, 1e-5)["pld"]
    (2.6, 2.4, None)
    """
    return {
        "rdp": dpsgd_epsilon(noise_multiplier, sampling_rate, steps, delta, "rdp"),
        "pld": dpsgd_epsilon(noise_multiplier, sampling_rate, steps, delta, "pld")
        if noise_multiplier >= PLD_MIN_NOISE else None,
    }
