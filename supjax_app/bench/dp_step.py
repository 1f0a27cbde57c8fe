"""``dp_step_ratio``: one DP-SGD step (per-example gradients) over one non-private step, LeNet5 28x28.

Both steps train the same LeNet5 (tanh, as ``supjax train --dp``) on the same batch of
``batch`` random 28x28 images: the non-private one is ``jax.grad`` of the mean loss and
``optax.sgd``; the DP one is :func:`supjax_app.dp.train.make_dp_step` (``jax.vmap`` of
``jax.grad``, per-example clipping, noise, SGD with momentum). Timed interleaved, as the
other figures (:mod:`supjax_app.bench.timing`); the ratio is taken round by round.

>>> fig = measure_dp_step_ratio(Counts(quick=True), seed=0, batch=8)  # doctest: +SKIP
>>> fig["median"] > 0, sorted(fig["detail"]["step_ms"])  # doctest: +SKIP
(True, ['dp', 'non_private'])
"""

from __future__ import annotations

import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from supjax_app.bench.timing import Counts, interleave, paired_ratios, stats
from supjax_app.dp.train import dp_optimizer, make_dp_step
from supjax_app.models import init_params, lenet5_for

__all__ = [
    "measure_dp_step_ratio",
]


def measure_dp_step_ratio(counts: Counts, seed: int = 0, batch: int | None = None) -> dict[str, Any]:
    """Median/min/max of (DP-SGD step time / non-private step time) and both step times in ms.

    ``batch`` defaults to 1024 (fixed so the figure compares across commits; ``--dp`` now defaults to
    512), 64 with a quick ``counts``.
    """
    batch = batch or (64 if counts.quick else 1024)
    model = lenet5_for((28, 28, 1), 10, activation="tanh")
    params = init_params(model, (28, 28, 1), seed)
    rng = np.random.default_rng(seed)
    x = jnp.asarray(rng.random((batch, 28, 28, 1), dtype=np.float32))
    y = jnp.asarray(rng.integers(0, 10, batch).astype(np.int32))
    mask = jnp.ones(batch, bool)

    def apply(p: Any, xb: jax.Array) -> jax.Array:
        return model.apply({"params": p}, xb)

    plain_tx = optax.sgd(0.05)

    @jax.jit
    def plain_step(p, opt_state, xb, yb):
        grads = jax.grad(lambda q: optax.softmax_cross_entropy_with_integer_labels(apply(q, xb), yb).mean())(p)
        updates, opt_state = plain_tx.update(grads, opt_state, p)
        return optax.apply_updates(p, updates), opt_state

    dp_tx = dp_optimizer(4.0, 0.9, 0.1, 1.0, batch, seed)
    dp_step = make_dp_step(apply, dp_tx)
    copy = lambda tree: jax.tree_util.tree_map(jnp.array, tree)  # noqa: E731 (dp_step donates its inputs)
    runs = {"non_private": [lambda p, s: plain_step(p, s, x, y), copy(params), plain_tx.init(params)],
            "dp": [lambda p, s: dp_step(p, s, x, y, mask)[:2], copy(params), dp_tx.init(params)]}
    for run in runs.values():  # compile and warm up
        for _ in range(counts.step_warmup):
            run[1], run[2] = run[0](run[1], run[2])
        jax.block_until_ready(run[1])

    def sampler(name: str):
        def sample(_round: int) -> float:
            step, p, s = runs[name]
            start = time.perf_counter()
            for _ in range(counts.step_batch):
                p, s = step(p, s)
            jax.block_until_ready(p)
            runs[name][1], runs[name][2] = p, s
            return (time.perf_counter() - start) / counts.step_batch

        return sample

    samples = interleave({name: sampler(name) for name in runs}, counts.step_rounds)
    fig = stats(paired_ratios(samples["dp"], samples["non_private"]))
    fig["detail"] = {"batch": batch, "step_ms": {k: 1e3 * stats(v)["median"] for k, v in samples.items()}}
    fig["unit"] = "x"
    fig["goal"] = "reported (no goal)"
    return fig
