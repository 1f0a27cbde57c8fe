"""Misuse is detected: ``SuppressState.leaked``, the report's warning, ``supjax train``'s refusal,
and what ``suppress_gradients`` does with momentum and learning-rate schedules."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import supjax
from supjax import LayerRule, SuppressSchedule, find_suppress_state, suppress, suppress_gradients

RULES = [LayerRule("w")]
W0 = np.linspace(-1.0, 1.0, 20, dtype=np.float32)  # no exact zero among them
# operations after updates 2, 4, 6 (stop counts 4, 8, 9) and 8 (the final one, 10)
SCHEDULE = SuppressSchedule.from_steps(1, 6, 3, sparse_end=0.5)


def _run(tx, grads, steps, params=None):
    """``steps`` updates with ``grads(i)``; returns params and the SuppressState after each."""
    params = {"w": jnp.asarray(W0)} if params is None else params
    state = tx.init(params)
    states = []

    @jax.jit
    def step(g, state, params):
        updates, state = tx.update(g, state, params)
        return optax.apply_updates(params, updates), state

    for i in range(steps):
        params, state = step({"w": grads(i)}, state, params)
        states.append(find_suppress_state(state))
    return params, states


def _zeros(i):
    return jnp.zeros(20, jnp.float32)


def _noisy(i):
    return jnp.asarray(np.random.default_rng(i).normal(size=20).astype(np.float32))


def test_suppress_first_leaks_every_masked_weight_and_the_report_says_why():
    params, states = _run(optax.chain(suppress(RULES, SCHEDULE), optax.sgd(0.1)), _zeros, 4)
    first_op = states[2]  # the first operation (4 weights), at update 2
    assert int(first_op.operations) == 1 and int(first_op.suppressed[0]) == 4
    assert first_op.leaked.tolist() == [0]  # checked against the masks before it: none yet
    masked = ~np.asarray(first_op.keep_masks[0])
    assert masked.sum() == 4
    # suppress's correction -(w - 0) is scaled by sgd's -0.1: masked weights go to 1.1 w, not 0
    np.testing.assert_allclose(np.asarray(params["w"])[masked], 1.1 * W0[masked], rtol=1e-6)
    assert states[3].leaked.tolist() == [4]  # the check on the update after the operation
    rows = supjax.sparsity_report(params, states[3], RULES)
    assert rows[0].leaked == 4 and rows[0].weight_sparsity == 0.0 and rows[0].mask_sparsity == 0.2
    text = supjax.format_report(rows)
    assert "warning: w: 4 of 4 masked weights are not zero" in text
    assert "last in the optax.chain" in text and "drops or rescales its updates" in text


def test_suppress_first_with_adam_leaks_at_every_later_check():
    _, states = _run(optax.chain(suppress(RULES, SCHEDULE), optax.adam(0.01)), _noisy, 10)
    # each check counts the masked weights of the masks it checks: 4, then 4 and 8, 8 and 9 ...
    assert [s.leaked.tolist()[0] for s in states] == [0, 0, 0, 4, 4, 8, 8, 9, 9, 10]


def test_suppress_inside_schedule_free_leaks():
    # schedule_free gives its inner chain the z sequence but returns steps to the averaged x:
    # the weights never hold what suppress returned, and every check sees every masked weight
    tx = optax.contrib.schedule_free(optax.chain(optax.sgd(1.0), suppress(RULES, SCHEDULE)), learning_rate=0.1)
    params, states = _run(tx, _noisy, 10)
    assert [s.leaked.tolist()[0] for s in states] == [0, 0, 0, 4, 4, 8, 8, 9, 9, 10]
    assert supjax.sparsity_report(params, states[-1], RULES)[0].weight_sparsity == 0.0


def _multisteps_inside():
    return optax.MultiSteps(optax.chain(optax.adam(0.01), suppress(RULES, SCHEDULE)), every_k_schedule=2)


def _multisteps_outside():
    return optax.chain(optax.MultiSteps(optax.adam(0.01), every_k_schedule=2).gradient_transformation(),
                       suppress(RULES, SCHEDULE))


LAST = {
    "sgd": lambda: optax.chain(optax.sgd(0.1), suppress(RULES, SCHEDULE)),
    "momentum": lambda: optax.chain(optax.sgd(0.1, momentum=0.9), suppress(RULES, SCHEDULE)),
    "adam": lambda: optax.chain(optax.adam(0.01), suppress(RULES, SCHEDULE)),
    "adamw": lambda: optax.chain(optax.adamw(0.01, weight_decay=0.1), suppress(RULES, SCHEDULE)),
    "multisteps_inside": _multisteps_inside,
    "multisteps_outside": _multisteps_outside,
    "apply_if_finite": lambda: optax.apply_if_finite(
        optax.chain(optax.adam(0.01), suppress(RULES, SCHEDULE)), max_consecutive_errors=3),
}


@pytest.mark.parametrize("name", sorted(LAST))
def test_suppress_last_never_leaks(name):
    def grads(i):  # a NaN gradient on update 5 (apply_if_finite drops that update)
        g = _noisy(i)
        return g.at[3].set(jnp.nan) if name == "apply_if_finite" and i == 5 else g

    steps = 24 if name.startswith("multisteps_inside") else 12
    params, states = _run(LAST[name](), grads, steps)
    assert int(states[-1].operations) >= 4  # every check ran: after each of 4 operations
    assert all(s.leaked.tolist() == [0] for s in states)
    masked = ~np.asarray(states[-1].keep_masks[0])
    assert masked.sum() == 10 and np.all(np.asarray(params["w"])[masked] == 0.0)
    assert "warning" not in supjax.format_report(supjax.sparsity_report(params, states[-1], RULES))


def test_suppress_gradients_with_momentum_shows_the_leak():
    lr = 0.1
    plain, plain_states = _run(optax.chain(suppress_gradients(RULES, SCHEDULE, lr), optax.sgd(lr)), _zeros, 5)
    assert [s.leaked.tolist()[0] for s in plain_states] == [0] * 5
    params, states = _run(
        optax.chain(suppress_gradients(RULES, SCHEDULE, lr), optax.sgd(lr, momentum=0.9)), _zeros, 5)
    masked = ~np.asarray(states[2].keep_masks[0])
    # update 2 (operation, trace 0 before): trace = w/lr, weights land on 0; update 3: trace =
    # 0.9 w/lr, weights -0.9 w; update 4 (operation): add = -0.9 w/lr, trace = -0.9 w/lr +
    # 0.81 w/lr, so the weights move by 0.9 w - 0.81 w and end at -0.81 w instead of 0
    np.testing.assert_allclose(np.asarray(params["w"])[masked], -0.81 * W0[masked], rtol=1e-5)
    # plain SGD lands on 0 up to the rounding of (w / lr) * lr, far below the 1e-7 of a zero
    assert np.all(np.abs(np.asarray(plain["w"])[masked]) <= 1e-7)
    assert states[3].leaked.tolist() == [0]  # the update right after the operation landed
    assert states[4].leaked.tolist() == [4]  # the next operation finds the 4 masked weights moved


def test_suppress_gradients_follows_a_learning_rate_schedule():
    lr = optax.exponential_decay(0.2, transition_steps=1, decay_rate=0.5)  # 0.2, 0.1, 0.05, ...
    params, states = _run(optax.chain(suppress_gradients(RULES, SCHEDULE, lr), optax.sgd(lr)), _noisy, 10)
    masked = ~np.asarray(states[-1].keep_masks[0])
    assert masked.sum() == 10 and np.all(np.abs(np.asarray(params["w"])[masked]) <= 1e-7)
    assert all(s.leaked.tolist() == [0] for s in states)
    # a float learning rate that is not SGD's: the correction misses and the check sees it
    _, wrong = _run(optax.chain(suppress_gradients(RULES, SCHEDULE, 0.2), optax.sgd(lr)), _noisy, 4)
    assert wrong[3].leaked.tolist() == [4]


@pytest.mark.parametrize("bad,error", [("0.1", TypeError), (True, TypeError), (0.0, ValueError),
                                       (-1.0, ValueError)])
def test_suppress_gradients_rejects_a_bad_learning_rate(bad, error):
    with pytest.raises(error, match="learning_rate"):
        suppress_gradients(RULES, SCHEDULE, bad)


def test_train_refuses_to_report_a_leaking_run():
    from supjax_app.train.report import LeakingMasksError, check_masks_hold

    params, states = _run(optax.chain(suppress(RULES, SCHEDULE), optax.sgd(0.1)), _zeros, 4)
    # a ValueError: the supjax command prints it as "supjax train: error: ..." and exits with 2
    assert issubclass(LeakingMasksError, ValueError)
    with pytest.raises(LeakingMasksError, match=r"w: 4 of 4 masked weights are not zero.*last in the optax.chain"):
        check_masks_hold(params, states[-1], RULES)
    clean_params, clean = _run(LAST["sgd"](), _zeros, 4)
    check_masks_hold(clean_params, clean[-1], RULES)
    check_masks_hold(params, None, RULES)  # a dense run has nothing to check
