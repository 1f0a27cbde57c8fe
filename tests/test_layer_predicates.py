"""Layers chosen by predicate, and overlapping rules: the most specific wins (an exact path)."""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import optax
import pytest

from supjax import LayerRule, SuppressSchedule, find_suppress_state, suppress
from supjax.engine import select_layers

PARAMS = {
    "conv1": {"kernel": jnp.ones((3, 3, 1, 4)), "bias": jnp.zeros(4)},
    "conv2": {"kernel": jnp.ones((3, 3, 4, 8)), "bias": jnp.zeros(8)},
    "fc": {"kernel": jnp.ones((32, 10)), "bias": jnp.zeros(10)},
}


def chosen(rules, params=PARAMS):
    return {s.path: s.rule for s in select_layers(params, rules)}


def test_predicate_sees_path_and_leaf():
    seen = []

    def conv_kernels(path, leaf):
        seen.append((path, tuple(leaf.shape)))
        return leaf.ndim == 4

    assert list(chosen([LayerRule(conv_kernels)])) == ["conv1/kernel", "conv2/kernel"]
    assert ("fc/kernel", (32, 10)) in seen and ("conv1/bias", (4,)) in seen and len(seen) == 6


def test_every_kernel_but_the_first():
    rule = LayerRule(lambda path, leaf: path.endswith("/kernel") and path != "conv1/kernel")
    assert list(chosen([rule])) == ["conv2/kernel", "fc/kernel"]


def test_predicate_works_under_jit_with_traced_leaves():
    rule = LayerRule(lambda path, leaf: leaf.ndim == 4, min_num=2)
    tx = optax.chain(optax.sgd(0.1), suppress([rule], SuppressSchedule.from_steps(1, 4, 2, sparse_end=0.5)))
    state = tx.init(PARAMS)
    params = PARAMS
    step = jax.jit(tx.update)
    for _ in range(3):  # the operation after step 2 lands in update 3
        updates, state = step(jax.tree.map(jnp.zeros_like, params), state, params)
        params = optax.apply_updates(params, updates)
    sup = find_suppress_state(state)
    assert [m.shape for m in sup.keep_masks] == [(3, 3, 1, 4), (3, 3, 4, 8)]
    # offset 1 of 4 steps: 0.5 - 0.5 * 0.75**3 = 0.2890625; int(36 * s) = 10, int(288 * s) = 83
    assert sup.suppressed.tolist() == [10, 83] and int(sup.operations) == 1
    assert int((params["conv2"]["kernel"] == 0).sum()) == 83 and not bool((params["fc"]["kernel"] == 0).any())


def test_nnx_state_paths():
    nnx = pytest.importorskip("flax.nnx")

    class Net(nnx.Module):
        def __init__(self, rngs):
            self.conv1 = nnx.Conv(1, 4, (3, 3), rngs=rngs)
            self.conv2 = nnx.Conv(4, 8, (3, 3), rngs=rngs)
            self.fc = nnx.Linear(8, 10, rngs=rngs)

    params = nnx.state(Net(nnx.Rngs(0)), nnx.Param)
    rule = LayerRule(lambda path, leaf: path.endswith("kernel") and not path.startswith("conv1/"))
    assert list(chosen([rule], params)) == ["conv2/kernel", "fc/kernel"]


@pytest.mark.parametrize("order", [1, -1])
def test_exact_path_wins_over_patterns_whatever_the_order(order):
    first = LayerRule("conv1/kernel", min_num=10)
    glob = LayerRule("*/kernel", is_lower_clip=True)
    pred = LayerRule(lambda path, leaf: path.endswith("bias") or path == "conv1/kernel", is_add_noise=True)
    got = chosen([first, glob, pred][::order])
    assert got == {
        "conv1/bias": pred, "conv1/kernel": first, "conv2/bias": pred, "conv2/kernel": glob,
        "fc/bias": pred, "fc/kernel": glob,
    }


def test_two_patterns_on_one_leaf_are_ambiguous():
    rules = [LayerRule("conv*/kernel"), LayerRule(lambda path, leaf: leaf.ndim == 4)]
    with pytest.raises(ValueError, match=r"'conv1/kernel' is matched by more than one rule.*'conv\*/kernel'.*predicate"):
        select_layers(PARAMS, rules)
    with pytest.raises(ValueError, match="more than one rule"):
        select_layers(PARAMS, [LayerRule("fc/kernel"), LayerRule(re.compile("fc/.*")), LayerRule("fc/*")])


def test_a_rule_left_without_leaves_is_an_error():
    params = {"conv1": {"kernel": jnp.ones((3, 3))}, "fc": {"kernel": jnp.ones((3, 3))}}
    with pytest.raises(ValueError, match=r"match no parameter.*'conv1/\*'"):
        select_layers(params, [LayerRule("conv1/kernel"), LayerRule("conv1/*")])
    with pytest.raises(ValueError, match=r"match no parameter.*<predicate .*lambda>"):
        select_layers(params, [LayerRule(lambda path, leaf: leaf.ndim == 3)])


def test_bad_predicates():
    with pytest.raises(TypeError, match=r"pattern <predicate .*> must return a bool for 'conv1/bias', got NoneType"):
        select_layers(PARAMS, [LayerRule(lambda path, leaf: None)])
    with pytest.raises(TypeError, match="must return a bool.*ArrayImpl"):
        select_layers(PARAMS, [LayerRule(lambda path, leaf: jnp.asarray(True))])
    with pytest.raises(TypeError, match="pattern must be a str.*callable.*got int"):
        LayerRule(3)

    def same(path, leaf):
        return leaf.ndim == 4

    with pytest.raises(ValueError, match="unique.*predicate"):
        select_layers(PARAMS, [LayerRule(same), LayerRule(same, min_num=3)])
