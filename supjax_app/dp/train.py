"""Training under DP-SGD: the jitted per-example step, the Poisson-sampled loop, the optimizers.

The step computes one gradient per example (``jax.vmap`` of ``jax.grad``), zeroes the padded
rows and hands the per-example gradients to an optax chain whose first link is
:func:`~supjax_app.dp.sgd.dp_aggregate`; ``supjax.suppress`` placed later in the chain sees
only the privatised aggregate and the params (post-processing).

>>> import jax.numpy as jnp, numpy as np
>>> tx = dp_optimizer(lr=0.5, momentum=0.0, clip=1.0, noise_multiplier=0.0, batch_size=2, seed=0)
>>> step = make_dp_step(lambda p, x: x.reshape(len(x), -1) @ p, tx)
>>> p, s, loss = step(jnp.zeros((2, 2)), tx.init(jnp.zeros((2, 2))), jnp.eye(2), jnp.array([0, 1]),
...                   jnp.array([True, False]))
>>> np.round(np.asarray(p), 3).tolist(), round(float(loss), 4)  # only example 0 counts
([[0.125, -0.125], [0.0, 0.0]], 0.6931)
"""

from __future__ import annotations

import time
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

import supjax
from supjax_app.dp.sgd import dp_aggregate, poisson_batch, row_buckets

__all__ = [
    "dp_optimizer",
    "GradMaskFn",
    "make_dp_step",
    "suppressed_clipping",
    "train_dp",
]

#: ``apply(params, images) -> logits``.
ApplyFn = Callable[[Any, jax.Array], jax.Array]


def dp_optimizer(lr: float, momentum: float, clip: float, noise_multiplier: float, batch_size: float,
                 seed: int, rules: Sequence[supjax.LayerRule] | None = None,
                 schedule: supjax.SuppressSchedule | None = None) -> optax.GradientTransformation:
    """DP-SGD: ``chain(dp_aggregate(...), sgd(lr, momentum))``, then ``supjax.suppress`` when ``rules`` are given.

    >>> tx = dp_optimizer(1.0, 0.9, 0.1, 1.0, 256, seed=0, rules=[supjax.LayerRule("w")],
    ...                   schedule=supjax.SuppressSchedule.from_steps(1, 10, 2))
    >>> len(tx.init({"w": jnp.ones(3)}))  # DP aggregate, SGD, suppress
    3
    """
    links = [dp_aggregate(clip, noise_multiplier, batch_size, seed), optax.sgd(lr, momentum=momentum or None)]
    if rules is not None:
        if schedule is None:
            raise ValueError("schedule is needed with rules")
        links.append(supjax.suppress(rules, schedule, seed=seed))
    return optax.chain(*links)


#: ``grad_mask(opt_state, params) -> tree``: a params-shaped tree of keep-masks (see :func:`suppressed_clipping`).
GradMaskFn = Callable[[Any, Any], Any]


def suppressed_clipping(rules: Sequence[supjax.LayerRule]) -> GradMaskFn:
    """The ``grad_mask`` that clips only what suppression keeps: :func:`supjax.keep_mask_tree` of the state.

    Each per-example gradient is multiplied by the current keep-masks before it is clipped, so the
    clipping norm is spent on the kept weights only (the suppress transformation discards the rest
    of the update anyway). The masks are a function of the earlier privatised updates and the
    public schedule, never of the batch: each step is still a Gaussian mechanism of L2
    sensitivity ``clip`` with the same noise, so the accountant's ε holds unchanged.

    >>> rules = [supjax.LayerRule("w")]
    >>> tx = dp_optimizer(0.1, 0.0, 1.0, 0.0, 1, seed=0, rules=rules, schedule=supjax.SuppressSchedule.from_steps(1, 9, 3))
    >>> state = tx.init({"w": jnp.ones(2)})
    >>> suppressed_clipping(rules)(state, {"w": jnp.ones(2)})["w"].tolist()  # nothing suppressed yet
    [True, True]
    """
    rules = tuple(rules)

    def grad_mask(opt_state: Any, params: Any) -> Any:
        return supjax.keep_mask_tree(params, supjax.find_suppress_state(opt_state), rules)

    return grad_mask


def make_dp_step(apply: ApplyFn, tx: optax.GradientTransformation, grad_mask: GradMaskFn | None = None) -> Callable:
    """Jitted ``step(params, opt_state, x, y, mask) -> (params, opt_state, loss_sum)``.

    ``x, y`` hold the padded batch, ``mask`` marks the real rows; ``tx`` receives the
    per-example gradients (leading batch axis, padded rows zero). ``loss_sum`` is the
    summed cross-entropy of the real rows (for progress logs). ``grad_mask`` (for example
    :func:`suppressed_clipping`) gives keep-masks, read from the optimizer state and the params
    before the step: each per-example gradient is multiplied by them before ``tx`` clips it.

    >>> tx = dp_optimizer(lr=1.0, momentum=0.0, clip=1.0, noise_multiplier=0.0, batch_size=1, seed=0)
    >>> keep_first = lambda opt_state, params: jnp.array([[True, True], [False, False]])
    >>> step = make_dp_step(lambda p, x: x.reshape(len(x), -1) @ p, tx, grad_mask=keep_first)
    >>> p, _, _ = step(jnp.zeros((2, 2)), tx.init(jnp.zeros((2, 2))), jnp.array([[3.0, 4.0]]), jnp.array([0]),
    ...                jnp.array([True]))
    >>> [[round(float(v), 3) for v in row] for row in p]  # row 0's gradient (-1.5, 1.5) clipped on its own norm
    [[0.707, -0.707], [0.0, 0.0]]
    """

    def example_loss(params: Any, x: jax.Array, y: jax.Array) -> jax.Array:
        return optax.softmax_cross_entropy_with_integer_labels(apply(params, x[None]), y[None])[0]

    def step(params, opt_state, x, y, mask):
        losses, grads = jax.vmap(jax.value_and_grad(example_loss), in_axes=(None, 0, 0))(params, x, y)
        keeps = (jax.tree_util.tree_map(lambda _: True, params) if grad_mask is None
                 else grad_mask(opt_state, params))
        grads = jax.tree_util.tree_map(
            lambda g, keep: jnp.where(mask.reshape((-1,) + (1,) * (g.ndim - 1)) & keep, g, 0).astype(g.dtype),
            grads, keeps)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, jnp.sum(jnp.where(mask, losses, 0.0))

    return jax.jit(step, donate_argnums=(0, 1))


def train_dp(apply: ApplyFn, params: Any, tx: optax.GradientTransformation, x: np.ndarray, y: np.ndarray,
             *, epochs: int, batch_size: int, seed: int, log: Callable[[str], None] | None = None,
             label: str = "dp", grad_mask: GradMaskFn | None = None,
             on_step: Callable[[Any], None] | None = None) -> tuple[Any, Any, dict[str, Any]]:
    """Train ``epochs * (n // batch_size)`` Poisson-sampled DP-SGD steps; return ``(params, opt_state, info)``.

    Step ``t``'s batch is :func:`~supjax_app.dp.sgd.poisson_batch` ``(n, batch_size, seed, t)``;
    ``grad_mask`` is :func:`make_dp_step`'s; ``on_step(params)`` is called with the params after
    every step (for example to average them: :func:`~supjax_app.dp.average.make_averager`).
    Each batch is padded to the smallest of :func:`~supjax_app.dp.sgd.row_buckets` that holds it.
    ``info`` has ``steps``, ``sampling_rate``, ``capacity``, ``row_buckets``, ``overflows``
    (batches larger than the capacity), ``mean_batch``, ``mean_rows`` (rows computed per step),
    ``seconds`` and the per-epoch mean ``train_loss``.

    >>> import jax.numpy as jnp
    >>> tx = dp_optimizer(0.5, 0.0, 1.0, 0.5, 4, seed=0)
    >>> x, y = np.eye(2, dtype=np.float32).repeat(4, 0), np.array([0, 1]).repeat(4)
    >>> p, _, info = train_dp(lambda p, x: x @ p, jnp.zeros((2, 2)), tx, x, y, epochs=2, batch_size=4, seed=0)
    >>> info["steps"], info["sampling_rate"], info["capacity"]
    (4, 0.5, 16)
    """
    n = len(x)
    per_epoch = n // batch_size
    buckets = row_buckets(n, batch_size)
    rows = buckets[-1]  # the capacity
    step_fn = make_dp_step(apply, tx, grad_mask)
    params = jax.tree_util.tree_map(jnp.array, params)
    opt_state = tx.init(params)
    overflows, examples, computed, losses = 0, 0, 0, []
    t0 = time.perf_counter()
    for epoch in range(epochs):
        loss_sum, count = 0.0, 0
        pending = []
        for i in range(per_epoch):
            idx, mask = poisson_batch(n, batch_size, seed, epoch * per_epoch + i, buckets)
            overflows += len(idx) > rows
            count += int(mask.sum())
            computed += len(idx)
            params, opt_state, loss = step_fn(params, opt_state, x[idx], y[idx], mask)
            if on_step is not None:
                on_step(params)
            pending.append(loss)
        loss_sum = float(np.sum(jax.device_get(pending)))
        examples += count
        losses.append(loss_sum / max(count, 1))
        if log is not None:
            log(f"{label}: epoch {epoch + 1}/{epochs} train loss {losses[-1]:.4f} "
                f"({time.perf_counter() - t0:.0f} s)")
    info = {
        "steps": epochs * per_epoch,
        "sampling_rate": batch_size / n,
        "capacity": rows,
        "row_buckets": list(buckets),
        "overflows": overflows,
        "mean_batch": examples / max(epochs * per_epoch, 1),
        "mean_rows": computed / max(epochs * per_epoch, 1),
        "seconds": time.perf_counter() - t0,
        "train_loss": losses,
    }
    return jax.device_get(params), opt_state, info
