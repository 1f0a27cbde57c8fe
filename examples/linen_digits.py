"""Suppress Privacy in a Flax Linen ``TrainState`` loop (scikit-learn's 8x8 digits, ~30 s on CPU).

``flax.training.train_state.TrainState.apply_gradients`` calls ``tx.update(grads, opt_state,
params)``, so ``supjax.suppress`` simply goes last in the chain, here after Adam:
``optax.chain(optax.adam(lr), supjax.suppress(rules, schedule))``. At the end the script prints
the test accuracy and the per-layer sparsity.

Run it:  python examples/linen_digits.py  [--epochs 12] [--seed 0]
"""

from __future__ import annotations

import argparse

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax.training import train_state

import supjax
from supjax_app.data import batches, load_digits, num_batches

RULES = [
    supjax.LayerRule("conv1/kernel", is_lower_clip=True, min_num=10),
    supjax.LayerRule("conv2/kernel", is_lower_clip=True, min_num=50),
    supjax.LayerRule("Dense_0/kernel"),  # Linen's automatic name of the first nn.Dense
]


class CNN(nn.Module):
    """conv 3x3x8, max-pool, conv 3x3x16, max-pool, dense 32, dense 10."""

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = nn.max_pool(nn.relu(nn.Conv(8, (3, 3), name="conv1")(x)), (2, 2), strides=(2, 2))
        x = nn.max_pool(nn.relu(nn.Conv(16, (3, 3), name="conv2")(x)), (2, 2), strides=(2, 2))
        x = nn.relu(nn.Dense(32)(x.reshape((x.shape[0], -1))))
        return nn.Dense(10, name="out")(x)


@jax.jit
def train_step(state: train_state.TrainState, x: jax.Array, y: jax.Array) -> tuple[train_state.TrainState, jax.Array]:
    def loss_fn(params):
        logits = state.apply_fn({"params": params}, x)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    loss, grads = jax.value_and_grad(loss_fn)(state.params)
    return state.apply_gradients(grads=grads), loss


@jax.jit
def predict(state: train_state.TrainState, x: jax.Array) -> jax.Array:
    return jnp.argmax(state.apply_fn({"params": state.params}, x), axis=-1)


def main(epochs: int = 12, seed: int = 0, batch_size: int = 32, lr: float = 3e-3) -> list[supjax.LayerSparsity]:
    data = load_digits(seed=seed)
    steps = num_batches(len(data.x_train), batch_size)
    start_epoch = max(1, round(0.3 * epochs))
    schedule = supjax.SuppressSchedule.from_epochs(
        start_epoch=start_epoch, end_epoch=epochs, batch_num=steps,
        mask_times=max(1, (epochs - start_epoch + 1) * steps // 15), sparse_end=0.9,
    )
    model = CNN()
    params = model.init(jax.random.PRNGKey(seed), data.x_train[:1])["params"]
    tx = optax.chain(optax.adam(lr), supjax.suppress(RULES, schedule, seed=seed))
    state = train_state.TrainState.create(apply_fn=model.apply, params=params, tx=tx)
    rng = np.random.default_rng(seed)
    for epoch in range(1, epochs + 1):
        losses = []
        for x, y in batches(data.x_train, data.y_train, batch_size, rng):
            state, loss = train_step(state, x, y)
            losses.append(loss)
        acc = float(np.mean(np.asarray(predict(state, data.x_test)) == data.y_test))
        print(f"epoch {epoch:2d}  loss {float(np.mean(jax.device_get(losses))):.4f}  test accuracy {acc:.2%}")

    rows = supjax.sparsity_report(state.params, supjax.find_suppress_state(state.opt_state), RULES)
    print(f"final test accuracy {acc:.2%}")
    print(supjax.format_report(rows))
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=12, help="training epochs (default 12)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the data split, weights and noise (default 0)")
    args = parser.parse_args()
    main(epochs=args.epochs, seed=args.seed)
