"""How much of the suppressed LeNet5 step's compile time is scaffolding, how much the operation.

A measurement kept with its record (docs/bench/HISTORY.md, "The floor of the design"), not part
of the package. Four arms of ``supjax train``'s LeNet5 step (28x28x1, batch 32), each lowered and
compiled from scratch with the persistent cache off, three rounds in rotating order:

* ``dense``: ``optax.sgd`` alone;
* ``masks``: ``chain(sgd, t)`` where ``t`` only zeroes the five layers' updates where fixed
  boolean masks carried in its state say so: the least any mask-applying transformation compiles;
* ``scaffold``: ``chain(sgd, suppress(...))`` with the operation (``grouped_operation``) swapped
  for a trivial one (``keep & (|w| > 0.01)``, the newly masked weights corrected to 0); the
  state, schedule, three-way switch, leak check and the layers' join and cut are unchanged;
* ``full``: ``chain(sgd, suppress(...))`` as shipped.

Run from the repository root, once per rotation (0, 1, 2), in the core environment::

    PYTHONPATH=. .nox/core/bin/python docs/bench/compile_floor.py 0
"""

from __future__ import annotations

import sys

import jax
import jax.numpy as jnp
import optax

import supjax.transform as transform
from supjax.layers import select_layers
from supjax.operation import GroupedResult
from supjax_app.bench.runs import _compile_seconds, _lenet_apply, _step_compile_seconds

ARMS = ("dense", "masks", "scaffold", "full")
SHAPE = (28, 28, 1)


def trivial_operation(groups, plans, weights, keeps, counts, stops, key, reference_parity=False):
    """A stand-in for ``grouped_operation`` with the same result structure and almost no work."""
    del stops, key, reference_parity
    w_groups = groups.join(weights)
    keep = tuple(k & (jnp.abs(w) > 0.01) for k, w in zip(keeps, w_groups))
    delta = tuple(jnp.where(k, jnp.zeros_like(w), w) for k, w in zip(keep, w_groups))
    move = tuple(jnp.zeros(w.shape, jnp.int8) for w in w_groups)
    n = len(plans)
    return GroupedResult(keep, delta, move, counts, jnp.zeros(n, jnp.float32), jnp.zeros(n, bool),
                         jnp.asarray(True))


def fixed_masks(rules) -> optax.GradientTransformationExtraArgs:
    """Zero the selected layers' updates where boolean masks (all True at init) in the state say so."""
    def positions(params):
        return [layer.leaf_index for layer in select_layers(params, rules)]

    def init(params):
        leaves = jax.tree_util.tree_leaves(params)
        return tuple(jnp.ones_like(leaves[i], dtype=bool) for i in positions(params))

    def update(updates, masks, params=None, **extra):
        del extra
        leaves, treedef = jax.tree_util.tree_flatten(updates)
        for i, mask in zip(positions(params), masks):
            leaves[i] = jnp.where(mask, leaves[i], 0)
        return jax.tree_util.tree_unflatten(treedef, leaves), masks

    return optax.GradientTransformationExtraArgs(init, update)


def arm_seconds(arm: str, apply_fn, params, rules, shipped) -> float:
    """Seconds to lower and compile ``arm``'s step, as ``supjax bench``'s compile_ratio times it."""
    if arm == "masks":
        tx = optax.chain(optax.sgd(0.05), fixed_masks(rules))
        return _step_compile_seconds(apply_fn, params, tx, [str(r.pattern) for r in rules], SHAPE)[0]
    transform.grouped_operation = trivial_operation if arm == "scaffold" else shipped
    try:
        return _compile_seconds(apply_fn, params, rules, arm != "dense", SHAPE)[0]
    finally:
        transform.grouped_operation = shipped


def main(rotation: int) -> None:
    jax.config.update("jax_enable_compilation_cache", False)
    apply_fn, params, rules = _lenet_apply(SHAPE)
    shipped = transform.grouped_operation
    arm_seconds("dense", apply_fn, params, rules, shipped)  # warm-up: imports, first trace
    for round_ in range(3):
        k = (rotation + round_) % len(ARMS)
        for arm in ARMS[k:] + ARMS[:k]:
            print(f"RESULT {arm} {arm_seconds(arm, apply_fn, params, rules, shipped):.3f}", flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
