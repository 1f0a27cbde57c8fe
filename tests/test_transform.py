"""The optax transformations under jit: placement, exact zeros, compilation, errors."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import supjax

from supjax import (
    LayerRule,
    SuppressSchedule,
    find_suppress_state,
    suppress,
    suppress_gradients,
)
from supjax.engine import stop_count

RULES = [LayerRule("dense1/kernel", is_lower_clip=True, min_num=10), LayerRule("dense2/kernel", min_num=5)]


def init_params(seed=0):
    k1, k2 = jax.random.split(jax.random.PRNGKey(seed))
    return {
        "dense1": {"kernel": jax.random.normal(k1, (16, 32)) * 0.5, "bias": jnp.zeros(32)},
        "dense2": {"kernel": jax.random.normal(k2, (32, 4)) * 0.5, "bias": jnp.zeros(4)},
    }


def loss_fn(params, x, y):
    h = jnp.tanh(x @ params["dense1"]["kernel"] + params["dense1"]["bias"])
    out = h @ params["dense2"]["kernel"] + params["dense2"]["bias"]
    return jnp.mean((out - y) ** 2)


def data(step):
    key = jax.random.PRNGKey(100 + step)
    x = jax.random.normal(key, (8, 16))
    return x, jnp.stack([x[:, :4].sum(1), x[:, 4:8].sum(1), -x[:, 0], x[:, 3]], 1)


def make_step(tx, trace_counter=None):
    def step(params, opt_state, x, y):
        if trace_counter is not None:
            trace_counter.append(1)
        grads = jax.grad(loss_fn)(params, x, y)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    return jax.jit(step)


SCHEDULE = SuppressSchedule.from_steps(start_step=5, end_step=44, mask_times=8, sparse_end=0.8)


@pytest.mark.parametrize(
    "optimizer",
    [optax.sgd(0.05), optax.sgd(0.05, momentum=0.9), optax.adam(1e-2), optax.adamw(1e-2),
     optax.sgd(optax.linear_schedule(0.1, 0.01, 60))],
    ids=["sgd", "momentum", "adam", "adamw", "lr-schedule"],
)
def test_any_optimizer_keeps_suppressed_weights_at_exactly_zero(optimizer):
    tx = optax.chain(optimizer, suppress(RULES, SCHEDULE))
    params = init_params()
    opt_state = tx.init(params)
    traces = []
    step = make_step(tx, traces)
    for t in range(60):
        params, opt_state = step(params, opt_state, *data(t))
        state = find_suppress_state(opt_state)
        for mask, path in zip(state.keep_masks, ("dense1", "dense2")):
            w = np.asarray(params[path]["kernel"])
            assert np.all(w[~np.asarray(mask)] == 0.0), f"step {t}: {path} has non-zero suppressed weights"
    assert len(traces) == 1, "the step was traced more than once"
    state = find_suppress_state(opt_state)
    # decided after steps 5, 10, ..., 55 (operations go on after the window), applied one update later
    assert int(state.operations) == 11
    for (path, rule), count in zip([("dense1", RULES[0]), ("dense2", RULES[1])], state.suppressed):
        n = params[path]["kernel"].size
        target = stop_count(n, rule.min_num, 0.8)
        zeros = int(np.sum(np.asarray(params[path]["kernel"]) == 0.0))
        assert int(count) == target
        assert abs(zeros - target) <= 1


def test_operation_applies_on_the_step_after_it_is_decided():
    sched = SuppressSchedule.from_steps(start_step=3, end_step=6, mask_times=2, sparse_start=0.5, sparse_end=0.9)
    tx = suppress([LayerRule("w")], sched)
    params = {"w": jnp.linspace(0.1, 1.0, 10)}
    state = tx.init(params)
    update = jax.jit(tx.update)
    ops = []
    for _ in range(8):
        _, state = update({"w": jnp.zeros(10)}, state, params)
        ops.append(int(state.operations))
    # decisions after steps 3 (start) and 5 (interval 2) and 7: applied in updates 4, 6, 8
    assert ops == [0, 0, 0, 1, 1, 2, 2, 3]


def test_unselected_leaves_pass_through_bit_for_bit():
    params = init_params()
    grads = jax.grad(loss_fn)(params, *data(0))
    plain = optax.adam(1e-2)
    tx = optax.chain(optax.adam(1e-2), suppress(RULES, SuppressSchedule.from_steps(1, 4, 4, sparse_end=0.5)))
    s_plain, s_tx = plain.init(params), tx.init(params)
    update_plain, update_tx = jax.jit(plain.update), jax.jit(tx.update)
    for _ in range(5):
        u_plain, s_plain = update_plain(grads, s_plain, params)
        u_tx, s_tx = update_tx(grads, s_tx, params)
        for path in ("dense1", "dense2"):
            np.testing.assert_array_equal(np.asarray(u_plain[path]["bias"]), np.asarray(u_tx[path]["bias"]))


def test_gradient_form_matches_after_optimizer_form_for_sgd():
    lr = 0.05
    tx_a = optax.chain(optax.sgd(lr), suppress(RULES, SCHEDULE))
    tx_b = optax.chain(suppress_gradients(RULES, SCHEDULE, lr), optax.sgd(lr))
    pa = pb = init_params(1)
    sa, sb = tx_a.init(pa), tx_b.init(pb)
    step_a, step_b = make_step(tx_a), make_step(tx_b)
    for t in range(50):
        pa, sa = step_a(pa, sa, *data(t))
        pb, sb = step_b(pb, sb, *data(t))
    for path in ("dense1", "dense2"):
        np.testing.assert_allclose(np.asarray(pa[path]["kernel"]), np.asarray(pb[path]["kernel"]), atol=1e-5)
    for ma, mb in zip(find_suppress_state(sa).keep_masks, find_suppress_state(sb).keep_masks):
        np.testing.assert_array_equal(np.asarray(ma), np.asarray(mb))


def _noisy_run(seed):
    rules = [LayerRule("w", is_add_noise=True)]
    tx = optax.chain(optax.sgd(0.0), suppress(rules, SuppressSchedule.from_steps(1, 4, 2, sparse_end=0.3), seed=seed))
    params = {"w": jnp.linspace(-1.0, 1.0, 40)}
    state = tx.init(params)
    update = jax.jit(tx.update)
    for _ in range(4):
        updates, state = update({"w": jnp.zeros(40)}, state, params)
        params = optax.apply_updates(params, updates)
    return np.asarray(params["w"])


def test_noise_is_reproducible_from_the_seed_and_differs_between_seeds():
    a, b, c = _noisy_run(0), _noisy_run(0), _noisy_run(1)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    noised = np.abs(np.linspace(-1.0, 1.0, 40)) > 0.5
    assert np.all(np.abs(a - c)[~noised] == 0)


def test_update_without_params_is_a_clear_error():
    tx = suppress(RULES, SCHEDULE)
    params = init_params()
    state = tx.init(params)
    with pytest.raises(ValueError, match="needs params"):
        tx.update(params, state)


def test_params_with_another_structure_are_an_error():
    tx = suppress(RULES, SCHEDULE)
    params = init_params()
    state = tx.init(params)
    other = {"dense1": params["dense1"], "dense2": {"kernel": jnp.ones((32, 5)), "bias": jnp.zeros(5)}}
    with pytest.raises(ValueError, match="shape"):
        tx.update(other, state, other)
    with pytest.raises(ValueError, match="same structure"):
        tx.update({"a": 1.0}, state, params)


def test_hold_steps_do_not_change_the_mask_or_count():
    tx = optax.chain(optax.sgd(0.1), suppress(RULES, SuppressSchedule.from_steps(1, 20, 2, sparse_end=0.5)))
    params = init_params()
    opt_state = tx.init(params)
    step = make_step(tx)
    for t in range(11):  # the operation decided after step 10 is applied in update 11
        params, opt_state = step(params, opt_state, *data(t))
    first = find_suppress_state(opt_state)
    for t in range(11, 19):
        params, opt_state = step(params, opt_state, *data(t))
    later = find_suppress_state(opt_state)
    assert int(first.operations) == int(later.operations) == 1
    for a, b in zip(first.keep_masks, later.keep_masks):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("warn", [False, True])
def test_nonfinite_layer_is_skipped_counted_and_warned_only_when_asked(caplog, warn):
    rules = [LayerRule("a"), LayerRule("b")]
    tx = suppress(rules, SuppressSchedule.from_steps(1, 6, 6, sparse_end=0.5), warn_nonfinite=warn)
    params = {"a": jnp.array([0.5, jnp.nan, 0.3, 0.2]), "b": jnp.array([0.5, 0.1, 0.3, 0.2])}
    state = tx.init(params)
    update = jax.jit(tx.update)
    zeros = jax.tree.map(jnp.zeros_like, params)
    supjax.transform._WARNED_NONFINITE.clear()
    with caplog.at_level("WARNING", logger="supjax"):
        for _ in range(5):
            updates, state = update(zeros, state, params)
            jax.block_until_ready(updates)
    # four operations with stop counts 0, 0, 1, 1 (sparsity 0, .21, .35, .44 of 4 weights):
    # the two with something to suppress are skipped for the NaN and counted
    assert int(state.operations) == 4 and int(state.nonfinite_skips[0]) == 2
    assert int(state.nonfinite_skips[1]) == 0 and int(state.suppressed[1]) > 0
    assert bool(jnp.all(state.keep_masks[0]))
    assert not bool(jnp.any(jnp.isnan(updates["a"])))
    assert [r.nonfinite_skips for r in supjax.sparsity_report(params, state, rules)] == [2, 0]
    warnings = [r for r in caplog.records if "NaN or Inf" in r.getMessage()]
    assert len(warnings) == (1 if warn else 0)
    has_callback = "callback" in jax.jit(tx.update).lower(zeros, state, params).as_text()
    assert has_callback == warn
