"""supjax's side of the one-operation oracle cases, and the comparison of landed weights.

Where bit equality is impossible, and why: MindArmour's correction is
``add = float32((float64(w) - target) / lr)`` (a float32 weight minus a Python float, divided
by the Python float ``lr``), while supjax's ``suppress_gradients`` computes
``(w - target) / lr`` in float32, with ``lr`` and the clip targets rounded to float32. The
two ``add`` differ by at most a couple of float32 roundings, and the SGD step
``w - lr * (add + g * mask)`` carries that into the landed weight. Only corrected entries
(``add != 0`` in MindArmour's step) can differ; every other entry must be bit-identical.
:data:`MAX_CORRECTION_ULPS` bounds the difference in float32 ulps of the largest term of
MindArmour's step, ``max(|w|, |lr * add|, |lr * g|)`` (the landed weight itself can be tiny,
when the terms cancel): measured over the 22 one-operation cases, corrected
entries differ in 0 to 2 ulps (2 reached in 8 cases, by clipped, suppressed and pulled
weights alike), uncorrected entries in none.
``compat_mindspore`` redoes the division in float64 (``_corrections``) and matches bitwise:
``tests/mindspore/test_ms_parity.py``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from supjax import LayerRule, SuppressSchedule, find_suppress_state, suppress_gradients
from tests.oracle.reference import BATCH_NUM, END_EPOCH, MASK_TIMES, SPARSE_END, START_EPOCH, ReferenceOutcome

#: Largest difference between supjax's and MindArmour's landed corrected weights, in ulps of |w|.
MAX_CORRECTION_ULPS = 2.0


class SupjaxOutcome(NamedTuple):
    keep: np.ndarray
    landed: np.ndarray
    count: int
    sparsity: np.float32


def supjax_step(
    weights: np.ndarray,
    keep: np.ndarray,
    recorded: int,
    sparsity: float,
    grad: np.ndarray,
    *,
    first: bool = False,
    is_add_noise: bool = False,
    is_lower_clip: bool = False,
    min_num: int = -1,
    upper_bound: float = 1.2,
    lr: float = 0.05,
    seed: int = 0,
) -> SupjaxOutcome:
    """The same operation and step as :func:`~tests.oracle.reference.reference_step`, through supjax's transform.

    Update 1 (no step done yet, zero gradient) changes nothing; update 2 runs the operation
    decided after step 1 and applies it with the gradient ``grad``.
    """
    params = {"w": jnp.asarray(weights)} if first else {"a0": jnp.ones(3), "w": jnp.asarray(weights)}
    rule = LayerRule("w", is_add_noise=is_add_noise, is_lower_clip=is_lower_clip, min_num=min_num,
                     upper_bound=upper_bound)
    schedule = SuppressSchedule.from_epochs(START_EPOCH, END_EPOCH, BATCH_NUM, MASK_TIMES, sparsity, SPARSE_END)
    tx = optax.chain(suppress_gradients([rule], schedule, lr, reference_parity=True, seed=seed), optax.sgd(lr))
    state = tx.init(params)
    preset = find_suppress_state(state)._replace(
        keep_masks=(jnp.asarray(keep),), suppressed=jnp.array([recorded], jnp.int32)
    )
    state = (preset,) + tuple(state[1:])
    update = jax.jit(tx.update)
    zeros = jax.tree.map(jnp.zeros_like, params)
    for g in (zeros, dict(zeros, w=jnp.asarray(grad))):
        updates, state = update(g, state, params)
        params = optax.apply_updates(params, updates)
    found = find_suppress_state(state)
    return SupjaxOutcome(np.asarray(found.keep_masks[0]).reshape(-1), np.asarray(params["w"]).reshape(-1),
                         int(found.suppressed[0]), np.float32(found.sparsity))


def correction_ulps(ours: np.ndarray, ref: ReferenceOutcome) -> np.ndarray:
    """``|ours - ref|`` in float32 ulps of the step's largest term (``ref.scale``)."""
    diff = np.abs(ours.astype(np.float64) - ref.landed.astype(np.float64))
    return diff / np.spacing(ref.scale).astype(np.float64)


def check_landing(ours: np.ndarray, ref: ReferenceOutcome) -> float:
    """Uncorrected entries bit-identical; corrected ones within :data:`MAX_CORRECTION_ULPS`; returns the worst."""
    assert ours.dtype == ref.landed.dtype == np.float32
    plain = ~ref.corrected
    assert np.array_equal(ours[plain], ref.landed[plain]), np.flatnonzero(ours[plain] != ref.landed[plain])[:10]
    ulps = correction_ulps(ours, ref)[ref.corrected]
    worst = float(ulps.max(initial=0.0))
    assert worst <= MAX_CORRECTION_ULPS, worst
    return worst
