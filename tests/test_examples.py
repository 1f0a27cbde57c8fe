"""The two Flax examples run (in parallel subprocesses) and print the sparsity they reached."""

from __future__ import annotations

import re
import subprocess

import pytest

from tests.test_train_support import PYTHON, REPO, subprocess_env

# layer -> the weight sparsity it must reach: sparse_end 0.9, capped by min_num.
EXPECTED = {
    "nnx_digits.py": {"conv1/kernel": 62 / 72, "conv2/kernel": 0.899, "fc1/kernel": 0.899, "fc2/kernel": 270 / 320},
    "linen_digits.py": {"conv1/kernel": 62 / 72, "conv2/kernel": 0.899, "Dense_0/kernel": 0.899},
}
ROW = re.compile(r"^(\S+/kernel)\s+(\d+)\s+([\d.]+)%\s+([\d.]+)%\s+([\d.]+)%$")


@pytest.fixture(scope="module")
def outputs():
    procs = {
        name: subprocess.Popen([PYTHON, str(REPO / "examples" / name)], env=subprocess_env(),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for name in EXPECTED
    }
    results = {}
    try:
        for name, proc in procs.items():
            out, err = proc.communicate(timeout=600)
            assert proc.returncode == 0, err
            results[name] = out
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
    return results


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_prints_per_layer_sparsity(outputs, name):
    rows = {}
    for line in outputs[name].splitlines():
        m = ROW.match(line.strip())
        if m:
            rows[m.group(1)] = (int(m.group(2)), *(float(g) / 100 for g in m.groups()[2:]))
    assert set(rows) == set(EXPECTED[name]), outputs[name]
    for layer, (size, weights, mask, target) in rows.items():
        assert weights >= EXPECTED[name][layer] - 1e-3, (layer, weights)
        assert mask == weights  # suppressed weights are exactly zero, and only those
        assert target == pytest.approx(0.9, abs=1e-4)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_learns(outputs, name):
    acc = re.search(r"final test accuracy ([\d.]+)%", outputs[name])
    assert acc and float(acc.group(1)) > 75.0, outputs[name]
    assert "epoch 12" in outputs[name]
