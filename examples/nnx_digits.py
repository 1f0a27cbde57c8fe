"""Suppress Privacy in a Flax NNX training loop (scikit-learn's 8x8 digits, about 30 s on CPU).

A small CNN is trained with ``nnx.Optimizer(model, tx, wrt=nnx.Param)`` where
``tx = optax.chain(optax.sgd(lr, momentum=0.9), supjax.suppress(rules, schedule))``:
``suppress`` goes last in the chain and edits the final updates, so suppressed weights become
and stay exactly 0 even though momentum keeps pushing them. At the end the script prints the
test accuracy and the per-layer sparsity (``min_num`` caps conv1 at 62 of 72 and fc2 at 270
of 320 suppressed weights).

Run it:  python examples/nnx_digits.py  [--epochs 12] [--seed 0]
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

import supjax
from supjax_app.data import batches, load_digits, num_batches

RULES = [
    supjax.LayerRule("conv*/kernel", is_lower_clip=True, min_num=10),  # glob: conv1 and conv2
    supjax.LayerRule("fc1/kernel"),
    supjax.LayerRule("fc2/kernel", min_num=50),
]


class CNN(nnx.Module):
    """conv 3x3x8, max-pool, conv 3x3x16, max-pool, dense 64 -> 32 -> 10."""

    def __init__(self, rngs: nnx.Rngs) -> None:
        self.conv1 = nnx.Conv(1, 8, (3, 3), rngs=rngs)
        self.conv2 = nnx.Conv(8, 16, (3, 3), rngs=rngs)
        self.fc1 = nnx.Linear(16 * 2 * 2, 32, rngs=rngs)
        self.fc2 = nnx.Linear(32, 10, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = nnx.max_pool(nnx.relu(self.conv1(x)), (2, 2), strides=(2, 2))
        x = nnx.max_pool(nnx.relu(self.conv2(x)), (2, 2), strides=(2, 2))
        x = nnx.relu(self.fc1(x.reshape((x.shape[0], -1))))
        return self.fc2(x)


@nnx.jit
def train_step(model: CNN, optimizer: nnx.Optimizer, x: jax.Array, y: jax.Array) -> jax.Array:
    def loss_fn(model: CNN) -> jax.Array:
        return optax.softmax_cross_entropy_with_integer_labels(model(x), y).mean()

    loss, grads = nnx.value_and_grad(loss_fn)(model)
    optimizer.update(model, grads)  # the suppress transform sees params = nnx.state(model, nnx.Param)
    return loss


@nnx.jit
def predict(model: CNN, x: jax.Array) -> jax.Array:
    return jnp.argmax(model(x), axis=-1)


def main(epochs: int = 12, seed: int = 0, batch_size: int = 32, lr: float = 0.05) -> list[supjax.LayerSparsity]:
    data = load_digits(seed=seed)
    steps = num_batches(len(data.x_train), batch_size)
    schedule = supjax.SuppressSchedule.from_epochs(
        start_epoch=max(1, round(0.3 * epochs)), end_epoch=epochs, batch_num=steps,
        mask_times=max(1, (epochs - round(0.3 * epochs) + 1) * steps // 15), sparse_end=0.9,
    )
    model = CNN(nnx.Rngs(seed))
    tx = optax.chain(optax.sgd(lr, momentum=0.9), supjax.suppress(RULES, schedule, seed=seed))
    optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
    rng = np.random.default_rng(seed)
    for epoch in range(1, epochs + 1):
        losses = [train_step(model, optimizer, x, y) for x, y in batches(data.x_train, data.y_train, batch_size, rng)]
        acc = float(np.mean(np.asarray(predict(model, data.x_test)) == data.y_test))
        print(f"epoch {epoch:2d}  loss {float(np.mean(jax.device_get(losses))):.4f}  test accuracy {acc:.2%}")

    params = nnx.state(model, nnx.Param)
    sup_state = supjax.find_suppress_state(optimizer.opt_state)  # the SuppressState inside the chain
    rows = supjax.sparsity_report(params, sup_state, RULES)
    print(f"final test accuracy {acc:.2%}")
    print(supjax.format_report(rows))
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=12, help="training epochs (default 12)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the data split, weights and noise (default 0)")
    args = parser.parse_args()
    main(epochs=args.epochs, seed=args.seed)
