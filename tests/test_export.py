"""export_sparse: suppressed layers as BCOO, exact values, honest sizes, and the example."""

from __future__ import annotations

import re
import subprocess

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.experimental import sparse

from supjax import LayerRule, SuppressSchedule, export_sparse, find_suppress_state, suppress

RULES = [LayerRule("w")]
W = jnp.arange(1.0, 13.0).reshape(3, 4)  # 1 .. 12
KEEP = np.array([[1, 0, 0, 1], [0, 0, 1, 0], [0, 0, 0, 1]], bool)  # keeps 1, 4, 7, 12


def suppressed(keep=KEEP, leak=False):
    """params with the masked weights at zero (or one left at 5.0), and the chain's state."""
    tx = optax.chain(optax.sgd(0.1), suppress(RULES, SuppressSchedule.from_steps(1, 4, 2)))
    params = {"b": jnp.ones(4), "w": jnp.where(keep, W, 0.0)}
    if leak:
        params["w"] = params["w"].at[0, 1].set(5.0)
    opt_state = tx.init(params)  # (sgd's state, SuppressState); masks set as if suppressed
    return params, (opt_state[0], find_suppress_state(opt_state)._replace(keep_masks=(jnp.asarray(keep),)))


def test_layer_becomes_bcoo_of_the_kept_weights():
    params, opt_state = suppressed()
    out, report = export_sparse(params, opt_state, RULES)
    w = out["w"]
    assert isinstance(w, sparse.BCOO) and w.shape == (3, 4) and w.nse == 4
    assert w.indices.tolist() == [[0, 0], [0, 3], [1, 2], [2, 3]] and w.indices.dtype == jnp.int32
    assert w.data.tolist() == [1.0, 4.0, 7.0, 12.0]
    assert np.array_equal(np.asarray(w.todense()), np.asarray(params["w"]))
    assert out["b"] is params["b"]  # other leaves untouched


def test_sizes_by_hand():
    params, opt_state = suppressed()
    _, report = export_sparse(params, opt_state, RULES)
    (row,) = report.layers
    # dense 12 * 4 B; sparse 4 kept * (4 B value + 2 * 4 B indices)
    assert row == ("w", (3, 4), 4, 48, 48)
    assert (report.dense_bytes, report.sparse_bytes) == (48 + 16, 48 + 16)
    emptier = np.zeros((3, 4), bool)
    emptier[1, 1] = True
    params, opt_state = suppressed(emptier)
    _, report = export_sparse(params, opt_state, RULES)
    assert report.layers[0].sparse_bytes == 12 and report.sparse_bytes == 12 + 16
    assert "model total" in report.format() and "(43.8 % of dense)" in report.format()  # 28 / 64


def test_takes_the_state_itself():
    params, opt_state = suppressed()
    a, _ = export_sparse(params, opt_state, RULES)
    b, _ = export_sparse(params, opt_state[1], RULES)
    assert a["w"].data.tolist() == b["w"].data.tolist()


def test_matmul_with_bcoo_equals_dense():
    params, opt_state = suppressed()
    out, _ = export_sparse(params, opt_state, RULES)
    x = jnp.linspace(-1.0, 2.0, 6).reshape(2, 3)
    np.testing.assert_allclose(np.asarray(x @ out["w"]), np.asarray(x @ params["w"]), rtol=1e-6)


def test_leaking_mask_is_refused():
    params, opt_state = suppressed(leak=True)
    with pytest.raises(ValueError, match="'w' has 1 masked weights that are not zero"):
        export_sparse(params, opt_state, RULES)


def test_state_of_other_params_is_refused():
    params, opt_state = suppressed()
    with pytest.raises(ValueError, match="select 2 layers .* 1 masks"):
        export_sparse(params, opt_state, [LayerRule("w"), LayerRule("b")])
    with pytest.raises(ValueError, match=r"'w' has shape \(4, 3\) but its mask has shape \(3, 4\)"):
        export_sparse({"b": params["b"], "w": params["w"].T}, opt_state, RULES)


def test_example_runs_sparse_inference():
    from tests.test_train_support import PYTHON, REPO, subprocess_env

    proc = subprocess.run([PYTHON, str(REPO / "examples" / "export_sparse_mlp.py"), "--epochs", "6"],
                          env=subprocess_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "kernel types: fc1: BCOO, fc2: BCOO, fc3: BCOO" in out and "predictions identical: True" in out
    rows = {m.group(1): [int(g) for g in m.groups()[1:]]
            for m in re.finditer(r"^(fc\d/kernel)\s+(\d+) of (\d+)\s+(\d+)\s+(\d+)$", out, re.M)}
    assert set(rows) == {"fc1/kernel", "fc2/kernel", "fc3/kernel"}, out
    for kept, size, dense, sparse_bytes in rows.values():
        assert kept == size - int(size * 0.95)  # reach_sparse_end: exactly the stop count of 0.95
        assert dense == 4 * size and sparse_bytes == 12 * kept
    assert float(re.search(r"test accuracy \(sparse model\) ([\d.]+)%", out).group(1)) > 80.0


def test_train_report_model_size():
    from supjax_app.train.report import _EXAMPLE_REPORT, comparison_rows, model_size

    params, opt_state = suppressed()
    assert model_size(params, opt_state[1], ["w"]) == {"dense_bytes": 64, "sparse_bytes": 64}
    emptier = np.zeros((3, 4), bool)
    emptier[1, 1] = True
    params, opt_state = suppressed(emptier)
    assert model_size(params, opt_state[1], ["w"]) == {"dense_bytes": 64, "sparse_bytes": 28}
    assert model_size(params, None, ["w"]) == {"dense_bytes": 64, "sparse_bytes": 64}
    report = {**_EXAMPLE_REPORT, "suppressed": {**_EXAMPLE_REPORT["suppressed"],
                                                 "model_size": {"dense_bytes": 2048, "sparse_bytes": 512}}}
    assert ("model size, KiB (sparse layers as BCOO)", "2.0", "0.5 (25.0%)") in comparison_rows(report)
