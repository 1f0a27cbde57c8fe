"""Bad input across supjax: each gets a ValueError or TypeError that names the argument and
what is allowed, raised by our checks (before any JAX computation), never from deep in JAX.

The compat_mindspore half of the table is tests/mindspore/test_bad_input_compat.py.
"""

import inspect
from pathlib import Path

import jax
import jax.numpy as jnp
import pytest

import supjax
from supjax import LayerRule, SuppressSchedule, suppress, suppress_gradients

SCHED = SuppressSchedule.from_steps(1, 10, 5)
PARAMS = {"conv": {"kernel": jnp.ones((3, 3)), "bias": jnp.zeros(3)}, "dense": {"kernel": jnp.ones((4, 2))}}


def schedule(**kw):
    args = dict(start_epoch=1, end_epoch=3, batch_num=10, mask_times=5, sparse_start=0.0, sparse_end=0.9)
    args.update(kw)
    return lambda: SuppressSchedule.from_epochs(**args)


def init_with(params, rules=(LayerRule("conv/kernel"),)):
    return lambda: suppress(list(rules), SCHED).init(params)


def update_with(updates, params):
    tx = suppress([LayerRule("*/kernel")], SCHED)
    state = tx.init(PARAMS)
    return lambda: jax.jit(tx.update)(updates, state, params)


BAD = [
    # (what, call, exception, words the message must contain)
    ("pattern not str", lambda: LayerRule(3), TypeError, ["pattern"]),
    ("empty pattern", lambda: LayerRule(""), ValueError, ["pattern"]),
    ("is_add_noise int", lambda: LayerRule("w", is_add_noise=1), TypeError, ["is_add_noise", "bool"]),
    ("is_lower_clip str", lambda: LayerRule("w", is_lower_clip="yes"), TypeError, ["is_lower_clip", "bool"]),
    ("min_num below -1", lambda: LayerRule("w", min_num=-2), ValueError, ["min_num", "-1"]),
    ("min_num float", lambda: LayerRule("w", min_num=1.5), TypeError, ["min_num", "int"]),
    ("upper_bound zero", lambda: LayerRule("w", upper_bound=0), ValueError, ["upper_bound", "(0"]),
    ("upper_bound str", lambda: LayerRule("w", upper_bound="1"), TypeError, ["upper_bound"]),
    ("start_epoch 0", schedule(start_epoch=0), ValueError, ["start_epoch", "[1"]),
    ("end before start", schedule(start_epoch=4, end_epoch=3), ValueError, ["end_epoch", "[4"]),
    ("batch_num 0", schedule(batch_num=0), ValueError, ["batch_num"]),
    ("mask_times 0", schedule(mask_times=0), ValueError, ["mask_times"]),
    ("mask_times float", schedule(mask_times=2.5), TypeError, ["mask_times", "int"]),
    ("epoch bool", schedule(end_epoch=True), TypeError, ["end_epoch"]),
    ("sparse_end 1", schedule(sparse_end=1.0), ValueError, ["sparse_end", "(0.0, 1.0)"]),
    ("sparse_end 0", schedule(sparse_end=0.0), ValueError, ["sparse_end"]),
    ("sparse_end nan", schedule(sparse_end=float("nan")), ValueError, ["sparse_end", "finite"]),
    ("sparse_start >= end", schedule(sparse_start=0.9, sparse_end=0.5), ValueError, ["sparse_start", "0.5"]),
    ("sparse_start negative", schedule(sparse_start=-0.1), ValueError, ["sparse_start"]),
    ("steps reversed", lambda: SuppressSchedule.from_steps(10, 5, 2), ValueError, ["end_step"]),
    ("start_step 0", lambda: SuppressSchedule.from_steps(0, 5, 2), ValueError, ["start_step", "[1"]),
    ("reach_sparse_end int", schedule(reach_sparse_end=1), TypeError, ["reach_sparse_end", "bool"]),
    ("stop_after_end str", lambda: SuppressSchedule.from_steps(1, 5, 2, stop_after_end="yes"), TypeError,
     ["stop_after_end", "bool"]),
    ("layers not a list", lambda: suppress("conv/kernel", SCHED), TypeError, ["layers", "LayerRule"]),
    ("layers empty", lambda: suppress([], SCHED), ValueError, ["layers", "empty"]),
    ("layers item not rule", lambda: suppress([LayerRule("a"), "b"], SCHED), TypeError, ["layers[1]"]),
    ("duplicate patterns", lambda: suppress([LayerRule("a"), LayerRule("a")], SCHED), ValueError, ["unique", "a"]),
    ("schedule not a schedule", lambda: suppress([LayerRule("a")], {"start": 1}), TypeError, ["schedule"]),
    ("seed float", lambda: suppress([LayerRule("a")], SCHED, seed=1.5), TypeError, ["seed"]),
    ("reference_parity str", lambda: suppress([LayerRule("a")], SCHED, reference_parity="yes"), TypeError,
     ["reference_parity"]),
    ("warn_nonfinite int", lambda: suppress([LayerRule("a")], SCHED, warn_nonfinite=1), TypeError,
     ["warn_nonfinite"]),
    ("fuse_layers str", lambda: suppress([LayerRule("a")], SCHED, fuse_layers="yes"), TypeError,
     ["fuse_layers"]),
    ("large_layer_size 0", lambda: suppress([LayerRule("a")], SCHED, large_layer_size=0), ValueError,
     ["large_layer_size"]),
    ("learning_rate 0", lambda: suppress_gradients([LayerRule("a")], SCHED, 0.0), ValueError, ["learning_rate"]),
    ("learning_rate str", lambda: suppress_gradients([LayerRule("a")], SCHED, "0.1"), TypeError, ["learning_rate"]),
    ("unknown layer", init_with(PARAMS, [LayerRule("conv2/kernel")]), ValueError, ["conv2/kernel", "match no"]),
    ("ambiguous layer", init_with(PARAMS, [LayerRule("conv/*"), LayerRule("*/kernel")]), ValueError,
     ["conv/kernel", "more than one"]),
    ("integer params", init_with({"conv": {"kernel": jnp.ones((3, 3), jnp.int32)}}), TypeError,
     ["conv/kernel", "floating"]),
    ("layer not an array", init_with({"conv": {"kernel": 0.5}}), TypeError, ["conv/kernel", "array"]),
    ("empty layer", init_with({"conv": {"kernel": jnp.ones((0, 3))}}), ValueError, ["conv/kernel", "empty"]),
    ("no leaves", init_with({}), ValueError, ["params"]),
    ("update without params", lambda: suppress([LayerRule("conv/kernel")], SCHED).update(
        PARAMS, suppress([LayerRule("conv/kernel")], SCHED).init(PARAMS)), ValueError, ["params"]),
    ("structure changed", update_with({"conv": PARAMS["conv"]}, {"conv": PARAMS["conv"]}), ValueError,
     ["select 1 layers", "built for 2", "structure"]),
    ("shape changed", update_with(*[{"conv": {"kernel": jnp.ones((3, 4)), "bias": jnp.zeros(3)},
                                     "dense": {"kernel": jnp.ones((4, 2))}}] * 2), ValueError,
     ["conv/kernel", "shape"]),
    ("updates differ from params", update_with({"x": jnp.ones(2)}, PARAMS), ValueError, ["same structure"]),
]


SUPJAX_DIR = Path(supjax.__file__).resolve().parent
PUBLIC = (LayerRule, SuppressSchedule.from_epochs, SuppressSchedule.from_steps, suppress, suppress_gradients)


@pytest.mark.parametrize("what,call,exc,words", BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_named(what, call, exc, words):
    with pytest.raises(exc) as info:
        call()
    message = str(info.value)
    for word in words:
        assert word in message, f"{what}: {word!r} not in {message!r}"
    # raised by supjax's own checks: the frame that raised is a file of the supjax package
    # (wherever the checkout lives), not JAX, NumPy or optax code
    raised_in = Path(str(info.traceback[-1].path)).resolve()
    assert SUPJAX_DIR in raised_in.parents, f"{what}: raised in {raised_in}, not in {SUPJAX_DIR}"


def test_table_names_every_public_argument():
    """Every argument of the public constructors has a row whose message must name it, and
    the table has no duplicate case (45 distinct rows)."""
    named = {word for *_, words in BAD for word in words}
    arguments = {name for f in PUBLIC for name in inspect.signature(f).parameters}
    assert arguments == {
        "pattern", "is_add_noise", "is_lower_clip", "min_num", "upper_bound",
        "start_epoch", "end_epoch", "batch_num", "mask_times", "sparse_start", "sparse_end",
        "start_step", "end_step", "reach_sparse_end", "stop_after_end", "layers", "schedule", "seed",
        "reference_parity", "large_layer_size", "warn_nonfinite", "fuse_layers", "learning_rate",
    }
    assert sorted(arguments - named) == []
    assert len(BAD) == len({b[0] for b in BAD}) == 45


def test_errors_come_at_trace_time():
    """A structure mismatch is found while ``jit`` traces the step, from shapes alone: the
    error stops the trace (nothing is cached, so a second call traces again and fails the
    same way), not a run of compiled code, which a cached trace would reach without tracing."""
    traced = []
    tx = suppress([LayerRule("conv/kernel")], SCHED)
    state = tx.init(PARAMS)

    def step(updates, state, params):
        traced.append(isinstance(updates["x"], jax.core.Tracer))
        return tx.update(updates, state, params)

    jitted = jax.jit(step)
    for attempt in (1, 2):
        with pytest.raises(ValueError, match="same structure") as info:
            jitted({"x": jnp.ones(2)}, state, PARAMS)
        assert SUPJAX_DIR in Path(str(info.traceback[-1].path)).resolve().parents
        # one trace per call, each with abstract (traced) values: never a concrete run
        assert traced == [True] * attempt
