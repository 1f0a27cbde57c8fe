"""``supjax_app.host``: the CPU model and vector extensions reports record (results differ across CPU kinds)."""

from __future__ import annotations

import platform

from supjax_app.host import cpu_description

ZEN4 = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 9R14
flags\t\t: fpu sse4_2 avx avx2 fma avx512f avx512bw avx512vl avx512_bf16

processor\t: 1
model name\t: another
flags\t\t: fpu
"""

ARM = """processor\t: 0
Features\t: fp asimd evtstrm sve
CPU implementer\t: 0x41
"""


def test_first_cpu_model_and_its_vector_extensions(tmp_path):
    path = tmp_path / "cpuinfo"
    path.write_text(ZEN4)
    assert cpu_description(path) == {
        "model": "AMD EPYC 9R14",
        "vector_extensions": ["sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_bf16"]}


def test_arm_features_line_and_missing_model(tmp_path):
    path = tmp_path / "cpuinfo"
    path.write_text(ARM)
    info = cpu_description(path)
    assert info["vector_extensions"] == ["asimd", "sve"]
    assert info["model"] == (platform.processor() or platform.machine())


def test_unreadable_cpuinfo_falls_back_to_platform(tmp_path):
    info = cpu_description(tmp_path / "missing")
    assert info == {"model": platform.processor() or platform.machine(), "vector_extensions": []}
