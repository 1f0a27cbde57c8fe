"""DP-SGD accounting of supjax_app.dp.accounting (dp-accounting's RDP and PLD accountants)."""

from __future__ import annotations

import pytest

from supjax_app.dp.accounting import ACCOUNTANTS, dpsgd_epsilon, noise_multiplier_for_epsilon

# The DP-SGD tutorial setting: MNIST (60000 examples), batch 256, noise 1.1, 60 epochs, delta 1e-5.
Q = 256 / 60000
STEPS = 60 * 60000 // 256
DELTA = 1e-5


@pytest.mark.parametrize("accountant, expected", [("rdp", 2.6), ("pld", 2.4)])
def test_tutorial_epsilon(accountant, expected):
    eps = dpsgd_epsilon(1.1, Q, STEPS, DELTA, accountant=accountant)
    assert 2.3 < eps < 3.1
    assert eps == pytest.approx(expected, abs=0.05)


def test_pld_is_tighter_than_rdp():
    assert dpsgd_epsilon(1.1, Q, STEPS, DELTA, "pld") < dpsgd_epsilon(1.1, Q, STEPS, DELTA, "rdp")


def test_epsilon_is_monotone():
    base = dpsgd_epsilon(1.1, Q, STEPS, DELTA)
    assert dpsgd_epsilon(1.5, Q, STEPS, DELTA) < base  # more noise
    assert dpsgd_epsilon(1.1, Q, 2 * STEPS, DELTA) > base  # more steps
    assert dpsgd_epsilon(1.1, 2 * Q, STEPS, DELTA) > base  # larger batches
    assert dpsgd_epsilon(1.1, Q, STEPS, 1e-3) < base  # larger delta
    assert dpsgd_epsilon(1.1, Q, 0, DELTA) == 0.0


def test_inverse_round_trips_rdp():
    sigma = noise_multiplier_for_epsilon(dpsgd_epsilon(1.1, Q, STEPS, DELTA), Q, STEPS, DELTA)
    assert sigma == pytest.approx(1.1, abs=1e-4)
    # the answer is on the private side of the target, and just so
    for target in (0.5, 2.0, 8.0):
        sigma = noise_multiplier_for_epsilon(target, Q, STEPS, DELTA)
        assert dpsgd_epsilon(sigma, Q, STEPS, DELTA) <= target
        assert dpsgd_epsilon(sigma - 1e-3, Q, STEPS, DELTA) > target


def test_inverse_round_trips_pld():
    q, steps = 0.05, 200  # fewer steps than the tutorial: each PLD evaluation takes ~0.5 s
    eps = dpsgd_epsilon(1.5, q, steps, DELTA, "pld")
    sigma = noise_multiplier_for_epsilon(eps, q, steps, DELTA, "pld")
    assert sigma == pytest.approx(1.5, abs=1e-3)
    assert dpsgd_epsilon(sigma, q, steps, DELTA, "pld") <= eps


def test_accountant_names():
    assert ACCOUNTANTS == ("rdp", "pld")


BAD = [
    ("noise 0", lambda: dpsgd_epsilon(0.0, Q, STEPS, DELTA), ValueError, ["noise_multiplier", "> 0"]),
    ("noise inf", lambda: dpsgd_epsilon(float("inf"), Q, STEPS, DELTA), ValueError, ["noise_multiplier", "> 0"]),
    ("noise str", lambda: dpsgd_epsilon("1.1", Q, STEPS, DELTA), TypeError, ["noise_multiplier"]),
    ("q 0", lambda: dpsgd_epsilon(1.1, 0.0, STEPS, DELTA), ValueError, ["sampling_rate", "(0, 1]"]),
    ("q above 1", lambda: dpsgd_epsilon(1.1, 1.5, STEPS, DELTA), ValueError, ["sampling_rate", "(0, 1]"]),
    ("steps negative", lambda: dpsgd_epsilon(1.1, Q, -1, DELTA), ValueError, ["steps", ">= 0"]),
    ("steps float", lambda: dpsgd_epsilon(1.1, Q, 10.5, DELTA), TypeError, ["steps", "int"]),
    ("delta 0", lambda: dpsgd_epsilon(1.1, Q, STEPS, 0.0), ValueError, ["delta", "(0, 1)"]),
    ("delta 1", lambda: dpsgd_epsilon(1.1, Q, STEPS, 1.0), ValueError, ["delta", "(0, 1)"]),
    ("accountant", lambda: dpsgd_epsilon(1.1, Q, STEPS, DELTA, "gdp"), ValueError, ["accountant", "rdp"]),
    ("target 0", lambda: noise_multiplier_for_epsilon(0.0, Q, STEPS, DELTA), ValueError, ["target_epsilon", "> 0"]),
    ("target nan", lambda: noise_multiplier_for_epsilon(float("nan"), Q, STEPS, DELTA), ValueError,
     ["target_epsilon"]),
    ("zero steps", lambda: noise_multiplier_for_epsilon(1.0, Q, 0, DELTA), ValueError, ["steps", ">= 1"]),
    ("unreachable small", lambda: noise_multiplier_for_epsilon(1e-4, 1.0, 1000, DELTA), ValueError,
     ["target_epsilon", "above"]),
    ("unreachable large", lambda: noise_multiplier_for_epsilon(1e6, Q, 10, DELTA), ValueError,
     ["target_epsilon", "below"]),
]


@pytest.mark.parametrize("what, call, exc, words", BAD, ids=[b[0] for b in BAD])
def test_bad_input(what, call, exc, words):
    with pytest.raises(exc) as info:
        call()
    for word in words:
        assert word in str(info.value)
