"""DP-SGD of ``supjax train --dp`` (supjax_app.dp): accounting round trip, clipping, noise, post-processing."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import supjax
from supjax_app.dp.accounting import default_delta, dpsgd_epsilon, epsilons
from supjax_app.dp.app import privacy
from supjax_app.dp.config import DPConfig
from supjax_app.dp.sgd import (capacity, clip_factors, clip_per_example, clipped_sum, dp_aggregate, padded_rows,
                               per_example_norms, poisson_batch, row_buckets)
from supjax_app.dp.train import dp_optimizer, make_dp_step, train_dp
from supjax_app.models import init_params, lenet5_for


@pytest.mark.parametrize("epsilon, epochs, batch, n", [(3.0, 10, 1024, 60000), (1.0, 3, 128, 5000)])
def test_noise_multiplier_picked_for_epsilon_gives_it_back(epsilon, epochs, batch, n):
    """The σ that --epsilon picks, fed back to the accountant, gives that ε (within 1 %)."""
    priv = privacy(DPConfig(epsilon=epsilon, epochs=epochs, batch_size=batch), n)
    q, steps = batch / n, epochs * (n // batch)
    assert (priv["sampling_rate"], priv["steps"], priv["delta"]) == (q, steps, default_delta(n))
    back = dpsgd_epsilon(priv["noise_multiplier"], q, steps, priv["delta"], "rdp")
    assert back == pytest.approx(epsilon, rel=0.01)
    assert back <= epsilon  # calibrated on the private side
    assert priv["epsilon"]["rdp"] == pytest.approx(back)
    assert priv["epsilon"]["pld"] < priv["epsilon"]["rdp"]  # PLD is tighter


def test_given_noise_multiplier_reports_its_epsilon():
    priv = privacy(DPConfig(noise_multiplier=1.1, epochs=60, batch_size=256), 60000)
    assert priv["noise_multiplier"] == 1.1 and priv["target_epsilon"] is None
    assert priv["epsilon"]["rdp"] == pytest.approx(2.6, abs=0.05)  # the DP-SGD tutorial's figures
    assert priv["epsilon"]["pld"] == pytest.approx(2.4, abs=0.05)


def test_pld_skipped_below_min_noise():
    assert epsilons(0.29, 0.01, 10, 1e-5)["pld"] is None
    assert epsilons(0.3, 0.01, 10, 1e-5)["pld"] is not None


@pytest.mark.parametrize("n, delta", [(60000, 1e-5), (50000, 1e-5), (1437, 1e-4), (1000, 1e-3), (999, 1e-3),
                                      (1001, 1e-4), (100000, 1e-5)])
def test_default_delta_is_one_over_n_rounded_down_to_a_power_of_ten(n, delta):
    assert default_delta(n) == delta and default_delta(n) <= 1 / n


def test_clipping_bounds_every_example_and_leaves_small_ones():
    grads = {"a": jnp.array([[3.0, 0.0], [0.03, 0.0], [0.0, 0.0]]), "b": jnp.array([[[4.0]], [[0.04]], [[0.0]]])}
    clipped, before = clip_per_example(grads, 1.0)
    assert before.tolist() == pytest.approx([5.0, 0.05, 0.0])
    after = per_example_norms(clipped)
    assert after.tolist() == pytest.approx([1.0, 0.05, 0.0])
    assert clipped["a"][0].tolist() == pytest.approx([0.6, 0.0]) and float(clipped["b"][0, 0, 0]) == pytest.approx(0.8)
    assert clipped["a"][1].tolist() == pytest.approx([0.03, 0.0])  # below clip: unchanged


def test_real_lenet5_per_example_gradients_are_clipped():
    """Per-example gradients of LeNet5 (jax.vmap of jax.grad) exceed the clip before, not after."""
    model = lenet5_for((8, 8, 1), 10, activation="tanh")
    params = init_params(model, (8, 8, 1), seed=0)
    x = jnp.asarray(np.random.default_rng(0).normal(size=(16, 8, 8, 1)).astype(np.float32))
    y = jnp.arange(16) % 10

    def loss(p, xi, yi):
        return optax.softmax_cross_entropy_with_integer_labels(model.apply({"params": p}, xi[None]), yi[None])[0]

    grads = jax.vmap(jax.grad(loss), in_axes=(None, 0, 0))(params, x, y)
    clip = 0.05
    clipped, before = clip_per_example(grads, clip)
    assert float(before.min()) > clip  # a test that needs the clipping
    assert np.all(np.asarray(per_example_norms(clipped)) <= clip * (1 + 1e-5))
    # the direction is kept: clipped = g * clip / |g|
    g0 = np.concatenate([np.ravel(leaf[0]) for leaf in jax.tree_util.tree_leaves(grads)])
    c0 = np.concatenate([np.ravel(leaf[0]) for leaf in jax.tree_util.tree_leaves(clipped)])
    np.testing.assert_allclose(c0, g0 * clip / float(before[0]), rtol=1e-4, atol=1e-9)


def test_clipped_sum_is_the_sum_of_the_clipped_examples():
    """The aggregate's one contraction equals clipping each example, then summing (hand check and LeNet5)."""
    small = {"a": jnp.array([[3.0, 0.0], [0.03, 0.0]]), "b": jnp.array([[[4.0]], [[0.04]]])}
    factors, norms = clip_factors(small, 1.0)
    assert factors.tolist() == pytest.approx([0.2, 1.0]) and norms.tolist() == pytest.approx([5.0, 0.05])
    total = clipped_sum(small, 1.0)
    assert total["a"].tolist() == pytest.approx([0.63, 0.0]) and total["b"].ravel().tolist() == pytest.approx([0.84])
    model = lenet5_for((8, 8, 1), 10, activation="tanh")
    params = init_params(model, (8, 8, 1), seed=1)
    x = jnp.asarray(np.random.default_rng(1).normal(size=(24, 8, 8, 1)).astype(np.float32))

    def loss(p, xi, yi):
        return optax.softmax_cross_entropy_with_integer_labels(model.apply({"params": p}, xi[None]), yi[None])[0]

    grads = jax.vmap(jax.grad(loss), in_axes=(None, 0, 0))(params, x, jnp.arange(24) % 10)
    clip = float(np.median(per_example_norms(grads)))  # half the examples clipped, half not
    clipped, before = clip_per_example(grads, clip)
    assert float(before.min()) < clip < float(before.max())
    for got, want in zip(jax.tree_util.tree_leaves(jax.jit(clipped_sum, static_argnums=1)(grads, clip)),
                         jax.tree_util.tree_leaves(clipped)):
        np.testing.assert_allclose(got, np.sum(np.asarray(want, np.float64), axis=0), rtol=1e-4, atol=1e-7)


def test_noise_std_is_noise_multiplier_times_clip_over_batch():
    """Zero gradients: the averaged output is pure noise of std σ·C/B (B the expected batch, not the padded rows)."""
    sigma, clip, batch, rows = 1.3, 0.5, 64, 80
    tx = dp_aggregate(clip, sigma, batch, seed=7)
    params = {"w": jnp.zeros((200, 250))}
    out, state = tx.update({"w": jnp.zeros((rows, 200, 250))}, tx.init(params), params)
    noise = np.asarray(out["w"], np.float64).ravel()
    expected = sigma * clip / batch  # 0.01015625
    assert expected == pytest.approx(0.01015625)
    assert noise.std() == pytest.approx(expected, rel=0.015)  # 50000 draws: std error ~0.3 %
    assert abs(noise.mean()) < 4 * expected / math.sqrt(noise.size)
    out2, _ = tx.update({"w": jnp.zeros((rows, 200, 250))}, state, params)
    assert not np.allclose(out2["w"], out["w"])  # fresh noise every step


def test_aggregate_is_clipped_sum_over_expected_batch_plus_noise():
    clip, batch = 1.0, 4
    grads = {"w": jnp.array([[30.0, 40.0], [0.3, 0.4], [0.0, 0.0]])}  # one clipped, one not, one padded row
    out, _ = dp_aggregate(clip, 0.0, batch).update(grads, dp_aggregate(clip, 0.0, batch).init(None))
    assert np.asarray(out["w"]).tolist() == pytest.approx([(0.6 + 0.3) / 4, (0.8 + 0.4) / 4])


def test_suppress_after_dp_sgd_receives_only_the_aggregate_and_the_params(monkeypatch):
    """The real supjax.suppress, wrapped to record its inputs, inside dp_optimizer's chain."""
    seen = []
    real = supjax.suppress

    def recording_suppress(*args, **kwargs):
        inner = real(*args, **kwargs)

        def update(updates, state, params=None):
            seen.append((updates, params))
            return inner.update(updates, state, params)

        return optax.GradientTransformation(inner.init, update)

    monkeypatch.setattr(supjax, "suppress", recording_suppress)
    rules = [supjax.LayerRule("w")]
    schedule = supjax.SuppressSchedule.from_steps(1, 4, 2, sparse_end=0.5)
    tx = dp_optimizer(0.1, 0.9, 1.0, 1.0, 8, seed=3, rules=rules, schedule=schedule)
    params = {"w": jnp.arange(1.0, 7.0).reshape(2, 3), "b": jnp.ones(3)}
    per_example = {"w": jnp.ones((10, 2, 3)), "b": jnp.full((10, 3), 2.0)}
    state = tx.init(params)
    out, _ = tx.update(per_example, state, params)
    assert len(seen) == 1
    updates, given = seen[0]
    # no batch axis: one aggregated update per parameter, and exactly what DP-SGD (aggregate + SGD) emits
    assert jax.tree_util.tree_map(jnp.shape, updates) == jax.tree_util.tree_map(jnp.shape, params)
    dp_only = optax.chain(dp_aggregate(1.0, 1.0, 8, seed=3), optax.sgd(0.1, momentum=0.9))
    expected, _ = dp_only.update(per_example, dp_only.init(params), params)
    jax.tree_util.tree_map(np.testing.assert_array_equal, updates, expected)
    assert given is params
    # and the chain's output is suppress applied to that aggregate
    sup = real(rules, schedule, seed=3)
    want, _ = sup.update(expected, sup.init(params), params)
    jax.tree_util.tree_map(np.testing.assert_array_equal, out, want)


def test_padded_rows_do_not_change_the_step():
    """The masked rows of a padded Poisson batch change nothing (noise off, momentum off)."""
    apply = lambda p, x: x.reshape(len(x), -1) @ p  # noqa: E731
    tx = dp_optimizer(1.0, 0.0, 10.0, 0.0, 2, seed=0)
    step = make_dp_step(apply, tx)
    x, y = jnp.array([[1.0, 0.0], [0.0, 1.0], [3.0, 5.0]]), jnp.array([0, 1, 1])  # row 2: padding
    p_masked, _, _ = step(jnp.zeros((2, 2)), tx.init(jnp.zeros((2, 2))), x, y, jnp.array([True, True, False]))
    p_short, _, _ = step(jnp.zeros((2, 2)), tx.init(jnp.zeros((2, 2))), x[:2], y[:2], jnp.array([True, True]))
    np.testing.assert_array_equal(p_masked, p_short)
    # hand value: gradient of example i at w=0 is x_i (onehot(0.5) - onehot(y_i)); mean over B=2, lr 1
    np.testing.assert_allclose(np.asarray(p_short), [[0.25, -0.25], [-0.25, 0.25]], atol=1e-6)


def test_poisson_batches_have_rate_q_and_fixed_shape():
    n, batch, rows = 6000, 300, capacity(6000, 300)
    sizes = []
    hits = np.zeros(n)
    for step in range(200):
        idx, mask = poisson_batch(n, batch, seed=1, step=step, rows=rows)
        assert idx.shape == (rows,) == mask.shape
        sizes.append(int(mask.sum()))
        hits[idx[mask]] += 1
        assert len(set(idx[mask].tolist())) == int(mask.sum())  # no example twice in one batch
    q = batch / n
    assert np.mean(sizes) == pytest.approx(batch, rel=0.01)
    assert np.std(sizes) == pytest.approx(math.sqrt(n * q * (1 - q)), rel=0.15)  # binomial, not fixed
    assert hits.mean() == pytest.approx(200 * q, rel=0.01)


def test_row_buckets_pad_each_batch_to_the_smallest_shape_that_holds_it():
    """Two shapes for batch 512 of 60000: mean + 1 sd (84 % of batches) and the capacity; nothing dropped."""
    buckets = row_buckets(60000, 512)
    assert buckets == (536, 640)  # ceil8(512 + 22.5) and ceil8(512 + 5.5 * 22.5)
    assert [padded_rows(c, buckets) for c in (0, 536, 537, 640, 641, 1281)] == [536, 536, 640, 640, 1280, 1920]
    shapes = []
    for step in range(400):
        idx, mask = poisson_batch(60000, 512, seed=3, step=step, rows=buckets)
        shapes.append(len(idx))
        assert len(idx) == padded_rows(int(mask.sum()), buckets) and not mask[int(mask.sum()):].any()
    small = np.mean(np.array(shapes) == 536)
    assert set(shapes) == {536, 640} and 0.78 < small < 0.90  # Φ(1) = 0.84
    assert np.mean(shapes) < 0.9 * 640
    with pytest.raises(ValueError, match="rows"):
        padded_rows(3, ())


def test_train_dp_reports_its_buckets_and_rows():
    tx = dp_optimizer(0.5, 0.0, 1.0, 0.5, 64, seed=0)
    x, y = np.random.default_rng(0).normal(size=(1000, 2)).astype(np.float32), np.arange(1000) % 2
    _, _, info = train_dp(lambda p, x: x @ p, jnp.zeros((2, 2)), tx, x, y, epochs=1, batch_size=64, seed=0)
    assert info["row_buckets"] == list(row_buckets(1000, 64)) == [72, 112]
    assert info["mean_batch"] < info["mean_rows"] < info["capacity"]


def test_overflowing_batch_gets_a_larger_shape_not_truncated():
    idx, mask = poisson_batch(100, 100, seed=0, step=0, rows=8)  # q = 1: all 100 examples
    assert int(mask.sum()) == 100 and len(idx) == 104 and sorted(idx[mask].tolist()) == list(range(100))
