"""The audit's model training: batch orders, per-model keys, strategies, DP-SGD premises, config checks."""

from __future__ import annotations

import numpy as np
import optax
import pytest

import jax
import jax.numpy as jnp

import supjax
from supjax_app.audit import arms as arms_mod
from supjax_app.audit.arms import make_arm, suppress_schedule
from supjax_app.audit.config import AuditConfig
from supjax_app.audit.training import Arm, batch_order, fold_model_into_keys, make_step, steps_per_epoch, train_arm
from supjax_app.models import init_params, lenet5_for


def _linear(p, x):
    return x.reshape(len(x), -1) @ p


def test_batch_order_visits_only_members_once_per_epoch():
    members = np.zeros(50, bool)
    members[::3] = True  # 17 members
    order = batch_order(members, epochs=3, batch_size=4, seed=5)
    assert order.shape == (3 * 4, 4)
    for epoch in range(3):
        seen = order[epoch * 4:(epoch + 1) * 4].ravel()
        assert len(set(seen.tolist())) == 16 and members[seen].all()
    assert not np.array_equal(order[:4], order[4:8])  # a fresh permutation each epoch


def test_steps_per_epoch_uses_the_smallest_training_set():
    keep = np.array([[1] * 10 + [0] * 2, [1] * 7 + [0] * 5], bool)
    assert steps_per_epoch(keep, 3) == 2
    with pytest.raises(ValueError, match="batch_size"):
        steps_per_epoch(keep, 8)


def test_fold_model_into_keys_changes_suppress_and_dp_keys_per_model():
    tx = optax.chain(optax.contrib.differentially_private_aggregate(1.0, 1.0, key=0), optax.sgd(0.1),
                     supjax.suppress([supjax.LayerRule("w")], supjax.SuppressSchedule.from_steps(1, 9, 3)))
    states = [fold_model_into_keys(tx.init({"w": jnp.ones(3)}), m) for m in (0, 1)]
    dp = [jax.random.key_data(s[0].rng_key) for s in states]
    sup = [supjax.find_suppress_state(s).key for s in states]
    assert not np.array_equal(dp[0], dp[1]) and not np.array_equal(sup[0], sup[1])
    # everything else is untouched
    assert np.array_equal(supjax.find_suppress_state(states[0]).keep_masks[0],
                          supjax.find_suppress_state(states[1]).keep_masks[0])


@pytest.mark.parametrize("kind", ["dense", "suppressed", "dpsgd"])
def test_strategies_train_the_same_models(kind):
    model = lenet5_for((8, 8, 1), 10)
    apply = lambda p, x: model.apply({"params": p}, x)  # noqa: E731
    rng = np.random.default_rng(0)
    x = rng.random((64, 8, 8, 1), dtype=np.float32)
    y = rng.integers(0, 10, 64).astype(np.int32)
    keep = np.stack([rng.permutation(64) < 32 for _ in range(2)])
    orders = np.stack([batch_order(k, 3, 8, s, 4) for s, k in enumerate(keep)])
    arm = make_arm(kind, 0.1, schedule=supjax.SuppressSchedule.from_steps(2, 10, 4, sparse_end=0.5),
                   noise=1.0, seed=3)
    inits = [init_params(model, (8, 8, 1), s) for s in range(2)]
    out = {s: train_arm(apply, arm, inits, x, y, orders, strategy=s) for s in ("sequential", "scan", "vmap")}
    for strategy in ("scan", "vmap"):
        for a, b in zip(out["sequential"], out[strategy]):
            jax.tree_util.tree_map(lambda u, v: np.testing.assert_allclose(u, v, atol=2e-5), a, b)
    first = jax.tree_util.tree_leaves(out["sequential"][0])
    second = jax.tree_util.tree_leaves(out["sequential"][1])
    assert any(not np.allclose(u, v) for u, v in zip(first, second))  # each model its own data, init and noise
    if kind == "suppressed":
        kernel = out["sequential"][0]["fc1"]["kernel"]
        assert 0.4 < float(np.mean(kernel == 0)) < 0.6  # exact zeros at the schedule's target


def test_dp_per_example_gradients_are_clipped_before_noise():
    """With noise 0, every per-example gradient is clipped to norm <= clip, so their mean is too."""
    clip = 0.05
    tx = optax.contrib.differentially_private_aggregate(clip, 0.0, key=0)
    p = jnp.zeros((4, 3))
    x = jnp.asarray(np.random.default_rng(1).normal(size=(6, 2, 2, 1)) * 10, jnp.float32)
    y = jnp.arange(6) % 3
    per_example = jax.vmap(lambda xi, yi: jax.grad(
        lambda q: optax.softmax_cross_entropy_with_integer_labels(_linear(q, xi[None]), yi[None]).mean())(p))(x, y)
    norms = jnp.sqrt((per_example ** 2).sum(axis=(1, 2)))
    assert float(norms.min()) > clip  # the raw gradients are larger than the clip
    clipped, _ = optax.per_example_global_norm_clip([per_example], clip)
    assert float(jnp.sqrt((clipped[0] ** 2).sum())) <= 6 * clip * (1 + 1e-5)  # the sum of six clipped vectors
    update, _ = tx.update(per_example, tx.init(p))
    assert float(jnp.linalg.norm(update)) <= clip * (1 + 1e-5)


def test_suppress_after_dpsgd_sees_only_the_aggregated_update_and_params(monkeypatch):
    """The post-processing premise: in the dpsgd_suppressed arm, suppress's inputs are the
    privatised, aggregated update (no batch axis) and the params — nothing derived from the data."""
    seen = []
    real = supjax.suppress

    def recording(*args, **kwargs):
        inner = real(*args, **kwargs)

        def update(updates, state, params=None, **extra):
            seen.append((jax.tree_util.tree_map(jnp.shape, updates), jax.tree_util.tree_map(jnp.shape, params),
                         sorted(extra)))
            return inner.update(updates, state, params, **extra)

        return optax.GradientTransformationExtraArgs(inner.init, update)

    monkeypatch.setattr(arms_mod.supjax, "suppress", recording)
    model = lenet5_for((8, 8, 1), 10)
    apply = lambda p, x: model.apply({"params": p}, x)  # noqa: E731
    arm = make_arm("dpsgd_suppressed", 0.5, schedule=suppress_schedule(2, 2, 0.9), noise=1.0, seed=0)
    tx = arm.make_tx()
    params = init_params(model, (8, 8, 1), 0)
    step = jax.jit(make_step(apply, tx, per_example=True))
    x = jnp.zeros((5, 8, 8, 1)); y = jnp.zeros(5, jnp.int32)
    step(params, tx.init(params), x, y, jnp.arange(5))
    assert seen, "suppress was not called"
    updates_shapes, params_shapes, extra = seen[0]
    assert updates_shapes == params_shapes and extra == []  # aggregated: no per-example axis, no data


@pytest.mark.parametrize("options, message", [
    (dict(models=1), "--models"), (dict(models=3), "--models"), (dict(pool=10), "--pool"),
    (dict(fpr_targets=(0.0,)), "--fpr"), (dict(fpr_targets=(1.0,)), "--fpr"),
    (dict(canary_fraction=0.6), "--canary-fraction"), (dict(canary_fraction=-0.1), "--canary-fraction"),
    (dict(arms=("dense", "magic")), "--arms"), (dict(attacks=("lira_offline", "oracle")), "--attacks"),
    (dict(sparse_ends=(1.0,)), "--sparse-end"), (dict(strategy="gpu"), "--strategy"),
])
def test_bad_options_are_rejected_before_training(options, message):
    with pytest.raises(ValueError, match=message):
        AuditConfig(**options).validate()


def test_pool_larger_than_the_data_is_rejected_before_training():
    from supjax_app.audit.app import load_audit_data

    with pytest.raises(ValueError, match="--pool"):
        load_audit_data(AuditConfig(pool=5000))  # digits has 1347 training examples


def test_pruned_arm_turns_clipping_and_noise_off_but_keeps_the_schedule():
    rules = arms_mod.pruned_rules()
    assert all(not r.is_lower_clip and not r.is_add_noise and r.effective_upper_bound >= 1e29 for r in rules)
    assert [r.min_num for r in rules] == [10, 50, -1, -1, 50]
    a, b = (make_arm(k, 0.1, schedule=suppress_schedule(10, 5, 0.9)) for k in ("suppressed", "pruned"))
    assert a.settings == b.settings


def test_make_arm_rejects_unknown_kinds_and_missing_settings():
    with pytest.raises(ValueError, match="kind"):
        make_arm("magic", 0.1)
    with pytest.raises(ValueError, match="noise"):
        make_arm("dpsgd", 0.1)
    with pytest.raises(ValueError, match="schedule"):
        make_arm("suppressed", 0.1)


def test_train_arm_rejects_unknown_strategy():
    with pytest.raises(ValueError, match="strategy"):
        train_arm(_linear, Arm("a", lambda: optax.sgd(0.1)), [np.zeros((4, 2))], np.zeros((2, 2, 2, 1)),
                  np.zeros(2, int), np.zeros((1, 1, 1), int), strategy="fast")
