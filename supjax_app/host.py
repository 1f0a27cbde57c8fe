"""What CPU a measurement ran on: XLA compiles for the host's vector extensions, so float results
can differ in their last bits between kinds of CPU (reports record which).

>>> info = cpu_description()
>>> sorted(info) == ["model", "vector_extensions"] and isinstance(info["vector_extensions"], list)
True
"""

from __future__ import annotations

import platform
from pathlib import Path

__all__ = [
    "VECTOR_EXTENSIONS",
    "cpu_description",
]

#: The CPU flags XLA's CPU code generation depends on most (vector width, fused multiply-add).
VECTOR_EXTENSIONS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_bf16",
                     "amx_tile", "asimd", "sve")


def cpu_description(cpuinfo: str | Path = "/proc/cpuinfo") -> dict[str, object]:
    """``{"model": name, "vector_extensions": [...]}`` of this host's first CPU, from ``cpuinfo``.

    Without a readable ``cpuinfo`` (not Linux), the model is :func:`platform.processor` and the
    extensions are empty.

    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "cpuinfo")
    >>> _ = open(path, "w").write("model name\\t: AMD EPYC\\nflags\\t\\t: fpu avx avx2 fma sse4_2\\n")
    >>> cpu_description(path)
    {'model': 'AMD EPYC', 'vector_extensions': ['sse4_2', 'avx', 'avx2', 'fma']}
    """
    try:
        text = Path(cpuinfo).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return {"model": platform.processor() or platform.machine(), "vector_extensions": []}
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break  # the first CPU's block is enough
            continue
        key, _, value = line.partition(":")
        fields[key.strip().lower()] = value.strip()
    flags = set((fields.get("flags") or fields.get("features") or "").split())
    model = fields.get("model name") or fields.get("cpu model") or platform.processor() or platform.machine()
    return {"model": model, "vector_extensions": [f for f in VECTOR_EXTENSIONS if f in flags]}
