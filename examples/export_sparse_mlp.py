"""Ship the sparse model: train an MLP with suppression, export it as BCOO, run it sparse.

A pure JAX/optax MLP (64-256-128-10) on scikit-learn's 8x8 digits is trained with
``optax.chain(optax.adam(lr), supjax.suppress(rules, schedule))`` to 95 % zeros in its three
kernels; ``supjax.export_sparse`` then turns each suppressed kernel into a
``jax.experimental.sparse.BCOO`` (only the kept weights and their indices) and reports the
bytes dense and sparse. The same ``apply`` runs on both parameter sets (``x @ w`` works
with a BCOO ``w``); the script checks that the logits agree to float rounding and that every
prediction is the same, and prints the size report.

Run it:  python examples/export_sparse_mlp.py  [--epochs 20] [--seed 0]
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np
import optax

import supjax
from supjax_app.data import batches, load_digits, num_batches

RULES = [supjax.LayerRule("fc*/kernel")]  # fc1, fc2, fc3
SIZES = (64, 256, 128, 10)


def init(key: jax.Array) -> dict:
    """He-initialised kernels, zero biases: ``{"fc1": {"kernel", "bias"}, ...}``."""
    params = {}
    for i, (n_in, n_out) in enumerate(zip(SIZES[:-1], SIZES[1:]), start=1):
        key, sub = jax.random.split(key)
        params[f"fc{i}"] = {"kernel": jax.random.normal(sub, (n_in, n_out)) * jnp.sqrt(2.0 / n_in),
                            "bias": jnp.zeros(n_out)}
    return params


def apply(params: dict, x: jax.Array) -> jax.Array:
    """Logits; each kernel may be a dense array or a BCOO (``x @ kernel`` handles both)."""
    h = x.reshape((x.shape[0], -1))
    for i in range(1, len(SIZES)):
        h = h @ params[f"fc{i}"]["kernel"] + params[f"fc{i}"]["bias"]
        h = jax.nn.relu(h) if i < len(SIZES) - 1 else h
    return h


def main(epochs: int = 20, seed: int = 0, batch_size: int = 32, lr: float = 3e-3) -> supjax.ExportReport:
    data = load_digits(seed=seed)
    steps = num_batches(len(data.x_train), batch_size)
    schedule = supjax.SuppressSchedule.from_epochs(
        start_epoch=2, end_epoch=epochs, batch_num=steps, mask_times=(epochs - 1) * steps // 10,
        sparse_end=0.95, reach_sparse_end=True,
    )
    params = init(jax.random.PRNGKey(seed))
    tx = optax.chain(optax.adam(lr), supjax.suppress(RULES, schedule, seed=seed))
    opt_state = tx.init(params)

    @jax.jit
    def train_step(params, opt_state, x, y):
        grads = jax.grad(lambda p: optax.softmax_cross_entropy_with_integer_labels(apply(p, x), y).mean())(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    rng = np.random.default_rng(seed)
    for _ in range(epochs):
        for x, y in batches(data.x_train, data.y_train, batch_size, rng):
            params, opt_state = train_step(params, opt_state, x, y)

    sparse_params, report = supjax.export_sparse(params, opt_state, RULES)
    dense_logits = np.asarray(jax.jit(apply)(params, data.x_test))
    sparse_logits = np.asarray(jax.jit(apply)(sparse_params, data.x_test))
    scale = float(np.max(np.abs(dense_logits)))  # float rounding, relative to the logits' size
    np.testing.assert_allclose(sparse_logits, dense_logits, rtol=1e-5, atol=1e-6 * scale)
    same = np.array_equal(dense_logits.argmax(-1), sparse_logits.argmax(-1))
    assert same, "a prediction changed"
    accuracy = float(np.mean(sparse_logits.argmax(-1) == data.y_test))
    kinds = ", ".join(f"{name}: {type(layer['kernel']).__name__}" for name, layer in sparse_params.items())
    print(f"kernel types: {kinds}")
    print(f"max |sparse - dense logit| {np.max(np.abs(sparse_logits - dense_logits)):.3g}; "
          f"predictions identical: {same}")
    print(f"test accuracy (sparse model) {accuracy:.2%}")
    print(report.format())
    return report


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20, help="training epochs (default 20)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the data split, weights and noise (default 0)")
    args = parser.parse_args()
    main(epochs=args.epochs, seed=args.seed)
