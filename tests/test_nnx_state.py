"""``find_suppress_state`` on Flax NNX's forms of an optimizer's state."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import supjax
from supjax import LayerRule, SuppressSchedule, SuppressState, find_suppress_state

nnx = pytest.importorskip("flax.nnx")

RULES = [LayerRule("lin1/kernel"), LayerRule("lin2/kernel")]
SCHEDULE = SuppressSchedule.from_steps(1, 6, 3, sparse_end=0.5)  # operations after updates 2 and 4


class MLP(nnx.Module):
    def __init__(self, rngs: nnx.Rngs):
        self.lin1 = nnx.Linear(4, 8, rngs=rngs)
        self.lin2 = nnx.Linear(8, 2, rngs=rngs)

    def __call__(self, x):
        return self.lin2(nnx.relu(self.lin1(x)))


@pytest.fixture(scope="module")
def trained():
    model = MLP(nnx.Rngs(0))
    tx = optax.chain(optax.adam(1e-2), supjax.suppress(RULES, SCHEDULE, seed=jax.random.key(5)))
    optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
    x = jnp.asarray(np.random.default_rng(0).normal(size=(16, 4)).astype(np.float32))
    y = jnp.asarray(np.arange(16) % 2)

    @nnx.jit
    def step(model, optimizer, x, y):
        def loss(m):
            return optax.softmax_cross_entropy_with_integer_labels(m(x), y).mean()

        grads = nnx.grad(loss)(model)
        optimizer.update(model, grads)

    for _ in range(5):
        step(model, optimizer, x, y)
    return model, optimizer


def _assert_same(a: SuppressState, b: SuppressState):
    assert isinstance(a, SuppressState) and isinstance(b, SuppressState)
    for name, x, y in zip(SuppressState._fields, a, b):
        xs, ys = (x, y) if name == "keep_masks" else ((x,), (y,))
        assert len(xs) == len(ys), name
        for u, v in zip(xs, ys):
            assert isinstance(u, jax.Array) and isinstance(v, jax.Array), name  # no flax Variable left
            np.testing.assert_array_equal(np.asarray(u), np.asarray(v), err_msg=name)


def test_every_nnx_form_gives_the_same_state(trained):
    model, optimizer = trained
    ref = find_suppress_state(optimizer.opt_state)
    assert int(ref.count) == 5 and int(ref.operations) == 2
    # second operation (update 4, start 1, 6 steps): s = 0.5 - 0.5 * (1 - 3/6)**3 = 0.4375
    assert float(ref.sparsity) == 0.4375 and ref.suppressed.tolist() == [14, 7]  # int(32 s), int(16 s)
    state = nnx.state(optimizer)
    pure = nnx.to_pure_dict(state)
    as_restored = {"opt_state": {"1": {k: ({str(i): m for i, m in v.items()} if k == "keep_masks" else v)
                                       for k, v in pure["opt_state"][1].items()}}}  # orbax: string keys
    for form in (state, nnx.split(optimizer)[1], nnx.split(optimizer), pure, as_restored):
        _assert_same(find_suppress_state(form), ref)


def test_rebuilding_by_hand_as_documented(trained):
    _, optimizer = trained
    fields = dict(nnx.to_pure_dict(nnx.state(optimizer))["opt_state"][1])
    masks = fields.pop("keep_masks")
    rebuilt = SuppressState(keep_masks=tuple(masks[i] for i in sorted(masks)), **fields)
    _assert_same(rebuilt, find_suppress_state(optimizer.opt_state))


def test_report_from_an_nnx_state(trained):
    model, optimizer = trained
    params = nnx.to_pure_dict(nnx.state(model, nnx.Param))
    rows = supjax.sparsity_report(params, find_suppress_state(nnx.state(optimizer)), RULES)
    assert [(r.path, r.size, r.suppressed, r.leaked) for r in rows] == [
        ("lin1/kernel", 32, 14, 0), ("lin2/kernel", 16, 7, 0)]
    assert [r.mask_sparsity for r in rows] == [14 / 32, 7 / 16]
    assert [r.weight_sparsity for r in rows] == [14 / 32, 7 / 16]


def test_a_mapping_with_other_keys_is_not_a_state(trained):
    _, optimizer = trained
    pure = nnx.to_pure_dict(nnx.state(optimizer))
    pure["opt_state"][1].pop("leaked")
    with pytest.raises(ValueError, match="exactly one SuppressState, found 0"):
        find_suppress_state(pure)
    twice = {"a": nnx.state(optimizer), "b": nnx.to_pure_dict(nnx.state(optimizer))}
    with pytest.raises(ValueError, match="found 2"):
        find_suppress_state(twice)
