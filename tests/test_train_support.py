"""Shared helpers for the training tests (no tests here): a small, fast training setup."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import numpy as np
import optax

import supjax
from supjax_app.data import load_digits
from supjax_app.train.loop import init_state, make_predict, make_train_step
from supjax_app.models import init_params

REPO = Path(__file__).resolve().parents[1]


def subprocess_env() -> dict[str, str]:
    """The environment for a ``python -m supjax_app`` child: the repo first on ``sys.path``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.setdefault("JAX_PLATFORMS", "cpu")
    env["COLUMNS"] = "120"
    return env


PYTHON = sys.executable


class MLP(nn.Module):
    """A two-layer MLP on flattened 8x8 digits: quick to compile, enough to train."""

    @nn.compact
    def __call__(self, x):
        x = nn.relu(nn.Dense(32, name="fc1")(x.reshape((x.shape[0], -1))))
        return nn.Dense(10, name="fc2")(x)


class Setup(NamedTuple):
    data: Any
    apply_fn: Any
    params: Any
    rules: tuple
    schedule: supjax.SuppressSchedule
    tx: Any
    train_step: Any
    predict: Any
    watch: tuple


BATCH = 32
EPOCHS = 3


def small_setup(add_noise: bool = True, n_train: int = 320, scale_fc1: float = 6.0) -> Setup:
    """Digits (320 train / 100 test), the MLP, suppression of both kernels from epoch 1.

    ``fc1/kernel`` starts ``scale_fc1`` times larger than usual, so that many weights exceed
    0.5 and get noise when ``add_noise``.
    """
    ds = load_digits(seed=0)
    ds = ds._replace(x_train=ds.x_train[:n_train], y_train=ds.y_train[:n_train],
                     x_test=ds.x_test[:100], y_test=ds.y_test[:100])
    model = MLP()
    params = init_params(model, ds.x_train.shape[1:], seed=0)
    params = {**params, "fc1": {**params["fc1"], "kernel": params["fc1"]["kernel"] * scale_fc1}}
    rules = (supjax.LayerRule("fc1/kernel", is_add_noise=add_noise, min_num=10),
             supjax.LayerRule("fc2/kernel", min_num=20))
    steps = n_train // BATCH
    schedule = supjax.SuppressSchedule.from_epochs(1, EPOCHS, steps, mask_times=6, sparse_end=0.8)

    def apply_fn(p, x, rng):
        del rng
        return model.apply({"params": p}, x)

    tx = optax.chain(optax.sgd(0.05), supjax.suppress(rules, schedule, seed=0))
    watch = ("fc1/kernel", "fc2/kernel")
    return Setup(ds, apply_fn, params, rules, schedule, tx,
                 make_train_step(apply_fn, tx, watch), make_predict(apply_fn), watch)


def fresh_state(s: Setup, noise_seed: int = 0, data_seed: int = 0):
    """Step-0 state; the suppress noise seed only lives in the SuppressState's key."""
    tx = optax.chain(optax.sgd(0.05), supjax.suppress(s.rules, s.schedule, seed=noise_seed))
    return init_state(s.params, tx, jax.random.PRNGKey(1), data_seed)


def leaves_equal(a: Any, b: Any) -> None:
    """Assert two pytrees have bitwise-equal leaves."""
    la, lb = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    assert len(la) == len(lb)
    for x, y in zip(la, lb):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
