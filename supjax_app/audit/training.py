"""Train the N models of one audit arm: same keep matrix, initialisations and batch order for every arm.

Every model of an arm trains with the same optax transformation (the arm's), on the pool
examples its row of the keep matrix marks IN, for the same number of steps, so one compiled
program trains them all. Two ways are offered, measured by ``supjax bench``-style timing in
the audit report (``training.strategy``):

* ``"sequential"``: one jitted step, called in a Python loop, model after model (on a CPU the
  ``lax.cond`` of ``supjax.suppress`` then skips the operation on steps without one);
* ``"scan"``: like ``"sequential"``, but each model's whole run is one ``lax.scan`` call;
* ``"vmap"``: the same step vmapped over the models (one call trains all of them; on a GPU/TPU
  this is the fast way, and a ``models`` mesh axis spreads them over devices). Under ``vmap``
  the operation's ``lax.cond`` becomes a select, so every step pays for an operation.

>>> import jax.numpy as jnp, numpy as np, optax
>>> order = batch_order(np.array([True, False, True, True]), epochs=2, batch_size=2, seed=0)
>>> order.shape, bool(np.isin(order, [0, 2, 3]).all())
((2, 2), True)
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

__all__ = [
    "ApplyFn",
    "Arm",
    "STRATEGIES",
    "batch_order",
    "fold_model_into_keys",
    "make_step",
    "models_sharding",
    "steps_per_epoch",
    "train_arm",
]

#: ``apply(params, images) -> logits``.
ApplyFn = Callable[[Any, jax.Array], jax.Array]

#: How the models of an arm are trained (see the module docstring).
STRATEGIES = ("sequential", "scan", "vmap")


@dataclasses.dataclass(frozen=True)
class Arm:
    """One arm of an audit: a name, its optax transformation and how gradients reach it.

    ``make_tx()`` builds the transformation (called once per arm: every model uses the same
    one, and :func:`fold_model_into_keys` gives each model its own noise keys).
    ``per_example=True`` feeds the transformation per-example gradients (leading batch axis),
    as ``optax.contrib.differentially_private_aggregate`` (DP-SGD) expects.
    ``settings`` records the arm's hyperparameters for the report.

    >>> Arm("dense", lambda: optax.sgd(0.1)).per_example
    False
    """

    name: str
    make_tx: Callable[[], optax.GradientTransformation]
    per_example: bool = False
    settings: dict[str, Any] = dataclasses.field(default_factory=dict)


def steps_per_epoch(keep: np.ndarray, batch_size: int) -> int:
    """Steps per epoch shared by every model: the smallest IN count, in whole batches.

    >>> steps_per_epoch(np.array([[1, 1, 1, 0], [1, 1, 1, 1]], bool), 2)
    1
    """
    smallest = int(np.asarray(keep, bool).sum(axis=1).min())
    if smallest < batch_size:
        raise ValueError(f"batch_size must be at most the smallest training set ({smallest}), got {batch_size}")
    return smallest // batch_size


def batch_order(members: np.ndarray, epochs: int, batch_size: int, seed: int,
                per_epoch: int | None = None) -> np.ndarray:
    """Pool indices of every batch of one model, ``(epochs * per_epoch, batch_size)`` int32.

    Epoch ``e`` visits a fresh permutation (``default_rng([seed, e])``) of the model's IN
    examples and keeps its first ``per_epoch`` whole batches (default: all of them).

    >>> batch_order(np.array([True, True, False, True]), 1, 3, seed=1).tolist()
    [[0, 1, 3]]
    """
    idx = np.flatnonzero(np.asarray(members, bool))
    per_epoch = len(idx) // batch_size if per_epoch is None else per_epoch
    rows = []
    for epoch in range(epochs):
        perm = idx[np.random.default_rng([int(seed), epoch]).permutation(len(idx))]
        rows.append(perm[: per_epoch * batch_size].reshape(per_epoch, batch_size))
    return np.concatenate(rows).astype(np.int32)


def fold_model_into_keys(opt_state: Any, model: jax.Array | int) -> Any:
    """``opt_state`` with every PRNG key (fields ``key``/``rng_key`` of its NamedTuples) folded with ``model``.

    One transformation serves all models of an arm; this gives each model its own noise
    (DP-SGD's Gaussian noise, ``supjax.suppress``'s uniform noise).

    >>> import jax.numpy as jnp
    >>> from supjax import LayerRule, SuppressSchedule, suppress
    >>> tx = suppress([LayerRule("w")], SuppressSchedule.from_steps(1, 9, 3))
    >>> a, b = (fold_model_into_keys(tx.init({"w": jnp.ones(3)}), m) for m in (0, 1))
    >>> bool((a.key != b.key).any())
    True
    """

    def is_keyed(node: Any) -> bool:
        return isinstance(node, tuple) and hasattr(node, "_fields") and bool(
            {"key", "rng_key"} & set(node._fields))

    def fold(node: Any) -> Any:
        if not is_keyed(node):
            return node
        changes = {f: jax.random.fold_in(getattr(node, f), model) for f in ("key", "rng_key") if f in node._fields}
        return node._replace(**changes)

    return jax.tree_util.tree_map(fold, opt_state, is_leaf=is_keyed)


def models_sharding(n_models: int, devices: Sequence[Any] | None = None) -> Any:
    """A ``NamedSharding`` that spreads a leading models axis over ``devices`` (a ``models`` mesh axis).

    None on a single device, or when the devices do not divide ``n_models``.

    >>> models_sharding(8, jax.devices()[:1]) is None
    True
    """
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    devices = list(jax.devices() if devices is None else devices)
    if len(devices) < 2 or n_models % len(devices):
        return None
    return NamedSharding(Mesh(np.asarray(devices), ("models",)), PartitionSpec("models"))


def make_step(apply: ApplyFn, tx: optax.GradientTransformation, per_example: bool) -> Callable:
    """``step(params, opt_state, x_pool, y_pool, idx) -> (params, opt_state)``: one SGD-style step.

    The batch is ``x_pool[idx], y_pool[idx]``; the loss is the mean softmax cross-entropy;
    with ``per_example`` the transformation gets one gradient per example (``jax.vmap``).

    >>> import jax.numpy as jnp
    >>> tx = optax.sgd(0.1)
    >>> step = make_step(lambda p, x: x.reshape(len(x), -1) @ p, tx, per_example=False)
    >>> p, s = step(jnp.zeros((2, 2)), tx.init(jnp.zeros((2, 2))), jnp.eye(2), jnp.array([0, 1]), jnp.array([0, 1]))
    >>> np.round(np.asarray(p, np.float64), 3).tolist()
    [[0.025, -0.025], [-0.025, 0.025]]
    """

    def mean_loss(params: Any, x: jax.Array, y: jax.Array) -> jax.Array:
        return optax.softmax_cross_entropy_with_integer_labels(apply(params, x), y).mean()

    def example_grad(params: Any, x: jax.Array, y: jax.Array) -> Any:
        return jax.grad(mean_loss)(params, x[None], y[None])

    def step(params, opt_state, x_pool, y_pool, idx):
        x, y = x_pool[idx], y_pool[idx]
        if per_example:
            grads = jax.vmap(example_grad, in_axes=(None, 0, 0))(params, x, y)
        else:
            grads = jax.grad(mean_loss)(params, x, y)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    return step


class _Trainer(NamedTuple):
    init: Callable
    step: Callable
    run: Callable


def _compile(apply: ApplyFn, arm: Arm, vmapped: bool) -> _Trainer:
    tx = arm.make_tx()
    step = make_step(apply, tx, arm.per_example)

    def init(params, model):
        return fold_model_into_keys(tx.init(params), model)

    def run(params, opt_state, x_pool, y_pool, order):
        def body(carry, idx):
            return step(*carry, x_pool, y_pool, idx), None

        return jax.lax.scan(body, (params, opt_state), order)[0]

    if vmapped:
        init = jax.vmap(init)
        step = jax.vmap(step, in_axes=(0, 0, None, None, 0))
    return _Trainer(jax.jit(init), jax.jit(step, donate_argnums=(0, 1)), jax.jit(run, donate_argnums=(0, 1)))


def train_arm(
    apply: ApplyFn,
    arm: Arm,
    init_params: Sequence[Any],
    x_pool: np.ndarray,
    y_pool: np.ndarray,
    orders: np.ndarray,
    *,
    strategy: str = "sequential",
    sharding: Any = None,
    on_step: Callable[[int], None] | None = None,
) -> list[Any]:
    """Train one model per initialisation on its batches; return the trained params (host numpy).

    ``orders[m]`` is model ``m``'s batch order (:func:`batch_order`), all of one shape.
    ``sharding`` (``"vmap"`` only): a ``jax.sharding.Sharding`` for the leading models axis
    of params, optimizer state and orders (e.g. :func:`models_sharding`); ``"auto"`` uses
    :func:`models_sharding` (all devices, when they divide the number of models).
    ``on_step(n)`` is called after every ``n`` steps done (for progress bars).

    >>> import jax.numpy as jnp
    >>> arm = Arm("dense", lambda: optax.sgd(0.5))
    >>> apply = lambda p, x: x.reshape(len(x), -1) @ p
    >>> x, y = np.eye(2, dtype=np.float32), np.array([0, 1])
    >>> orders = np.zeros((2, 3, 2), np.int32) + np.array([0, 1])
    >>> out = train_arm(apply, arm, [np.zeros((2, 2), np.float32)] * 2, x, y, orders, strategy="vmap")
    >>> len(out), bool(np.allclose(out[0], out[1])), float(out[0][0, 0]) > 0
    (2, True, True)
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    orders = np.asarray(orders, np.int32)
    if orders.ndim != 3 or len(orders) != len(init_params):
        raise ValueError(f"orders must be (models, steps, batch) with one row per model; got {orders.shape} "
                         f"for {len(init_params)} models")
    tick = on_step or (lambda _n: None)
    x_dev, y_dev = jnp.asarray(x_pool), jnp.asarray(y_pool)
    trainer = _compile(apply, arm, vmapped=strategy == "vmap")
    if strategy == "vmap":
        params = jax.tree_util.tree_map(lambda *leaves: jnp.stack(leaves), *init_params)
        order = jnp.asarray(orders)
        models = jnp.arange(len(init_params))
        if isinstance(sharding, str) and sharding == "auto":
            sharding = models_sharding(len(init_params))
        if sharding is not None:
            params, order, models = jax.device_put((params, order, models), sharding)
        opt_state = trainer.init(params, models)
        for t in range(orders.shape[1]):
            params, opt_state = trainer.step(params, opt_state, x_dev, y_dev, order[:, t])
            tick(len(init_params))
        host = jax.device_get(params)
        return [jax.tree_util.tree_map(lambda leaf: leaf[m], host) for m in range(len(init_params))]
    out = []
    for m, p0 in enumerate(init_params):
        params = jax.tree_util.tree_map(jnp.array, p0)
        opt_state = trainer.init(params, m)
        if strategy == "scan":
            params, opt_state = trainer.run(params, opt_state, x_dev, y_dev, jnp.asarray(orders[m]))
            tick(orders.shape[1])
        else:
            for batch in orders[m]:  # host rows: no device slicing op per step
                params, opt_state = trainer.step(params, opt_state, x_dev, y_dev, batch)
                tick(1)
        out.append(jax.device_get(params))
    return out
