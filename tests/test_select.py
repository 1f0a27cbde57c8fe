"""Tests for :mod:`supjax.kth_smallest` (exact k-th smallest by radix select)."""

from __future__ import annotations

import contextlib
import doctest
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import supjax.kth_smallest as select_module
from supjax.kth_smallest import first_in_order, kth_smallest

REPO_ROOT = Path(__file__).resolve().parents[1]

# dtype name -> (numpy dtype, unsigned view dtype, number of bits that can be
# set in |x|, i.e. without the sign bit)
DTYPES = {
    "float16": (np.dtype(np.float16), np.uint16, 15),
    "bfloat16": (np.dtype(ml_dtypes.bfloat16), np.uint16, 15),
    "float32": (np.dtype(np.float32), np.uint32, 31),
    "float64": (np.dtype(np.float64), np.uint64, 63),
}

HYPOTHESIS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@contextlib.contextmanager
def x64_enabled() -> Iterator[None]:
    """Enable float64 for the block, on both old and new JAX."""
    if hasattr(jax, "enable_x64"):
        with jax.enable_x64(True):
            yield
    else:  # jax < 0.8
        from jax.experimental import enable_x64

        with enable_x64():
            yield


def maybe_x64(dtype_name: str) -> contextlib.AbstractContextManager[None]:
    return x64_enabled() if dtype_name == "float64" else contextlib.nullcontext()


def reference(x: np.ndarray, k: int) -> np.ndarray:
    """np.partition on the (exactly) float64-upcast values, cast back."""
    flat = np.asarray(x).ravel()
    k = min(max(k, 1), flat.size)
    wide = flat.astype(np.float64)
    return np.asarray(np.partition(wide, k - 1)[k - 1]).astype(flat.dtype)


def assert_bitwise_equal(got: jax.Array, expected: np.ndarray, uint: type) -> None:
    got_np = np.asarray(got)
    assert got_np.shape == ()
    assert got_np.dtype == expected.dtype
    assert got_np.view(uint) == np.asarray(expected).view(uint), (got_np, expected)


def random_magnitudes(
    rng: np.random.Generator,
    dtype_name: str,
    size: int,
    num_distinct: int,
    p_zero: float,
    p_inf: float,
    p_tiny: float,
) -> np.ndarray:
    """Non-negative values of ``dtype`` with ties, zeros, infs and subnormals.

    Base values are uniform over the finite bit patterns (so every exponent,
    subnormals included) or half-normal, then drawn from a pool of
    ``num_distinct`` of them so that ties are frequent.
    """
    dtype, uint, value_bits = DTYPES[dtype_name]
    max_finite = np.array(ml_dtypes.finfo(dtype).max, dtype).view(uint)
    pool_bits = rng.integers(0, int(max_finite), num_distinct, dtype=np.uint64, endpoint=True)
    pool = pool_bits.astype(uint).view(dtype)
    normal = np.abs(rng.standard_normal(num_distinct)).astype(dtype)
    pool = np.where(rng.random(num_distinct) < 0.5, pool, normal).astype(dtype)
    x = pool[rng.integers(0, num_distinct, size)]
    tiny = rng.integers(1, 64, size).astype(uint).view(dtype)  # smallest subnormals
    u = rng.random(size)
    x = np.where(u < p_tiny, tiny, x)
    x = np.where((u >= p_tiny) & (u < p_tiny + p_zero), dtype.type(0), x)
    x = np.where(rng.random(size) < p_inf, dtype.type(np.inf), x)
    return x.astype(dtype)


#: Array sizes drawn by the property tests: a fixed set, so that the jitted
#: function compiles once per (size, dtype) and the tests stay fast; it covers
#: the sort path, its threshold and the radix path.
PROPERTY_SIZES = (1, 3, 128, 129, 2000)


@st.composite
def selection_cases(
    draw: st.DrawFn, dtype_names: tuple[str, ...], sizes: st.SearchStrategy[int]
) -> tuple[str, np.ndarray, int]:
    """(dtype name, array with ties/zeros/infs/subnormals, rank in [1, size])."""
    dtype_name = draw(st.sampled_from(dtype_names))
    size = draw(sizes)
    num_distinct = draw(st.sampled_from([1, 2, 3, 10, max(1, size // 4), size]))
    p_zero = draw(st.sampled_from([0.0, 0.1, 0.5, 0.95]))
    p_inf = draw(st.sampled_from([0.0, 0.05, 0.5]))
    p_tiny = draw(st.sampled_from([0.0, 0.1]))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    x = random_magnitudes(rng, dtype_name, size, num_distinct, p_zero, p_inf, p_tiny)
    k = draw(st.one_of(st.integers(1, size), st.sampled_from([1, size])))
    return dtype_name, x, k


@HYPOTHESIS
@given(selection_cases(("float16", "bfloat16", "float32"), st.sampled_from(PROPERTY_SIZES)))
def test_matches_partition(case: tuple[str, np.ndarray, int]) -> None:
    dtype_name, x, k = case
    _, uint, _ = DTYPES[dtype_name]
    assert_bitwise_equal(kth_smallest(x, k), reference(x, k), uint)


@settings(HYPOTHESIS, max_examples=10)
@given(selection_cases(("bfloat16", "float32"), st.integers(1, 5000)))
def test_matches_partition_random_sizes(case: tuple[str, np.ndarray, int]) -> None:
    """Any size (each new size compiles, hence fewer examples)."""
    dtype_name, x, k = case
    _, uint, _ = DTYPES[dtype_name]
    assert_bitwise_equal(kth_smallest(x, k), reference(x, k), uint)


@HYPOTHESIS
@given(selection_cases(("float64",), st.sampled_from(PROPERTY_SIZES)))
def test_matches_partition_float64(case: tuple[str, np.ndarray, int]) -> None:
    _, x, k = case
    with x64_enabled():
        got = kth_smallest(x, k)
    assert_bitwise_equal(got, reference(x, k), np.uint64)


def uneven_split(value_bits: int, head: tuple[int, ...], reverse: bool) -> tuple[int, ...]:
    """``head`` digits followed by 16-bit-or-narrower ones; optionally reversed."""
    widths = head + select_module._digit_widths(value_bits - sum(head), 16)
    return widths[::-1] if reverse else widths


#: (dtype, digit widths) forced on the radix core: extreme and uneven splits
#: (the default ones are exercised through ``kth_smallest``).
DIGIT_SPLITS = [
    ("float16", (1,) * 7 + (8,)),
    ("float16", uneven_split(15, (1, 2, 3), reverse=False)),
    ("bfloat16", uneven_split(15, (1, 2, 3), reverse=True)),
    ("float32", (4,) * 7 + (3,)),
    ("float32", uneven_split(31, (1, 2, 3), reverse=True)),
    ("float64", uneven_split(63, (3, 2, 1), reverse=False)),
]


@pytest.mark.parametrize(("dtype_name", "widths"), DIGIT_SPLITS)
def test_radix_rounds_any_digit_split(dtype_name: str, widths: tuple[int, ...]) -> None:
    """The radix core is exact for any split of the bits into digits.

    One vmapped call checks a batch of arrays with varied ties, zeros, infs
    and subnormals, and a random rank for each.
    """
    _, uint, value_bits = DTYPES[dtype_name]
    assert sum(widths) == value_bits and max(widths) <= 16
    rng = np.random.default_rng(len(widths) + 10 * value_bits)
    size, batch = 300, 24
    xs = np.stack(
        [
            random_magnitudes(
                rng,
                dtype_name,
                size,
                num_distinct=int(rng.choice([1, 2, 5, 60, size])),
                p_zero=float(rng.choice([0.0, 0.2, 0.9])),
                p_inf=float(rng.choice([0.0, 0.1, 0.6])),
                p_tiny=float(rng.choice([0.0, 0.2])),
            )
            for _ in range(batch)
        ]
    )
    ks = rng.integers(1, size + 1, batch)
    ks[:3] = (1, size, size // 2)

    def select(x: jax.Array, k: jax.Array) -> jax.Array:
        bits = select_module._magnitude_bits(x)
        chosen = select_module._select_by_radix(bits, k, widths)
        return jax.lax.bitcast_convert_type(chosen, x.dtype)

    with maybe_x64(dtype_name):
        got = np.asarray(jax.jit(jax.vmap(select))(xs, jnp.asarray(ks, jnp.int32)))
    expected = np.stack([reference(x, int(k)) for x, k in zip(xs, ks)])
    np.testing.assert_array_equal(got.view(uint), expected.view(uint))


_SORT_MAX = select_module._SORT_MAX_SIZE
_MID_SIZE = 40_000


@pytest.mark.parametrize(
    ("dtype_name", "size"),
    [("float32", size) for size in (_SORT_MAX, _SORT_MAX + 1)]
    + [(name, size) for name in DTYPES for size in (_MID_SIZE, 200_003)],
)
def test_size_thresholds(dtype_name: str, size: int) -> None:
    """The sort path at its boundary and the radix path at two sizes, every dtype."""
    rng = np.random.default_rng(size)
    x = random_magnitudes(rng, dtype_name, size, max(1, size // 3), 0.1, 0.02, 0.01)
    _, uint, _ = DTYPES[dtype_name]
    with maybe_x64(dtype_name):
        for k in {1, 2, (size + 1) // 2, size - 1, size}:
            assert_bitwise_equal(kth_smallest(x, k), reference(x, k), uint)


def test_large_float32_default_path() -> None:
    rng = np.random.default_rng(7)
    x = np.abs(rng.standard_normal(1_000_003)).astype(np.float32)
    x[rng.random(x.size) < 0.3] = 0.0  # suppressed weights
    f = jax.jit(kth_smallest)
    for k in (1, 300_000, 300_001, 500_000, 1_000_003):
        assert_bitwise_equal(f(x, k), reference(x, k), np.uint32)


@pytest.mark.parametrize(
    ("values", "k", "expected"),
    [
        ([0.0], 1, 0.0),
        ([5.0, 5.0, 5.0], 2, 5.0),
        ([0.0, 0.0, 1.0], 2, 0.0),
        ([0.0, 0.0, 1.0], 3, 1.0),
        ([np.inf, 1.0, np.inf], 2, np.inf),
        ([np.inf, np.inf], 1, np.inf),
        ([3.0, 1.0, 2.0], 1, 1.0),
        ([3.0, 1.0, 2.0], 3, 3.0),
        ([1e-45, 0.0, 2e-45], 2, 1e-45),  # float32 subnormals
        ([3.4028235e38, np.inf, 1.0], 2, 3.4028235e38),
    ],
)
def test_hand_cases(values: list[float], k: int, expected: float) -> None:
    x = np.array(values, np.float32)
    got = kth_smallest(x, k)
    assert_bitwise_equal(got, np.float32(expected), np.uint32)


def test_ties_on_radix_path() -> None:
    """Many equal values across a histogram bucket boundary."""
    x = np.concatenate(
        [np.full(1000, 0.25), np.full(1000, np.nextafter(0.25, 1.0)), np.zeros(500)]
    ).astype(np.float32)
    np.random.default_rng(0).shuffle(x)
    for k in (1, 500, 501, 1500, 1501, 2500):
        assert_bitwise_equal(kth_smallest(x, k), reference(x, k), np.uint32)


@pytest.mark.parametrize("shape", [(), (1,), (7, 30), (3, 5, 17), (2, 1, 70, 1)])
def test_any_shape(shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(len(shape))
    x = np.abs(rng.standard_normal(shape)).astype(np.float32)
    for k in {1, max(1, x.size // 2), x.size}:
        assert_bitwise_equal(kth_smallest(x, k), reference(x, k), np.uint32)


def test_k_is_clipped() -> None:
    x = np.array([4.0, 2.0, 8.0, 1.0] * 50, np.float32)
    assert float(kth_smallest(x, 0)) == 1.0
    assert float(kth_smallest(x, -5)) == 1.0
    assert float(kth_smallest(x, 201)) == 8.0
    assert float(kth_smallest(x, 2**40)) == 8.0
    assert float(kth_smallest(x, jnp.int32(-3))) == 1.0
    assert float(kth_smallest(x, np.int64(2**40))) == 8.0
    traced = jax.jit(kth_smallest)
    assert float(traced(x, jnp.int32(0))) == 1.0
    assert float(traced(x, jnp.int32(10**9))) == 8.0


def test_sign_bit_ignored() -> None:
    """-0.0 counts as +0.0; negative inputs act as their magnitude."""
    x = np.array([-0.0, 1.0, 0.0, 2.0], np.float32)
    got = kth_smallest(x, 2)
    assert_bitwise_equal(got, np.float32(0.0), np.uint32)
    y = np.array([-3.0, 1.0, -2.0], np.float32)
    assert float(kth_smallest(y, 3)) == 3.0


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16, jnp.float32])
def test_result_dtype_and_shape(dtype) -> None:
    x = jnp.arange(300, dtype=jnp.float32).astype(dtype)
    got = kth_smallest(x, 10)
    assert got.dtype == jnp.dtype(dtype) and got.shape == ()
    assert float(got) == 9.0


def test_float64_with_x64() -> None:
    with x64_enabled():
        x = np.array([1.0, 1.0 + 2**-52, 1.0 + 2**-51] * 100, np.float64)
        got = kth_smallest(x, 101)
        assert got.dtype == jnp.float64
        assert_bitwise_equal(got, np.float64(1.0 + 2**-52), np.uint64)


def test_new_k_does_not_recompile() -> None:
    traces = []

    @jax.jit
    def f(x: jax.Array, k: jax.Array) -> jax.Array:
        traces.append(None)  # runs only while tracing
        return kth_smallest(x, k)

    x = jnp.asarray(np.abs(np.random.default_rng(0).standard_normal(5000)), jnp.float32)
    results = [float(f(x, jnp.int32(k))) for k in (10, 2500, 4999)]
    assert len(traces) == 1
    assert results == sorted(results)
    assert f._cache_size() == 1
    # The eager entry point reuses one compiled executable too.
    inner = select_module._kth_smallest_jit
    kth_smallest(x, 3)
    size_before = inner._cache_size()
    kth_smallest(x, 4)
    kth_smallest(x, np.int32(5))
    assert inner._cache_size() == size_before


def test_inside_cond_and_vmap() -> None:
    x = jnp.asarray(np.abs(np.random.default_rng(1).standard_normal(1000)), jnp.float32)

    @jax.jit
    def threshold(x: jax.Array, k: jax.Array, on: jax.Array) -> jax.Array:
        return jax.lax.cond(on, kth_smallest, lambda x, k: jnp.zeros((), x.dtype), x, k)

    expected = reference(np.asarray(x), 400)
    assert_bitwise_equal(threshold(x, jnp.int32(400), True), expected, np.uint32)
    assert float(threshold(x, jnp.int32(400), False)) == 0.0

    xs = jnp.stack([x, x * 3])
    ks = jnp.array([10, 900], jnp.int32)
    got = jax.vmap(kth_smallest)(xs, ks)
    for row, k, g in zip(np.asarray(xs), (10, 900), np.asarray(got)):
        assert g.view(np.uint32) == reference(row, k).view(np.uint32)


def test_bad_static_input() -> None:
    with pytest.raises(TypeError, match=r"\bx\b"):
        kth_smallest(jnp.arange(5), 1)
    with pytest.raises(TypeError, match=r"\bx\b"):
        kth_smallest(np.ones(5, np.complex64), 1)
    with pytest.raises(ValueError, match=r"\bx\b"):
        kth_smallest(jnp.zeros((0,), jnp.float32), 1)
    with pytest.raises(ValueError, match=r"\bx\b"):
        kth_smallest(jnp.zeros((3, 0), jnp.float32), 1)
    with pytest.raises(TypeError, match=r"\bk\b"):
        kth_smallest(jnp.ones(5), 1.5)
    with pytest.raises(TypeError, match=r"\bk\b"):
        kth_smallest(jnp.ones(5), jnp.float32(2))
    with pytest.raises(TypeError, match=r"\bk\b"):
        kth_smallest(jnp.ones(5), True)
    with pytest.raises(ValueError, match=r"\bk\b"):
        kth_smallest(jnp.ones(5), jnp.array([1, 2]))


def test_bad_input_raised_before_tracing() -> None:
    """The static checks also apply to tracers (under an outer jit)."""
    with pytest.raises(TypeError, match="floating"):
        jax.jit(kth_smallest)(jnp.arange(5), 1)


def test_doctests() -> None:
    result = doctest.testmod(select_module)
    assert result.attempted > 0 and result.failed == 0


def test_digit_widths() -> None:
    assert select_module._digit_widths(31, 16) == (16, 15)
    assert select_module._digit_widths(31, 11) == (11, 10, 10)
    assert select_module._digit_widths(15, 16) == (15,)
    assert select_module._digit_widths(63, 16) == (16, 16, 16, 15)
    for bits in (15, 31, 63):
        for width in range(1, 17):
            widths = select_module._digit_widths(bits, width)
            assert sum(widths) == bits and max(widths) <= width


def test_benchmark_smoke() -> None:
    """The kth_smallest sweep runs and reports ratios (no timing assertions)."""
    from supjax_app.bench.selection import format_table, measure_kth_smallest_ratio

    results = measure_kth_smallest_ratio([300], repeats=2, include_sort=True, sort_repeats=1)
    assert set(results) == {300}
    for r in results.values():
        assert r["ratio"] > 0 and r["sort_ratio"] > 0
        assert set(r["kth_ms"]) == {"median", "min", "max"}
    assert "ratio" in format_table(results)
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    proc = subprocess.run(
        [sys.executable, "-m", "supjax_app.bench.selection", "--sizes", "300", "--repeats", "2", "--no-sort"],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.splitlines()[2].split()[0] == "300"


SHARDED_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np, jax, jax.numpy as jnp
    from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
    from supjax.kth_smallest import kth_smallest

    x = np.abs(np.random.default_rng(0).standard_normal((1000, 64))).astype(np.float32)
    k = 12345
    expected = np.partition(x.ravel(), k - 1)[k - 1]
    meshes = [Mesh(np.array(jax.devices()), ("d",))]
    if hasattr(jax.sharding, "AxisType"):
        meshes.append(
            jax.make_mesh((2,), ("d",), axis_types=(jax.sharding.AxisType.Explicit,))
        )
    hlos = {}
    for i, mesh in enumerate(meshes):
        xs = jax.device_put(x, NamedSharding(mesh, P("d", None)))
        f = jax.jit(kth_smallest)
        got = np.asarray(f(xs, jnp.int32(k)))
        assert got.view(np.uint32) == expected.view(np.uint32), (got, expected)
        hlos[f"kth_smallest/{i}"] = f.lower(xs, jnp.int32(k)).compile().as_text()
    # the planted fault: a function that gathers the sharded input on purpose
    gather = jax.jit(lambda v: v * 2.0, out_shardings=NamedSharding(meshes[0], P()))
    hlos["planted"] = gather.lower(xs).compile().as_text()
    json.dump(hlos, open(sys.argv[1], "w"))
    print("SHARDED-OK", len(meshes))
    """
)


def test_sharded_input_is_not_gathered(tmp_path) -> None:
    """On 2 host devices the input stays sharded: only histograms are all-reduced. Every
    collective of the compiled HLO is parsed (tuple results, async pairs); the same check
    fails on a planted function that gathers the input."""
    from tests.hlo_collectives import collectives, full_layer_collectives, oversized_gathers

    env = dict(os.environ)
    env["XLA_FLAGS"] = (
        env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2"
    ).strip()
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p
    )
    env["JAX_PLATFORMS"] = "cpu"
    out = tmp_path / "hlo.json"
    proc = subprocess.run(
        [sys.executable, "-c", SHARDED_SCRIPT, str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "SHARDED-OK" in proc.stdout
    hlos = json.loads(out.read_text())
    size = 1000 * 64
    for name, hlo in hlos.items():
        found = collectives(hlo)
        if name == "planted":
            assert [c.sizes for c in oversized_gathers(hlo, select_module._SORT_MAX_SIZE)] == [(size,)]
            continue
        assert any(c.op == "all-reduce" for c in found), (name, [c.line for c in found])
        assert oversized_gathers(hlo, select_module._SORT_MAX_SIZE) == [], name
        assert full_layer_collectives(hlo, {size, size // 2}) == [], name  # whole or one shard
        assert all(c.largest <= 1 << 16 for c in found), name


def prefix_first(flags: np.ndarray, k: int) -> np.ndarray:
    """The definition: set positions with fewer than ``k`` set positions before them."""
    flat = flags.ravel()
    before = np.cumsum(flat) - flat
    return (flat & (before < k)).reshape(flags.shape)


@HYPOTHESIS
@given(
    shape=st.sampled_from([(1,), (7,), (300,), (5, 40), (3, 4, 90), (1200, 3), (70000,)]),
    density=st.sampled_from([0.0, 0.01, 0.5, 1.0]),
    k=st.integers(-3, 70003),
    seed=st.integers(0, 2**16),
)
def test_first_in_order_matches_prefix_count(shape, density, k, seed) -> None:
    """Equal to the prefix-count definition on the sort path and in one or two radix rounds."""
    flags = np.random.default_rng(seed).random(shape) < density
    got = np.asarray(jax.jit(first_in_order)(flags, jnp.int32(k)))
    np.testing.assert_array_equal(got, prefix_first(flags, k))


def test_first_in_order_hand_case() -> None:
    flags = np.array([[True, False, True], [True, True, False]])
    assert first_in_order(flags, 3).tolist() == [[True, False, True], [True, False, False]]
    assert not first_in_order(flags, 0).any()
    assert first_in_order(flags, 10).tolist() == flags.tolist()
