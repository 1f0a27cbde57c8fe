"""The transform on 8 (forced host) CPU devices: data-parallel and with model-sharded layers.

A subprocess (``XLA_FLAGS=--xla_force_host_platform_device_count=8`` must be set before JAX
starts) trains a small MLP with suppress operations three times: on one device, data-parallel
over 8 devices (batch sharded, params replicated) and on a ``("data", "model")`` = (2, 4)
mesh with the batch on ``data`` and two suppressed layers sharded on ``model``, one by rows
(``P("model", None)``, the exact path, with clipping, noise and ties at the clip bound) and
one by columns (``P(None, "model")``, the large path). All three must end with the same
masks, suppressed counts and (to float rounding) params, and every mask must be sharded like
its param (after ``init``, and where XLA puts the masks the update returns). The compiled HLO
of the sharded update must not gather any layer, row- or column-sharded, beyond a layer small
enough to be sorted: the threshold selection and the index-order tie-break are radix selects
whose only collectives are all-reduces of small histograms. Every collective is parsed
(:mod:`tests.hlo_collectives`: tuple results of combined collectives, async pairs), and the
same check is shown to fail on the update compiled together with a planted gather.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from supjax import kth_smallest as select
from tests import hlo_collectives

ROOT = Path(__file__).resolve().parents[1]
DEVICES = 8
STEPS = 14


def _child() -> dict:
    """Runs in the subprocess; returns the findings as a JSON-able dict."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax
    from jax.sharding import Mesh, NamedSharding
    from jax.sharding import PartitionSpec as P

    from supjax import LayerRule, SuppressSchedule, find_suppress_state, suppress

    assert jax.device_count() == DEVICES, jax.devices()
    # d1: exact path (rows on "model"); every weight clipped to +-0.1 by the first operation,
    # so later thresholds sit on a tie at 0.1 and the index-order tie-break runs.
    # d2: large path (columns on "model"). d3: exact path with noise (rows on "model").
    rules = [
        LayerRule("d1/kernel", is_lower_clip=True, min_num=8, upper_bound=0.1),
        LayerRule("d2/kernel"),
        LayerRule("d3/kernel", is_add_noise=True, min_num=4),
        LayerRule("t/kernel"),
    ]
    # sizes avoid powers of two (the histogram sizes of the selection); all but d3 are above
    # the selection's sort size (1024), so they take the radix select
    large = 1600
    shapes = {"d1": (36, 40), "d2": (40, 52), "d3": (52, 8), "t": (40, 30)}
    model_specs = {"d1": P("model", None), "d2": P(None, "model"), "d3": P("model", None), "t": P("model", None)}
    schedule = SuppressSchedule.from_steps(2, 13, 6, sparse_end=0.9)
    # fuse_layers=False: laying layers end to end (the default) would gather them
    tx = optax.chain(optax.sgd(0.05, momentum=0.9),
                     suppress(rules, schedule, seed=3, large_layer_size=large, fuse_layers=False))

    keys = jax.random.split(jax.random.PRNGKey(0), 4)
    params0 = {
        name: {"kernel": np.asarray(jax.random.normal(k, shape) * 0.6), "bias": np.zeros(shape[1], np.float32)}
        for k, (name, shape) in zip(keys, shapes.items())
    }
    # t is not in the loss (zero gradients) and holds 7 levels: its weights only change by
    # being suppressed, and every operation's threshold falls on a tie spanning the shards
    tied = np.random.default_rng(1).integers(-3, 4, shapes["t"]).astype(np.float32) * np.float32(0.1)
    params0["t"]["kernel"] = tied
    rng = np.random.default_rng(0)
    xs = rng.normal(size=(STEPS, 32, 36)).astype(np.float32)
    ys = rng.normal(size=(STEPS, 32, 8)).astype(np.float32)

    def loss_fn(p, x, y):
        h = jnp.tanh(x @ p["d1"]["kernel"] + p["d1"]["bias"])
        h = jnp.tanh(h @ p["d2"]["kernel"] + p["d2"]["bias"])
        out = h @ p["d3"]["kernel"] + p["d3"]["bias"]
        return jnp.mean((out - y) ** 2)

    def step(p, s, x, y):
        grads = jax.grad(loss_fn)(p, x, y)
        updates, s = tx.update(grads, s, p)
        return optax.apply_updates(p, updates), s

    def run(mesh, param_specs, batch_spec):
        if mesh is None:
            put_p = put_x = jax.device_put
        else:
            def put_p(tree):
                return jax.tree_util.tree_map_with_path(
                    lambda path, v: jax.device_put(v, NamedSharding(mesh, param_specs.get(path[0].key, P())
                                                                    if path[1].key == "kernel" else P())),
                    tree,
                )

            def put_x(v):
                return jax.device_put(v, NamedSharding(mesh, batch_spec))
        params = put_p(params0)
        state = tx.init(params)
        init_ok = [
            m.sharding.is_equivalent_to(params[name]["kernel"].sharding, m.ndim)
            for name, m in zip(shapes, find_suppress_state(state).keep_masks)
        ]
        # params and optimizer state keep their shardings from step to step (as in any
        # sharded training loop); the masks' own sharding is checked above (init) and on
        # the update compiled without constraints (below)
        if mesh is None:
            same = None
        else:  # scalars and other unsharded state leaves: replicated over the mesh
            same = jax.tree_util.tree_map(
                lambda v: v.sharding if isinstance(v.sharding, NamedSharding) else NamedSharding(mesh, P()),
                (params, state),
            )
            params, state = jax.device_put((params, state), same)
        train_step = jax.jit(step, out_shardings=same)
        for t in range(STEPS):
            params, state = train_step(params, state, put_x(xs[t]), put_x(ys[t]))
        return params, find_suppress_state(state), init_ok

    single = run(None, {}, None)
    data_mesh = Mesh(np.array(jax.devices()), ("data",))
    data_parallel = run(data_mesh, {}, P("data"))
    model_mesh = Mesh(np.array(jax.devices()).reshape(2, 4), ("data", "model"))
    model_parallel = run(model_mesh, model_specs, P("data"))

    def compare(a, b):
        pa, sa = a[0], a[1]
        pb, sb = b[0], b[1]
        diffs = jax.tree_util.tree_map(lambda u, v: float(np.max(np.abs(np.asarray(u) - np.asarray(v)))), pa, pb)
        bitwise = all(jax.tree_util.tree_leaves(jax.tree_util.tree_map(
            lambda u, v: bool(np.array_equal(np.asarray(u), np.asarray(v))), pa, pb)))
        return {
            "max_param_diff": max(jax.tree_util.tree_leaves(diffs)),
            "params_bitwise": bitwise,
            "masks_equal": all(np.array_equal(np.asarray(m), np.asarray(n)) for m, n in zip(sa.keep_masks, sb.keep_masks)),
            "suppressed_equal": np.asarray(sa.suppressed).tolist() == np.asarray(sb.suppressed).tolist(),
            "suppressed_zero": all(
                bool(np.all(np.asarray(pb[name]["kernel"])[~np.asarray(m)] == 0))
                for name, m in zip(shapes, sb.keep_masks)
            ),
        }

    # the sharded update alone (not the model's forward/backward), its output shardings left
    # to XLA: its collectives, and where it puts the new masks
    mp_params, mp_state = model_parallel[0], model_parallel[1]
    compiled_update = jax.jit(tx.update).lower(mp_params, tx.init(mp_params), mp_params).compile()
    update_hlo = compiled_update.as_text()
    _, state_out = compiled_update.output_shardings
    mask_out = find_suppress_state(state_out).keep_masks
    update_ok = [
        m.is_equivalent_to(mp_params[name]["kernel"].sharding, len(shape))
        for m, (name, shape) in zip(mask_out, shapes.items())
    ]
    # the planted fault: the same update, plus a deliberate gather of the column-sharded large
    # layer d2 (replicated output) and two column sums (all-reduces); the checks below must
    # catch the gather in this text while finding none in the update's
    replicated = NamedSharding(model_mesh, P())

    def planted(p, s, g):
        out = tx.update(g, s, p)
        gathered = jax.lax.with_sharding_constraint(p["d2"]["kernel"] * 2.0, replicated)
        sums = (jnp.sum(p["d1"]["kernel"], axis=0), jnp.sum(p["t"]["kernel"], axis=0))
        return out, gathered, sums

    planted_hlo = jax.jit(planted).lower(mp_params, tx.init(mp_params), mp_params).compile().as_text()
    single_state = single[1]
    t_kept = np.asarray(single_state.keep_masks[3])
    t_thd = float(np.max(np.abs(tied)[~t_kept]))
    return {
        "tie_split": bool(np.any(np.abs(tied)[t_kept] == t_thd)),
        "operations": int(single_state.operations),
        "suppressed": np.asarray(single_state.suppressed).tolist(),
        "layer_sizes": [int(np.prod(s)) for s in shapes.values()],
        "data_parallel": compare(single, data_parallel),
        "model_parallel": compare(single, model_parallel),
        "shardings_ok": {"data_parallel": data_parallel[2], "model_parallel": model_parallel[2] + update_ok},
        "mask_specs": [str(m.sharding.spec) for m in mp_state.keep_masks],
        "update_mask_specs": [str(m.spec) for m in mask_out],
        "param_specs": [str(mp_params[n]["kernel"].sharding.spec) for n in shapes],
        "update_hlo": update_hlo,
        "planted_hlo": planted_hlo,
        "shapes": {name: list(shape) for name, shape in shapes.items()},
    }


@pytest.fixture(scope="module")
def findings(tmp_path_factory):
    out = tmp_path_factory.mktemp("sharding") / "findings.json"
    env = dict(os.environ)
    env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={DEVICES}".strip()
    env["JAX_PLATFORMS"] = "cpu"
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), str(out)],
        env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(out.read_text())


def test_suppression_happened(findings):
    # six operations; the layers end well past half suppressed
    assert findings["operations"] >= 5
    for count, size in zip(findings["suppressed"], findings["layer_sizes"]):
        assert count >= size // 2
    # the tied layer was cut inside a run of equal magnitudes: the index-order tie-break ran
    assert findings["tie_split"]


@pytest.mark.parametrize("layout", ["data_parallel", "model_parallel"])
def test_same_result_as_one_device(findings, layout):
    result = findings[layout]
    assert result["masks_equal"], result
    assert result["suppressed_equal"], result
    assert result["suppressed_zero"], result
    assert result["max_param_diff"] <= 1e-6, result


@pytest.mark.parametrize("layout", ["data_parallel", "model_parallel"])
def test_masks_sharded_like_params(findings, layout):
    assert all(findings["shardings_ok"][layout]), (findings["mask_specs"], findings["param_specs"])


def _large_layers(findings) -> dict[str, int]:
    """The layers above the selection's sort size, by name, with their element counts."""
    sort_max = select._SORT_MAX_SIZE
    sizes = {name: math.prod(shape) for name, shape in findings["shapes"].items()}
    # only d3 (416 weights) is small enough to be sorted, and so may be gathered
    assert sorted(n for n in sizes.values() if n <= sort_max) == [sizes["d3"]] == [416]
    return {name: n for name, n in sizes.items() if n > sort_max}


def assert_no_layer_gathered(hlo_text: str, large: dict[str, int]) -> None:
    """The check on the sharded update: every collective parsed (tuple results and async
    pairs included); no all-gather of any array above the sort size, no collective whose
    result is a whole large layer, and nothing bigger than one histogram of 16-bit digits."""
    sort_max = select._SORT_MAX_SIZE
    found = hlo_collectives.collectives(hlo_text)
    assert any(c.op == "all-reduce" for c in found), [c.line for c in found]
    assert hlo_collectives.oversized_gathers(hlo_text, sort_max) == []
    assert hlo_collectives.full_layer_collectives(hlo_text, set(large.values())) == []
    assert all(c.largest <= 1 << 16 for c in found), [c.line for c in found if c.largest > 1 << 16]


def test_update_never_gathers_a_layer(findings):
    # the selection and the index-order tie-break take histograms: the collectives are
    # all-reduces of histogram bins and scalar counts, for row- and column-sharded layers alike
    assert_no_layer_gathered(findings["update_hlo"], _large_layers(findings))


def test_check_catches_a_planted_gather(findings):
    """The same check fails on the update compiled with a deliberate gather of d2 (40x52,
    column-sharded over 4 devices: an all-gather whose result is all 2080 weights)."""
    large = _large_layers(findings)
    with pytest.raises(AssertionError):
        assert_no_layer_gathered(findings["planted_hlo"], large)
    gathers = hlo_collectives.oversized_gathers(findings["planted_hlo"], select._SORT_MAX_SIZE)
    assert [c.sizes for c in gathers] == [(large["d2"],)] == [(2080,)], [c.line for c in gathers]
    # the planted column sums of d1 (40) and t (30) are all-reduced, as one combined
    # collective with a tuple result where XLA combines them (newer JAX) or as two
    sums = sorted(n for c in hlo_collectives.collectives(findings["planted_hlo"]) if c.op == "all-reduce"
                  for n in c.sizes if n in (30, 40))
    assert sums == [30, 40], sums


if __name__ == "__main__":
    Path(sys.argv[1]).write_text(json.dumps(_child(), indent=1))
