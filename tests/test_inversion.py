"""The image-inversion attack and its metrics (``supjax_app.attacks.inversion``).

Hand-computed metric cases, the attack's loss and step on a tiny LeNet5 (8x8 images),
the paired protocol of ``run_inversion`` and its outputs. MindArmour parity lives in
``tests/mindspore/test_ms_inversion.py``.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from supjax_app.attacks import inversion as inv
from supjax_app.models import init_params, lenet5_features, lenet5_for

SHAPE = (8, 8, 1)
MODEL = lenet5_for(SHAPE, 10)
FEATURES = partial(lenet5_features, MODEL)


def _images(n: int, seed: int = 0, shape: tuple[int, ...] = SHAPE) -> np.ndarray:
    return np.random.default_rng(seed).random((n, *shape), dtype=np.float32)


def _params(seed: int):
    return init_params(MODEL, SHAPE, seed)


def _logits(params):
    return jax.jit(lambda x: MODEL.apply({"params": params}, x))


# --------------------------------------------------------------------------
# Metrics, hand-computed
# --------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(8, 8, 1), (9, 11, 3)])
def test_identical_images_have_l2_zero_and_ssim_one(shape):
    x = _images(3, shape=shape)
    assert np.asarray(inv.relative_l2(x, x)).tolist() == [0.0] * 3
    np.testing.assert_allclose(inv.ssim(x, x), 1.0, rtol=0, atol=1e-6)


def test_relative_l2_by_hand():
    x = np.ones((2, 4, 4, 1), np.float32)
    y = np.stack([np.full((4, 4, 1), 0.5), np.zeros((4, 4, 1))]).astype(np.float32)
    # ||1 - 0.5|| / ||1|| = 0.5 * 4 / 4; ||1 - 0|| / ||1|| = 1
    np.testing.assert_allclose(inv.relative_l2(x, y), [0.5, 1.0], rtol=1e-6)


def test_ssim_of_two_constant_images_by_hand():
    # Constant images: every variance is 0, so SSIM = (2ab + c1) / (a^2 + b^2 + c1), c1 = (0.01 * 2)^2.
    a, b = np.full((1, 8, 8, 1), 0.5, np.float32), np.full((1, 8, 8, 1), 0.25, np.float32)
    c1 = (0.01 * 2) ** 2
    np.testing.assert_allclose(inv.ssim(a, b), [(2 * 0.5 * 0.25 + c1) / (0.5**2 + 0.25**2 + c1)], rtol=1e-6)
    c1 = (0.01 * 1) ** 2  # data_range 1
    np.testing.assert_allclose(inv.ssim(a, b, data_range=1.0), [(0.25 + c1) / (0.3125 + c1)], rtol=1e-6)


def test_ssim_of_a_constant_offset_by_hand():
    # y = x + d: per 7x7 window the variances and the covariance are equal, so the window's SSIM is
    # (2 u (u + d) + c1) / (u^2 + (u + d)^2 + c1) with u the window mean; 8x8 keeps 2x2 windows (crop 3).
    x = _images(1, seed=3)[0, ..., 0].astype(np.float64) * 0.5
    d, c1 = 0.3, (0.01 * 2) ** 2
    by_hand = []
    for i in range(2):
        for j in range(2):
            u = x[i : i + 7, j : j + 7].mean()
            by_hand.append((2 * u * (u + d) + c1) / (u**2 + (u + d) ** 2 + c1))
    got = inv.ssim(x[None, ..., None].astype(np.float32), (x + d)[None, ..., None].astype(np.float32))
    np.testing.assert_allclose(got, [np.mean(by_hand)], rtol=1e-5)


def test_ssim_uses_sample_variances_by_hand():
    # x constant (variance 0), y with sample variance v (ddof 1, the reference's 49/48 factor):
    # one 7x7 window, SSIM = (2 ux uy + c1) c2 / ((ux^2 + uy^2 + c1) (v + c2)).
    y = _images(1, seed=4, shape=(7, 7, 1)).astype(np.float64)
    x = np.full_like(y, 0.5)
    c1, c2 = (0.01 * 2) ** 2, (0.03 * 2) ** 2
    uy, v = y.mean(), y.var(ddof=1)
    want = (2 * 0.5 * uy + c1) * c2 / ((0.25 + uy**2 + c1) * (v + c2))
    np.testing.assert_allclose(inv.ssim(x.astype(np.float32), y.astype(np.float32)), [want], rtol=1e-5)


def test_ssim_averages_channels():
    x = _images(2, seed=1, shape=(8, 8, 2))
    y = _images(2, seed=2, shape=(8, 8, 2))
    per_channel = [np.asarray(inv.ssim(x[..., c : c + 1], y[..., c : c + 1])) for c in range(2)]
    np.testing.assert_allclose(inv.ssim(x, y), np.mean(per_channel, axis=0), rtol=1e-6)


def test_true_label_confidence_by_hand():
    logits = np.array([[0.0, np.log(3.0), 0.0], [1.0, 1.0, 1.0]], np.float32)
    np.testing.assert_allclose(inv.true_label_confidence(logits, np.array([1, 2])), [0.6, 1 / 3], rtol=1e-6)


def test_evaluate_inversion_per_image_and_means():
    x, y = _images(4, seed=1), _images(4, seed=2)
    labels = np.array([0, 1, 2, 3])
    scores = inv.evaluate_inversion(x, y, labels, lambda im: jnp.zeros((im.shape[0], 4)))
    assert scores.l2.shape == scores.ssim.shape == scores.confidence.shape == (4,)
    np.testing.assert_allclose(scores.confidence, 0.25)
    l2, s, conf = scores.means()
    np.testing.assert_allclose([l2, s], [np.mean(inv.relative_l2(x, y)), np.mean(inv.ssim(x, y))], rtol=1e-6)
    assert inv.evaluate_inversion(x, y).confidence is None


def test_bootstrap_interval_brackets_the_mean_and_is_exact_for_constants():
    values = np.random.default_rng(0).normal(size=200)
    i = inv.bootstrap_interval(values, n_boot=500, seed=3)
    assert i.low < i.mean < i.high and i.mean == pytest.approx(values.mean())
    assert inv.bootstrap_interval(np.zeros(7), n_boot=50) == inv.Interval(0.0, 0.0, 0.0)


# --------------------------------------------------------------------------
# The attack
# --------------------------------------------------------------------------


def test_loss_terms_by_hand():
    """Features = the flattened image: each term checked on its own against a hand formula."""

    def flat(p, x):
        return x.reshape(x.shape[0], -1) * p

    x = np.arange(12, dtype=np.float32).reshape(1, 3, 4, 1) / 12
    t = np.full((1, 12), 0.5, np.float32)
    match = np.mean((x.reshape(-1) - 0.5) ** 2) / np.mean(t**2)
    # reference (CPU): sum over adjacent rows of MSE(row i, row i-1), same for columns
    rows = sum(np.mean((x[0, i] - x[0, i - 1]) ** 2) for i in range(1, 3))
    cols = sum(np.mean((x[0, :, j] - x[0, :, j - 1]) ** 2) for j in range(1, 4))
    size = np.mean(x**2)
    for w in [(1.0, 0.2, 5.0), (1.0, 0.1, 5.0), (2.0, 3.0, 0.5)]:
        want = w[0] * match + w[1] * (rows + cols) + w[2] * size
        np.testing.assert_allclose(inv.inversion_loss(flat, 1.0, x, t, w), [want], rtol=1e-6)


def test_all_zero_target_is_not_normalised():
    def flat(p, x):
        return x.reshape(x.shape[0], -1) * p

    x = np.full((1, 2, 2, 1), 0.5, np.float32)
    loss = inv.inversion_loss(flat, 1.0, x, np.zeros((1, 4), np.float32), (1.0, 1e-9, 1e-9))
    np.testing.assert_allclose(loss, [0.25], rtol=1e-6)


def test_attack_lowers_the_loss_and_stays_in_the_pixel_range():
    params = _params(1)
    originals = _images(3)
    target = FEATURES(params, jnp.asarray(originals))
    x0 = inv.start_images(jax.random.PRNGKey(0), originals.shape)
    assert float(x0.min()) >= 0.0 and float(x0.max()) < 0.05
    for bounds in [(0.0, 1.0), (0.02, 0.3)]:
        x = inv.invert_features(FEATURES, params, target, x0, iters=40, bounds=bounds)
        before = inv.inversion_loss(FEATURES, params, x0, target)
        after = inv.inversion_loss(FEATURES, params, x, target)
        assert bool(jnp.all(after < before)), (bounds, before, after)
        assert float(x.min()) >= np.float32(bounds[0]) and float(x.max()) <= np.float32(bounds[1])


def _loss_of_one_image(params, x, t, w=inv.DEFAULT_WEIGHTS):
    """The reference's per-image loss, written out again for ``x`` ``(H, W, C)``."""
    out = FEATURES(params, x[None])[0]
    match = jnp.mean((out - t) ** 2) / jnp.mean(t**2)
    rows = sum(jnp.mean((x[i] - x[i - 1]) ** 2) for i in range(1, x.shape[0]))
    cols = sum(jnp.mean((x[:, j] - x[:, j - 1]) ** 2) for j in range(1, x.shape[1]))
    return w[0] * match + w[1] * (rows + cols) + w[2] * jnp.mean(x**2)


def test_one_step_is_a_clipped_sign_step():
    params = _params(2)
    target = FEATURES(params, jnp.asarray(_images(2)))
    x0 = inv.start_images(jax.random.PRNGKey(1), (2, *SHAPE))
    np.testing.assert_allclose(
        inv.inversion_loss(FEATURES, params, x0, target),
        [_loss_of_one_image(params, x0[i], target[i]) for i in range(2)],
        rtol=1e-5,
    )
    grad_of_one = jax.grad(_loss_of_one_image, argnums=1)
    grad = np.stack([np.asarray(grad_of_one(params, x0[i], target[i])) for i in range(2)])
    assert np.all(np.abs(grad) > 1e-7)  # no sign is decided by rounding
    want = np.clip(np.asarray(x0) - np.float32(0.01) * np.sign(np.asarray(grad)), 0.0, 1.0)
    got = inv.invert_features(FEATURES, params, target, x0, iters=1)
    np.testing.assert_array_equal(np.asarray(got), want)


def test_images_are_attacked_independently():
    params = _params(3)
    originals = _images(3, seed=5)
    target = FEATURES(params, jnp.asarray(originals))
    x0 = inv.start_images(jax.random.PRNGKey(2), originals.shape)
    together = np.asarray(inv.invert_features(FEATURES, params, target, x0, iters=5))
    for i in range(3):
        alone = np.asarray(inv.invert_features(FEATURES, params, target[i : i + 1], x0[i : i + 1], iters=5))
        np.testing.assert_allclose(together[i : i + 1], alone, rtol=0, atol=1e-6)


def test_second_call_with_the_same_shapes_does_not_retrace():
    traces = []

    def counted(params, x):
        traces.append(x.shape)
        return lenet5_features(MODEL, params, x)

    target = jnp.zeros((2, 120)) + 0.1
    x0 = inv.start_images(jax.random.PRNGKey(0), (2, *SHAPE))
    inv.invert_features(counted, _params(0), target, x0, iters=2)
    first = len(traces)
    assert first > 0
    inv.invert_features(counted, _params(1), target + 0.1, x0 * 0.5, iters=2, weights=inv.TUTORIAL_WEIGHTS)
    assert len(traces) == first


def _never(params, x):
    raise AssertionError("feature_fn was called before the arguments were checked")


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        ({"iters": 0}, ValueError, "iters"),
        ({"iters": 2.5}, TypeError, "iters"),
        ({"weights": (1.0, 0.2)}, TypeError, "weights"),
        ({"weights": (1.0, -0.2, 5.0)}, ValueError, "weights"),
        ({"bounds": (1.0, 0.0)}, ValueError, "bounds"),
        ({"bounds": "01"}, TypeError, "bounds"),
        ({"step_size": 0.0}, ValueError, "step_size"),
    ],
)
def test_invert_features_checks_its_arguments_before_tracing(kwargs, error, name):
    x0 = np.zeros((2, *SHAPE), np.float32)
    with pytest.raises(error, match=name):
        inv.invert_features(_never, None, np.zeros((2, 5), np.float32), x0, **kwargs)


def test_invert_features_checks_shapes():
    with pytest.raises(ValueError, match="target"):
        inv.invert_features(_never, None, np.zeros((3, 5), np.float32), np.zeros((2, *SHAPE), np.float32))
    with pytest.raises(ValueError, match="x0"):
        inv.invert_features(_never, None, np.zeros((2, 5), np.float32), np.zeros((2, 8, 8), np.float32))
    with pytest.raises(TypeError, match="feature_fn"):
        inv.invert_features(None, None, np.zeros((2, 5), np.float32), np.zeros((2, *SHAPE), np.float32))
    with pytest.raises(ValueError, match="H, W >= 7"):
        inv.ssim(np.zeros((1, 6, 8, 1), np.float32), np.zeros((1, 6, 8, 1), np.float32))


# --------------------------------------------------------------------------
# The paired protocol
# --------------------------------------------------------------------------

POOL = 24
N_MODELS = 2


@pytest.fixture(scope="module")
def setup():
    rng = np.random.default_rng(7)
    images = _images(POOL, seed=11)
    labels = rng.integers(0, 10, POOL)
    keep = rng.random((N_MODELS, POOL)) < 0.5
    dense = [_params(10 + m) for m in range(N_MODELS)]
    arms = {
        "dense": dense,
        "same": [jax.tree_util.tree_map(jnp.array, p) for p in dense],  # equal values, other objects
        "other": [_params(20 + m) for m in range(N_MODELS)],
    }
    evaluator = _logits(_params(99))
    return arms, images, labels, keep, evaluator


@pytest.fixture(scope="module")
def result(setup):
    arms, images, labels, keep, evaluator = setup
    return inv.run_inversion(
        FEATURES, arms, images, labels, keep, evaluator, n_members=3, n_nonmembers=2, iters=4, seed=5, n_boot=200
    )


def test_run_inversion_picks_members_and_nonmembers_per_keep(setup, result):
    _, images, labels, keep, _ = setup
    assert result.indices.shape == result.member.shape == (N_MODELS, 5)
    assert result.member[:, :3].all() and not result.member[:, 3:].any()
    for m in range(N_MODELS):
        idx = result.indices[m]
        assert np.array_equal(keep[m, idx], result.member[m])
        assert len(set(idx.tolist())) == 5
    np.testing.assert_array_equal(result.originals, images[result.indices])
    np.testing.assert_array_equal(result.labels, labels[result.indices])


def test_run_inversion_pairs_arms_on_the_same_images_and_start(setup, result):
    """Equal params under another arm name give identical reconstructions: same images, same start."""
    arms, *_ = setup
    a = {name: i for i, name in enumerate(result.arms)}
    assert result.arms == ("dense", "same", "other")
    np.testing.assert_array_equal(result.reconstructions[a["same"]], result.reconstructions[a["dense"]])
    assert not np.array_equal(result.reconstructions[a["other"]], result.reconstructions[a["dense"]])
    # every arm's model m inverted the features of the originals chosen for model m
    for m in range(N_MODELS):
        x0 = inv.start_images(jax.random.fold_in(jax.random.PRNGKey(5), m), result.originals[m].shape)
        target = FEATURES(arms["other"][m], jnp.asarray(result.originals[m]))
        again = inv.invert_features(FEATURES, arms["other"][m], target, x0, iters=4)
        np.testing.assert_array_equal(np.asarray(again), result.reconstructions[a["other"], m])


def test_paired_difference_with_itself_is_exactly_zero(result):
    for arm in ("dense", "same"):
        for group in inv.GROUPS:
            for metric in inv.METRICS:
                assert result.paired[arm][group][metric] == inv.Interval(0.0, 0.0, 0.0)
    other = result.paired["other"]["members"]["l2"]
    a, d = result.arms.index("other"), result.arms.index("dense")
    want = (result.values["l2"][a] - result.values["l2"][d])[result.member].mean()
    assert other.mean == pytest.approx(want) and other.low <= other.mean <= other.high


def test_run_inversion_summary_matches_its_values(result):
    for a, arm in enumerate(result.arms):
        for group, mask in zip(inv.GROUPS, (result.member, ~result.member)):
            for metric in inv.METRICS:
                i = result.summary[arm][group][metric]
                assert i.mean == pytest.approx(result.values[metric][a][mask].mean())
                assert i.low <= i.mean <= i.high


def test_run_inversion_is_seeded(setup, result):
    arms, images, labels, keep, evaluator = setup
    again = inv.run_inversion(
        FEATURES, arms, images, labels, keep, evaluator, n_members=3, n_nonmembers=2, iters=4, seed=5, n_boot=200
    )
    np.testing.assert_array_equal(again.indices, result.indices)
    np.testing.assert_array_equal(again.reconstructions, result.reconstructions)
    assert again.summary == result.summary


def test_outputs_are_written_and_reloadable(result, setup, tmp_path):
    *_, evaluator = setup
    npz, png = inv.write_inversion_outputs(result, tmp_path / "audit")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = np.load(npz)  # no pickle needed
    assert tuple(data["arms"]) == result.arms and str(data["reference"]) == "dense"
    x, y = data["originals"], data["reconstructions"]
    flat = x.reshape(-1, *SHAPE)
    for a in range(len(result.arms)):
        ya = y[a].reshape(flat.shape)
        np.testing.assert_allclose(data["l2"][a].reshape(-1), inv.relative_l2(flat, ya), rtol=1e-6)
        np.testing.assert_allclose(data["ssim"][a].reshape(-1), inv.ssim(flat, ya), rtol=1e-6)
        logits = data["logits"][a].reshape(flat.shape[0], -1)
        np.testing.assert_allclose(logits, evaluator(jnp.asarray(ya)), rtol=1e-5, atol=1e-6)
        conf = inv.true_label_confidence(logits, data["labels"].reshape(-1))
        np.testing.assert_allclose(data["confidence"][a].reshape(-1), conf, rtol=1e-6)
    assert data["member"].dtype == bool and data["indices"].shape == (N_MODELS, 5)
    assert tuple(data["weights"]) == inv.DEFAULT_WEIGHTS and int(data["iters"]) == 4
    text = inv.inversion_markdown(result)
    assert "| other | non-members |" in text and "arm - dense (paired)" in text


@pytest.mark.parametrize(
    ("change", "error", "name"),
    [
        ({"keep": np.ones((3, POOL), bool)}, ValueError, "keep"),
        ({"keep": np.ones((N_MODELS, POOL), int)}, TypeError, "keep"),
        ({"n_members": 50}, ValueError, "n_members"),
        ({"n_nonmembers": 0}, ValueError, "n_nonmembers"),
        ({"reference": "missing"}, ValueError, "reference"),
        ({"arms": {"dense": [1, 2], "other": [1]}}, ValueError, "same number"),
        ({"arms": []}, TypeError, "arms"),
        ({"images": np.full((POOL, *SHAPE), 2.0, np.float32)}, ValueError, "bounds"),
        ({"labels": np.zeros(POOL, np.float32)}, TypeError, "labels"),
        ({"evaluator": "net"}, TypeError, "evaluator"),
        ({"weights": (1.0, 0.0, 5.0)}, ValueError, "weights"),
    ],
)
def test_run_inversion_checks_its_arguments_before_tracing(setup, change, error, name):
    arms, images, labels, keep, evaluator = setup
    kwargs = {"arms": arms, "images": images, "labels": labels, "keep": keep, "evaluator": evaluator}
    kwargs.update(change)
    with pytest.raises(error, match=name):
        inv.run_inversion(_never, **kwargs, iters=1)
