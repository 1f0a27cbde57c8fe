"""Per-model noise under ``jax.vmap``: ``suppress(seed=<key>)``, batched reports, the README snippet."""

from __future__ import annotations

import re
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import supjax
from supjax import LayerRule, SuppressSchedule, find_suppress_state, suppress

RULES = [LayerRule("w", is_add_noise=True)]
SCHEDULE = SuppressSchedule.from_steps(1, 6, 3, sparse_end=0.5)  # first operation after update 2
W0 = np.linspace(-1.0, 1.0, 20, dtype=np.float32)  # 10 weights with |w| > 0.5 get noise
NOISY = np.abs(W0) > 0.5
README = Path(__file__).resolve().parent.parent / "README.md"


def _tx(seed):
    return optax.chain(optax.sgd(0.1), suppress(RULES, SCHEDULE, seed=seed))


def _step(tx):
    def step(params, state):
        updates, state = tx.update(jax.tree.map(jnp.zeros_like, params), state, params)
        return optax.apply_updates(params, updates), state

    return step


def _train_one(seed, steps=3):
    params = {"w": jnp.asarray(W0)}
    tx = _tx(seed)
    state = tx.init(params)
    step = jax.jit(_step(tx))
    for _ in range(steps):
        params, state = step(params, state)
    return params, state


def test_four_vmapped_models_get_four_noise_patterns_and_the_same_masks():
    keys = jax.random.split(jax.random.key(7), 4)
    params = {"w": jnp.broadcast_to(jnp.asarray(W0), (4, 20))}  # the same weights in every model
    state = jax.vmap(lambda k, p: _tx(k).init(p))(keys, params)
    assert state[1].key.shape == (4, 2)
    step = jax.jit(jax.vmap(_step(_tx(0))))  # update reads each model's key from its state
    for _ in range(3):
        params, state = step(params, state)
    sup = find_suppress_state(state)
    assert sup.operations.tolist() == [1] * 4 and sup.suppressed[:, 0].tolist() == [4] * 4
    masks = np.asarray(sup.keep_masks[0])
    assert (masks == masks[0]).all() and (~masks[0]).sum() == 4
    noise = np.asarray(params["w"]) - W0  # zero gradients: only the operation moved them
    assert np.all(noise[:, ~NOISY & masks[0]] == 0.0)
    assert np.all(np.abs(noise[:, NOISY]) <= 0.1 + 1e-6) and np.all(noise[:, NOISY] != 0.0)
    assert len({tuple(row) for row in noise[:, NOISY].round(7)}) == 4  # four different patterns
    for i in range(4):  # each model is the run it would be alone, with its key
        alone, _ = _train_one(keys[i])
        np.testing.assert_array_equal(np.asarray(params["w"][i]), np.asarray(alone["w"]))


def test_typed_raw_and_int_seeds_agree():
    typed = _train_one(jax.random.key(3))
    raw = _train_one(jax.random.key_data(jax.random.key(3)))
    old = _train_one(3)
    for other in (raw, old):
        np.testing.assert_array_equal(np.asarray(typed[0]["w"]), np.asarray(other[0]["w"]))
        np.testing.assert_array_equal(np.asarray(typed[1][1].key), np.asarray(other[1][1].key))
    assert not np.array_equal(np.asarray(typed[0]["w"]), np.asarray(_train_one(4)[0]["w"]))


@pytest.mark.parametrize("seed,error,words", [
    (1.5, TypeError, "seed must be an int or a JAX PRNG key"),
    (True, TypeError, "got bool"),
    (jnp.zeros(3, jnp.uint32), ValueError, "uint32\\[2\\]"),
    (jnp.zeros(2, jnp.int32), ValueError, "uint32\\[2\\]"),
    (jax.random.split(jax.random.key(0), 2), ValueError, "single PRNG key"),
    (jax.random.key(0, impl="rbg"), ValueError, "threefry2x32"),
])
def test_bad_seeds_are_rejected_before_tracing(seed, error, words):
    with pytest.raises(error, match=words):
        suppress(RULES, SCHEDULE, seed=seed)


def test_batched_report_gives_each_model_its_rows():
    keys = jax.random.split(jax.random.key(1), 3)
    w = jnp.stack([jnp.asarray(W0), jnp.asarray(W0) * 2.0, jnp.asarray(W0)])
    params = {"w": w, "b": jnp.zeros((3, 2))}
    rules = [LayerRule("w")]
    tx = optax.chain(optax.sgd(0.1), suppress(rules, SCHEDULE))
    state = jax.vmap(lambda k, p: optax.chain(optax.sgd(0.1), suppress(rules, SCHEDULE, seed=k)).init(p))(
        keys, params)
    step = jax.jit(jax.vmap(_step(tx)))
    for _ in range(5):  # operations after updates 2 and 4: 4, then 8 of 20 weights suppressed
        params, state = step(params, state)
    sup = find_suppress_state(state)
    # make the models tell apart: one more zero weight in model 2 (its largest), a leak in model 1
    params["w"] = params["w"].at[2, 19].set(0.0)
    sup = sup._replace(leaked=sup.leaked.at[1, 0].set(3))
    rows = supjax.sparsity_report(params, sup, rules)
    assert [(r.model, r.path) for r in rows] == [(0, "w"), (1, "w"), (2, "w")]
    assert [r.mask_sparsity for r in rows] == [0.4, 0.4, 0.4]
    assert [r.weight_sparsity for r in rows] == [0.4, 0.4, 0.45] and [r.leaked for r in rows] == [0, 3, 0]
    assert [r.suppressed for r in rows] == [8, 8, 8] and [r.target_sparsity for r in rows] == [rows[0].target_sparsity] * 3
    for i in range(3):  # each row is what the model's own (unbatched) report says
        one = supjax.sparsity_report(jax.tree.map(lambda x: x[i], params), jax.tree.map(lambda x: x[i], sup), rules)
        assert rows[i] == one[0]._replace(model=i)
    text = supjax.format_report(rows).splitlines()
    assert text[0].split() == ["model", "layer", "size", "weights", "mask", "target", "leaked"]
    assert [line.split()[:2] for line in text[1:4]] == [["0", "w"], ["1", "w"], ["2", "w"]]
    assert text[4].startswith("warning: model 1, w: 3 of 8 masked weights are not zero") and len(text) == 5
    with pytest.raises(ValueError, match="leading axis of 3"):
        supjax.sparsity_report(jax.tree.map(lambda x: x[0], params), sup, rules)


def _readme_snippet(title: str) -> str:
    text = README.read_text(encoding="utf-8")
    section = text.split(f"## {title}", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_vmap_ensemble_snippet_runs(capsys):
    namespace: dict = {}
    exec(compile(_readme_snippet("vmap ensembles"), "README.md", "exec"), namespace)
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["model", "layer", "size", "weights", "mask", "target"]
    assert [line.split()[:2] for line in out[1:5]] == [["0", "w"], ["1", "w"], ["2", "w"], ["3", "w"]]
    noise = namespace["noise"]
    assert noise.shape == (4, 20) and len({tuple(r) for r in np.asarray(noise).round(7)}) == 4
