"""supjax against MindArmour 2.0.0 with noise on (``reference_parity=True``).

MindArmour draws its noise from numpy's global generator, one ``np.random.uniform(-0.1, 0.1)``
per noised weight in index order; supjax draws from its JAX PRNG key. The same seed path is
impossible, so this test compares everything but the noised entries exactly and the noise's
distribution statistically: the masks, counts and the positions of the noised weights must
be identical; every other weight lands as in the noise-free comparison (bit-identical where
MindArmour applied no correction, within ``MAX_CORRECTION_ULPS`` where it did); the noise
(the landed weight minus the same step's landing with noise off, on each side) lies in
[-0.1, 0.1] and follows U(-0.1, 0.1) on each side and the same distribution on both
(Kolmogorov-Smirnov at alpha = 0.001; the seeds are fixed, so the test is deterministic).
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.oracle.landing import check_landing, supjax_step
from tests.oracle.reference import reference_step

pytestmark = pytest.mark.mindspore

KS_C = 1.95  # Kolmogorov-Smirnov c(alpha) for alpha = 0.001


def ks_uniform(x: np.ndarray, low: float, high: float) -> float:
    """One-sample KS statistic of ``x`` against U(low, high)."""
    x = np.sort(x)
    n = x.size
    cdf = np.clip((x - low) / (high - low), 0.0, 1.0)
    return float(max((np.arange(1, n + 1) / n - cdf).max(), (cdf - np.arange(n) / n).max()))


def ks_two(x: np.ndarray, y: np.ndarray) -> float:
    """Two-sample KS statistic."""
    grid = np.concatenate([x, y])
    fx = np.searchsorted(np.sort(x), grid, side="right") / x.size
    fy = np.searchsorted(np.sort(y), grid, side="right") / y.size
    return float(np.abs(fx - fy).max())


def test_ks_statistics_reject_what_they_should():
    rng = np.random.default_rng(0)
    uniform, shifted = rng.uniform(-0.1, 0.1, 2000), rng.uniform(-0.08, 0.12, 2000)
    bound = KS_C / np.sqrt(2000)
    assert ks_uniform(uniform, -0.1, 0.1) < bound < ks_uniform(shifted, -0.1, 0.1)
    assert ks_two(uniform, rng.uniform(-0.1, 0.1, 2000)) < KS_C * np.sqrt(2 / 2000) < ks_two(uniform, shifted)


@pytest.mark.parametrize("seed", [0, 1])
def test_noise_matches_in_distribution_and_everything_else_exactly(seed):
    rng = np.random.default_rng(100 + seed)
    n = 4000
    w = rng.uniform(-1.5, 1.5, n).astype(np.float32)  # about 47 % in (0.5, 1.2]: noised
    prev = rng.random(n) < 0.1
    w[prev] = 0.0
    grad = rng.normal(scale=0.1, size=n).astype(np.float32)
    options = dict(is_lower_clip=True, min_num=10, upper_bound=1.2)
    ref_on = reference_step(w, ~prev, int(prev.sum()), 0.3, grad, is_add_noise=True, noise_seed=seed, **options)
    ref_off = reference_step(w, ~prev, int(prev.sum()), 0.3, grad, **options)
    ours_on = supjax_step(w, ~prev, int(prev.sum()), 0.3, grad, is_add_noise=True, seed=seed, **options)
    ours_off = supjax_step(w, ~prev, int(prev.sum()), 0.3, grad, **options)
    for out in (ref_off, ours_on, ours_off):
        np.testing.assert_array_equal(out.keep, ref_on.keep)
        assert out.count == ref_on.count
    noised = ref_on.landed != ref_off.landed
    np.testing.assert_array_equal(ours_on.landed != ours_off.landed, noised)
    assert 1500 < noised.sum() < 2200 and (np.abs(w[noised]) > 0.5).all() and (np.abs(w[noised]) <= 1.2).all()
    rest = ~noised
    check_landing(ours_on.landed[rest], ref_on._replace(landed=ref_on.landed[rest], corrected=ref_on.corrected[rest],
                                                        scale=ref_on.scale[rest]))
    noise_ref = ref_off.landed[noised].astype(np.float64) - ref_on.landed[noised]
    noise_ours = ours_off.landed[noised].astype(np.float64) - ours_on.landed[noised]
    slack = 4 * np.spacing(np.abs(w[noised])).astype(np.float64)
    assert (np.abs(noise_ref) <= 0.1 + slack).all() and (np.abs(noise_ours) <= 0.1 + slack).all()
    k = int(noised.sum())
    assert ks_uniform(noise_ref, -0.1, 0.1) < KS_C / np.sqrt(k)
    assert ks_uniform(noise_ours, -0.1, 0.1) < KS_C / np.sqrt(k)
    assert ks_two(noise_ref, noise_ours) < KS_C * np.sqrt(2 / k)
