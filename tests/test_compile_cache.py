"""JAX's persistent compilation cache in the ``supjax`` command: used by a second run, off on request.

Counted through files written to the cache folder and JAX's cache events (never wall clock).
Every run is a fresh process: JAX decides once per process whether to use the cache.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

import jax
import pytest

from supjax_app import compile_cache

ROOT = Path(__file__).resolve().parent.parent
# a tiny run: one epoch on 160 digits, no learned attack; it still compiles both train steps
TRAIN = ["train", "--epochs", "1", "--start-epoch", "1", "--train-size", "160", "--test-size", "100",
         "--attacks", "none", "--attack-size", "50"]
SUMMARY = re.compile(r"compilation cache (\S+): (\d+) of (\d+) compilations loaded from it, (\d+) entries")


def _run(args: list[str], xdg: Path, out: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "XDG_CACHE_HOME": str(xdg), "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "supjax_app", *args, "--out", str(out)],
                          env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def _summary(stderr: str) -> tuple[Path, int, int, int]:
    found = SUMMARY.search(stderr)
    assert found, stderr[-2000:]
    return Path(found[1]), int(found[2]), int(found[3]), int(found[4])


def test_second_train_loads_its_steps_from_the_cache(tmp_path):
    xdg = tmp_path / "xdg"
    first = _summary(_run(TRAIN, xdg, tmp_path / "a").stderr)
    folder = xdg / "supjax" / "jax"
    assert first[0] == folder
    written = compile_cache.cache_entries(folder)
    assert first[3] == written >= 2  # at least the dense and the suppressed train steps
    assert first[1] == 0 and first[2] >= written  # a cold cache answers nothing
    second = _summary(_run(TRAIN, xdg, tmp_path / "b").stderr)
    assert second[1] >= written  # every entry the first run wrote is loaded
    assert compile_cache.cache_entries(folder) == written  # nothing compiled anew, nothing written


def test_no_compile_cache_writes_nothing(tmp_path):
    xdg = tmp_path / "xdg"
    done = _run([*TRAIN, "--no-compile-cache"], xdg, tmp_path / "a")
    assert not SUMMARY.search(done.stderr)
    assert not (xdg / "supjax").exists()


SUPPRESSED_STEP = """
import sys, jax, numpy as np, optax
from supjax_app import compile_cache
from supjax_app.models import init_params, lenet5_for, lenet5_rules
from supjax_app.train.loop import init_state, make_train_step
from supjax import SuppressSchedule, suppress
compile_cache.enable(sys.argv[1])
model = lenet5_for((8, 8, 1), 10)
tx = optax.chain(optax.sgd(0.05), suppress(lenet5_rules(), SuppressSchedule.from_steps(2, 20, 5)))
step = make_train_step(lambda p, x, rng: model.apply({"params": p}, x), tx, ["fc1/kernel"])
state = init_state(init_params(model, (8, 8, 1), 0), tx, jax.random.PRNGKey(0), 0)
before = compile_cache.stats()
step.lower(state, np.zeros((32, 8, 8, 1), np.float32), np.zeros(32, np.int32)).compile()
used = compile_cache.stats()
print(used.requests - before.requests, used.hits - before.hits)
"""


def test_the_suppressed_train_step_is_cacheable(tmp_path):
    # a host callback in the step (e.g. warn_nonfinite on by default) would keep it out of the cache
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    counts = []
    for _ in range(2):
        done = subprocess.run([sys.executable, "-c", SUPPRESSED_STEP, str(tmp_path / "c")], env=env, cwd=ROOT,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        counts.append(tuple(int(v) for v in done.stdout.split()))
    assert counts == [(1, 0), (1, 1)]  # compiled and written, then loaded


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    compile_cache.add_arguments(parser)
    return parser


def test_configure_restores_jax_options(tmp_path):
    before = (jax.config.jax_enable_compilation_cache, jax.config.jax_compilation_cache_dir)
    with compile_cache.configure(_parser().parse_args(["--compile-cache-dir", str(tmp_path / "c")])) as folder:
        assert folder == tmp_path / "c" and folder.is_dir()
        assert jax.config.jax_compilation_cache_dir == str(folder)
        assert jax.config.jax_persistent_cache_min_compile_time_secs == compile_cache.MIN_COMPILE_TIME_SECS
        assert (folder.stat().st_mode & 0o777) == 0o700
    with compile_cache.configure(_parser().parse_args(["--no-compile-cache"])) as folder:
        assert folder is None and jax.config.jax_enable_compilation_cache is False
    assert (jax.config.jax_enable_compilation_cache, jax.config.jax_compilation_cache_dir) == before


def test_default_cache_dir_follows_xdg(monkeypatch, tmp_path):
    assert compile_cache.default_cache_dir({"XDG_CACHE_HOME": str(tmp_path)}) == tmp_path / "supjax" / "jax"
    monkeypatch.setenv("HOME", str(tmp_path))
    assert compile_cache.default_cache_dir({"XDG_CACHE_HOME": "relative"}) == tmp_path / ".cache" / "supjax" / "jax"
    assert compile_cache.default_cache_dir({}) == tmp_path / ".cache" / "supjax" / "jax"


@pytest.mark.parametrize("bad, error", [("0.1", TypeError), (True, TypeError), (-1.0, ValueError)])
def test_enable_rejects_bad_min_compile_time(tmp_path, bad, error):
    with pytest.raises(error, match="min_compile_time_secs"):
        compile_cache.enable(tmp_path, min_compile_time_secs=bad)


def test_cache_entries_counts_executables_only(tmp_path):
    (tmp_path / "k1-cache").write_bytes(b"x")
    (tmp_path / "k1-atime").write_bytes(b"x")
    (tmp_path / "k2-cache").write_bytes(b"x")
    assert compile_cache.cache_entries(tmp_path) == 2
    assert compile_cache.cache_entries(tmp_path / "missing") == 0
