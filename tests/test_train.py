"""supjax_app.train: models, options, the resumable loop, determinism, one compilation."""

from __future__ import annotations

import copy
import doctest
import importlib
import inspect

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import supjax
from supjax_app.train.config import TrainConfig
from supjax_app.train.loop import History, epoch_order, fit, make_predict
from supjax_app.models import LENET5_LAYERS, lenet5_for, lenet5_rules

from tests.test_train_support import EPOCHS, BATCH, fresh_state, leaves_equal, small_setup

MODULES = [
    "supjax_app.cli",
    "supjax_app.train",
    "supjax_app.train.app",
    "supjax_app.train.checkpoint",
    "supjax_app.train.config",
    "supjax_app.train.loop",
    "supjax_app.train.membership",
    "supjax_app.models",
    "supjax_app.train.report",
]


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0


@pytest.mark.parametrize("name", MODULES + ["supjax_app.train.plots"])
def test_public_names_are_documented(name):
    mod = importlib.import_module(name)
    assert mod.__doc__
    for public in mod.__all__:
        obj = getattr(mod, public)
        if inspect.isfunction(obj) or inspect.isclass(obj):
            assert obj.__doc__, f"{name}.{public} has no docstring"


def test_core_never_imports_flax():
    import subprocess
    import sys

    code = ("import sys, supjax, supjax.transform, supjax.reports, supjax.schedule; "
            "print('flax' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ---------------------------------------------------------------- models


@pytest.mark.parametrize("shape, fc1_in", [((8, 8, 1), 64), ((28, 28, 1), 400)])
def test_lenet5_fits_image_size(shape, fc1_in):
    model = lenet5_for(shape, 10)
    x = jnp.zeros((2, *shape))
    params = jax.eval_shape(model.init, jax.random.PRNGKey(0), x)["params"]
    assert jax.eval_shape(model.apply, {"params": params}, x).shape == (2, 10)
    shapes = {k: v["kernel"].shape for k, v in params.items()}
    assert shapes == {"conv1": (5, 5, 1, 6), "conv2": (5, 5, 6, 16), "fc1": (fc1_in, 120),
                      "fc2": (120, 84), "fc3": (84, 10)}


def test_lenet5_rules_are_the_tutorials():
    rules = lenet5_rules()
    got = [(r.pattern, r.is_add_noise, r.is_lower_clip, r.min_num) for r in rules]
    assert got == [("conv1/kernel", False, True, 10), ("conv2/kernel", False, True, 50),
                   ("fc1/kernel", False, False, -1), ("fc2/kernel", False, False, -1),
                   ("fc3/kernel", False, False, 50)]
    assert tuple(got) == LENET5_LAYERS
    params = jax.eval_shape(lenet5_for((8, 8, 1), 10).init, jax.random.PRNGKey(0), jnp.zeros((1, 8, 8, 1)))["params"]
    assert [s.path for s in supjax.engine.select_layers(params, rules)] == [r.pattern for r in rules]
    with pytest.raises(ValueError, match="conv9"):
        lenet5_rules(["conv9"])


# ---------------------------------------------------------------- options


@pytest.mark.parametrize("kwargs, words", [
    ({"epochs": 0}, ["--epochs", "[1, 1000]", "0"]),
    ({"epochs": 2.5}, ["--epochs", "integer"]),
    ({"sparse_end": 1.5}, ["--sparse-end", "(0, 1)", "1.5"]),
    ({"sparse_end": 0.0}, ["--sparse-end", "(0, 1)"]),
    ({"lr": 0.0}, ["--lr", "(0, 0.5]"]),
    ({"lr": 0.7}, ["--lr", "(0, 0.5]"]),
    ({"batch_size": 0}, ["--batch-size", ">= 1"]),
    ({"start_epoch": 4, "epochs": 3}, ["--start-epoch", "[1, 3]", "4"]),
    ({"mask_times": 0}, ["--mask-times", ">= 1"]),
    ({"seed": -1}, ["--seed"]),
    ({"attacks": ("lr", "svm")}, ["--attacks", "lr, knn, mlp, rf"]),
    ({"checkpoint_every": 0}, ["--checkpoint-every", ">= 1"]),
    ({"attack_size": 3}, ["--attack-size", ">= 10"]),
])
def test_bad_options_name_the_option_and_range(kwargs, words):
    with pytest.raises(ValueError) as err:
        TrainConfig(**kwargs).validate()
    for word in words:
        assert word in str(err.value)


def test_default_schedule_is_shaped_like_the_tutorial():
    # The tutorial: 10 epochs, suppression from epoch 3 to 10, 15 steps between operations.
    s = TrainConfig(epochs=10).schedule(1875)
    assert (s.start_step, s.end_step, s.sparse_end, s.sparse_start) == (2 * 1875 + 1, 10 * 1875, 0.95, 0.0)
    assert s.mask_times == 1000 and s.interval == 15.0
    assert TrainConfig().resolved_start_epoch() == 9  # 30 % of the default 30 epochs
    with pytest.raises(ValueError, match="--mask-times"):
        TrainConfig(epochs=2, mask_times=100).schedule(10)


# ---------------------------------------------------------------- loop


def test_epoch_order_is_a_pure_function_of_seed_and_epoch():
    a = epoch_order(5, 2, 100)
    np.testing.assert_array_equal(a, epoch_order(5, 2, 100))
    assert sorted(a.tolist()) == list(range(100))
    assert not np.array_equal(a, epoch_order(5, 3, 100))
    assert not np.array_equal(a, epoch_order(6, 2, 100))


def test_predict_pads_the_last_batch():
    predict = make_predict(lambda p, x, rng: x.reshape((x.shape[0], -1)) @ p, batch_size=4)
    x = np.arange(10 * 4, dtype=np.float32).reshape(10, 2, 2, 1)
    out = predict(np.eye(4, dtype=np.float32), x)
    np.testing.assert_array_equal(out, x.reshape(10, 4))


@pytest.fixture(scope="module")
def noisy():
    return small_setup(add_noise=True)


def _fit(s, state, history=None, hooks=None, every=None):
    d = s.data
    return fit(state, s.train_step, s.predict, d.x_train, d.y_train, d.x_test, d.y_test,
               epochs=EPOCHS, batch_size=BATCH, watch=s.watch, history=history,
               checkpoint_every=every, hooks=hooks)


def test_same_seed_same_result_bitwise_and_one_compilation(noisy):
    a, ha = _fit(noisy, fresh_state(noisy))
    b, hb = _fit(noisy, fresh_state(noisy))
    leaves_equal(a, b)
    assert ha.test_accuracy == hb.test_accuracy and ha.layer_sparsity == hb.layer_sparsity
    # 30 steps over 3 epochs (epoch counters replaced on the host) and two runs: one compile.
    assert noisy.train_step._cache_size() == 1
    sup = supjax.find_suppress_state(a.opt_state)
    assert int(sup.operations) >= 5
    assert int(a.step) == EPOCHS * (320 // BATCH)


def test_a_different_seed_changes_the_noise(noisy):
    a, _ = _fit(noisy, fresh_state(noisy, noise_seed=0))
    b, _ = _fit(noisy, fresh_state(noisy, noise_seed=1))
    # fc1 (noise on, weights > 0.5) differs; the noise stream is the only difference.
    assert not np.array_equal(np.asarray(a.params["fc1"]["kernel"]), np.asarray(b.params["fc1"]["kernel"]))
    # Same data order and same initial weights: the seed only reaches the noise.
    np.testing.assert_array_equal(np.asarray(fresh_state(noisy, 0).params["fc1"]["kernel"]),
                                  np.asarray(fresh_state(noisy, 1).params["fc1"]["kernel"]))


def test_the_data_seed_changes_the_order(noisy):
    a, _ = _fit(noisy, fresh_state(noisy, data_seed=0))
    b, _ = _fit(noisy, fresh_state(noisy, data_seed=1))
    assert not np.array_equal(np.asarray(a.params["fc2"]["kernel"]), np.asarray(b.params["fc2"]["kernel"]))


class _Capture:
    """Hooks keeping a deep copy of every checkpointed (state, history)."""

    def __init__(self):
        self.saved = {}

    def on_step(self, step):
        pass

    def on_epoch(self, epoch, acc):
        pass

    def on_checkpoint(self, step, state, history):
        self.saved[step] = (jax.device_get(state), copy.deepcopy(history))


def test_restarting_from_any_checkpoint_ends_bitwise_equal(noisy):
    hooks = _Capture()
    final, history = _fit(noisy, fresh_state(noisy), hooks=hooks, every=7)
    assert sorted(hooks.saved) == [7, 14, 21, 28, 30]  # mid-epoch and at the end
    for step in (7, 14, 21):
        saved_state, saved_history = hooks.saved[step]
        resumed = jax.tree_util.tree_map(jnp.asarray, saved_state)
        again, h2 = _fit(noisy, resumed, history=copy.deepcopy(saved_history))
        leaves_equal(final, again)
        assert h2.test_accuracy == history.test_accuracy
        assert h2.layer_sparsity == history.layer_sparsity and h2.steps == history.steps
        assert h2.train_loss == history.train_loss
    assert noisy.train_step._cache_size() == 1  # restored arrays reuse the compiled step


def test_history_records_sparsity_and_accuracy(noisy):
    state, h = _fit(noisy, fresh_state(noisy))
    assert len(h.test_accuracy) == EPOCHS and all(0.0 <= a <= 1.0 for a in h.test_accuracy)
    assert h.steps[-1] == int(state.step) and h.finished
    assert set(h.layer_sparsity) == {"fc1/kernel", "fc2/kernel"}
    # The final measured sparsity is the real fraction of zeros.
    assert h.layer_sparsity["fc2/kernel"][-1] == pytest.approx(float(np.mean(np.asarray(state.params["fc2"]["kernel"]) == 0)))
    assert 0.75 < h.target_sparsity[-1] <= 0.8  # the last operation falls 2 steps before the end
    assert History.from_json(h.to_json()) == h
