"""The models of an arm spread over 8 (forced) CPU devices train to the same models as on one device."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from tests.test_train_support import subprocess_env

SCRIPT = textwrap.dedent("""
    import numpy as np, jax
    from supjax_app.audit.arms import make_arm, suppress_schedule
    from supjax_app.audit.training import batch_order, models_sharding, train_arm
    from supjax_app.models import init_params, lenet5_for
    assert jax.device_count() == 8, jax.devices()
    model = lenet5_for((8, 8, 1), 10)
    apply = lambda p, x: model.apply({"params": p}, x)
    rng = np.random.default_rng(0)
    x = rng.random((64, 8, 8, 1), dtype=np.float32); y = rng.integers(0, 10, 64).astype(np.int32)
    keep = np.stack([rng.permutation(64) < 32 for _ in range(8)])
    orders = np.stack([batch_order(k, 2, 8, s, 4) for s, k in enumerate(keep)])
    inits = [init_params(model, (8, 8, 1), s) for s in range(8)]
    sharding = models_sharding(8)
    assert sharding is not None and len(sharding.device_set) == 8
    for kind in ("dense", "suppressed"):
        arm = make_arm(kind, 0.1, schedule=suppress_schedule(2, 4, 0.5), seed=1)
        one = train_arm(apply, arm, inits, x, y, orders, strategy="vmap", sharding=None)
        many = train_arm(apply, arm, inits, x, y, orders, strategy="vmap", sharding=sharding)
        for a, b in zip(one, many):
            jax.tree_util.tree_map(lambda u, v: np.testing.assert_allclose(u, v, rtol=1e-5, atol=1e-6), a, b)
        logits_one = np.stack([np.asarray(apply(p, x)) for p in one])
        logits_many = np.stack([np.asarray(apply(p, x)) for p in many])
        np.testing.assert_allclose(logits_one, logits_many, rtol=1e-4, atol=1e-5)
    print("OK")
""")


def test_models_axis_over_eight_devices_gives_the_same_models():
    env = subprocess_env()
    env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"
    proc = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("OK"), proc.stderr[-3000:]
