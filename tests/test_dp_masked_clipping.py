"""``--masked-clipping``: per-example gradients multiplied by the suppression masks before clipping.

Also :func:`supjax.keep_mask_tree`, the core accessor it is built on.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import supjax
from supjax_app.cli import build_parser, main
from supjax_app.dp import cli as dp_cli
from supjax_app.dp.config import DPConfig
from supjax_app.dp.sgd import clip_per_example, per_example_norms
from supjax_app.dp.train import dp_optimizer, make_dp_step, suppressed_clipping

RULES = (supjax.LayerRule("dense/kernel"),)
SCHEDULE = supjax.SuppressSchedule.from_steps(1, 2, 1, sparse_end=0.5)


def _params():
    return {"dense": {"bias": jnp.zeros(2), "kernel": jnp.array([[1.0, -4.0], [0.5, 3.0], [-2.0, 0.25]])}}


def _suppressed_state(tx, params, batch_axis=True):
    """``(params, state)`` after the schedule's one suppress operation (the third update, sparsity 0.4375)."""
    state = tx.init(params)
    zero = jax.tree_util.tree_map(lambda p: jnp.zeros(((1,) if batch_axis else ()) + p.shape, p.dtype), params)
    for _ in range(3):
        updates, state = tx.update(zero, state, params)
        params = optax.apply_updates(params, updates)
    assert int(supjax.find_suppress_state(state).operations) == 1
    return params, state


def test_keep_mask_tree_lays_the_masks_out_like_the_params():
    tx = supjax.suppress(RULES, SCHEDULE)
    params, state = _suppressed_state(tx, _params(), batch_axis=False)
    tree = jax.jit(lambda p, s: supjax.keep_mask_tree(p, s, RULES))(params, state)
    assert tree["dense"]["bias"].shape == () and bool(tree["dense"]["bias"])
    # floor(0.4375 * 6) = 2: the two smallest |w| (0.5 and 0.25) are suppressed
    assert tree["dense"]["kernel"].tolist() == [[True, True], [False, True], [True, False]]
    np.testing.assert_array_equal(tree["dense"]["kernel"].ravel(), state.keep_masks[0].ravel())


def test_keep_mask_tree_bad_input():
    params = _params()
    state = supjax.suppress(RULES, SCHEDULE).init(params)
    with pytest.raises(TypeError, match="state must be a SuppressState"):
        supjax.keep_mask_tree(params, {"count": 0}, RULES)
    with pytest.raises(ValueError, match="select 2 parameters but the state holds 1"):
        supjax.keep_mask_tree(params, state, [supjax.LayerRule("dense/kernel"), supjax.LayerRule("dense/bias")])


def test_masked_clipping_clips_the_kept_coordinates_on_their_own_norm():
    """Noise off, lr 1, no momentum: the step's kernel update is -(1/B) sum_i clip(mask * g_i), by hand."""
    clip, batch = 1.0, 2
    tx = dp_optimizer(1.0, 0.0, clip, 0.0, batch, seed=0, rules=RULES, schedule=SCHEDULE)
    params, state = _suppressed_state(tx, _params())
    keep = np.asarray(supjax.keep_mask_tree(params, supjax.find_suppress_state(state), RULES)["dense"]["kernel"])
    assert keep.sum() == 4

    def apply(p, x):
        return x @ p["dense"]["kernel"] + p["dense"]["bias"]

    x = jnp.array([[2.0, 1.0, 0.5], [0.0, 3.0, 1.0]])
    y = jnp.array([1, 0])  # the wrong class wins: large gradients, both examples clipped
    real = jnp.array([True, True])
    with_mask = make_dp_step(apply, tx, grad_mask=suppressed_clipping(RULES))
    without = make_dp_step(apply, tx)
    copy = lambda tree: jax.tree_util.tree_map(jnp.array, tree)  # noqa: E731  (the step donates its inputs)
    new_masked, _, _ = with_mask(copy(params), copy(state), x, y, real)
    new_plain, _, _ = without(copy(params), copy(state), x, y, real)

    # hand: per-example gradient of softmax cross-entropy, masked, clipped on its own norm
    logits = np.asarray(x) @ np.asarray(params["dense"]["kernel"])
    prob = np.exp(logits - logits.max(1, keepdims=True))
    prob /= prob.sum(1, keepdims=True)
    delta = prob - np.eye(2)[np.asarray(y)]
    want_k, want_b, plain_k = np.zeros((3, 2)), np.zeros(2), np.zeros((3, 2))
    for i in range(2):
        gk, gb = np.outer(np.asarray(x[i]), delta[i]), delta[i]
        gk_kept = gk * keep
        norm = np.sqrt((gk_kept ** 2).sum() + (gb ** 2).sum())
        want_k += gk_kept * min(1.0, clip / norm) / batch
        want_b += gb * min(1.0, clip / norm) / batch
        full = np.sqrt((gk ** 2).sum() + (gb ** 2).sum())
        assert full > norm > clip
        plain_k += gk * min(1.0, clip / full) / batch
    kernel = np.asarray(params["dense"]["kernel"])
    np.testing.assert_allclose(np.asarray(new_masked["dense"]["kernel"]), (kernel - want_k) * keep, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(new_masked["dense"]["bias"]), -want_b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(new_plain["dense"]["kernel"]), (kernel - plain_k) * keep, rtol=1e-5, atol=1e-6)
    # the kept weights move further with masked clipping: the norm is not spent on dropped coordinates
    moved_masked = np.abs(np.asarray(new_masked["dense"]["kernel"]) - kernel)[keep].sum()
    moved_plain = np.abs(np.asarray(new_plain["dense"]["kernel"]) - kernel)[keep].sum()
    assert moved_masked > 1.2 * moved_plain


def test_masked_per_example_gradients_stay_within_clip():
    """What DP-SGD receives inside the step under masked clipping (recorded in a link's state, jitted):
    masked coordinates 0, every example larger than clip before clipping and <= clip after."""
    clip, rows = 0.5, 4
    inner = dp_optimizer(1.0, 0.0, clip, 0.0, rows, seed=0, rules=RULES, schedule=SCHEDULE)

    def record_init(params):
        return (jnp.zeros(rows), jnp.zeros(rows), jnp.zeros(()))

    params, inner_state = _suppressed_state(inner, _params())
    dropped_coords = ~suppressed_clipping(RULES)(inner_state, params)["dense"]["kernel"]  # what the step reads

    def record_update(updates, state, params=None):
        clipped, before = clip_per_example(updates, clip)
        dropped = jnp.where(dropped_coords, jnp.abs(updates["dense"]["kernel"]), 0.0).sum()
        return updates, (before, per_example_norms(clipped), dropped)

    tx = optax.chain(optax.GradientTransformation(record_init, record_update), inner)
    state = (record_init(params), inner_state)
    grad_mask = lambda opt_state, p: suppressed_clipping(RULES)(opt_state[1], p)  # noqa: E731
    apply = lambda p, x: x @ p["dense"]["kernel"] + p["dense"]["bias"]  # noqa: E731
    step = make_dp_step(apply, tx, grad_mask=grad_mask)
    x = 5.0 * jax.random.normal(jax.random.PRNGKey(1), (rows, 3))
    y = jnp.argmin(apply(params, x), axis=1)  # the least likely class: large gradients
    _, state, _ = step(params, state, x, y, jnp.ones(rows, bool))
    before, after, dropped = state[0]
    assert float(before.min()) > clip  # every example needed clipping
    assert float(after.max()) <= clip * (1 + 1e-6)
    assert float(dropped) == 0.0  # the suppressed coordinates reached DP-SGD as zeros


def test_masked_clipping_option():
    assert DPConfig().masked_clipping is True  # candidate P's, chosen on validation
    with pytest.raises(TypeError, match="--masked-clipping must be True or False"):
        DPConfig(masked_clipping=1).validate()
    parser = build_parser()
    assert dp_cli.config_from_args(parser.parse_args(["train", "--dp", "--masked-clipping"])).masked_clipping is True
    assert dp_cli.config_from_args(parser.parse_args(["train", "--dp", "--no-masked-clipping"])).masked_clipping is False
    assert dp_cli.config_from_args(parser.parse_args(["train", "--dp"])).masked_clipping is DPConfig().masked_clipping


def test_masked_clipping_needs_dp(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--masked-clipping"])
    assert "--masked-clipping needs --dp" in capsys.readouterr().err


@pytest.mark.parametrize("masked", [True, False])
def test_train_models_uses_masked_clipping_when_asked(masked):
    from supjax_app.dp.app import train_models

    rng = np.random.default_rng(0)
    x, y = rng.random((256, 8, 8, 1), np.float32), rng.integers(0, 10, 256)
    cfg = DPConfig(epochs=2, batch_size=64, noise_multiplier=1.0, masked_clipping=masked)
    out = train_models(cfg, x, y, x[:32], y[:32], 10, models=("dp_suppressed",), log=lambda msg: None)
    assert out["models"]["dp_suppressed"]["training"]["masked_clipping"] is masked
