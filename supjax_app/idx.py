"""The IDX (MNIST-format) file reader: plain or gzipped, checked byte for byte.

>>> import os, struct, tempfile
>>> p = os.path.join(tempfile.mkdtemp(), "labels-idx1-ubyte")
>>> with open(p, "wb") as f:
...     _ = f.write(bytes([0, 0, 0x08, 1]) + struct.pack(">I", 2) + bytes([4, 2]))
>>> read_idx(p).tolist()
[4, 2]
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np

__all__ = ["check_path", "read_idx"]

# IDX type code (third magic byte) -> big-endian numpy dtype, per the IDX spec.
_IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_IDX_MAX_DIMS = 4
_GZIP_MAGIC = b"\x1f\x8b"

def check_path(path: str | os.PathLike, arg: str = "path") -> Path:
    """``path`` as a :class:`~pathlib.Path`; ``TypeError`` naming ``arg`` unless it is a str or PathLike.

    >>> check_path("/tmp").name
    'tmp'
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{arg} must be a str or os.PathLike, got {type(path).__name__}")
    return Path(path)


def _read_raw(path: Path) -> bytes:
    """Return the file's bytes, gunzipped when they start with the gzip magic."""
    raw = path.read_bytes()
    if raw[:2] != _GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise ValueError(f"IDX file '{path}': corrupt or truncated gzip data ({exc})") from exc


def _parse_idx_header(data: bytes, path: Path) -> tuple[np.dtype, tuple[int, ...]]:
    """Validate the IDX magic and dimension header; return (dtype, shape)."""
    if len(data) < 4:
        raise ValueError(f"IDX file '{path}': {len(data)} bytes is too short for the 4-byte magic")
    zero0, zero1, type_code, ndim = data[0], data[1], data[2], data[3]
    if zero0 != 0 or zero1 != 0 or type_code not in _IDX_DTYPES:
        allowed = ", ".join(f"0x{code:02X}" for code in _IDX_DTYPES)
        raise ValueError(
            f"IDX file '{path}': bad magic {data[:4].hex()}; expected 00 00 <type> <ndim> "
            f"with type in {{{allowed}}}"
        )
    if not 1 <= ndim <= _IDX_MAX_DIMS:
        raise ValueError(
            f"IDX file '{path}': number of dims must be in 1..{_IDX_MAX_DIMS}, got {ndim}"
        )
    header_len = 4 + 4 * ndim
    if len(data) < header_len:
        raise ValueError(
            f"IDX file '{path}': truncated header, expected {header_len} bytes, got {len(data)}"
        )
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    if any(d <= 0 for d in shape):
        raise ValueError(f"IDX file '{path}': every dim must be positive, got {shape}")
    return _IDX_DTYPES[type_code], shape


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX (MNIST-format) file, plain or gzipped, into a native-endian array.

    Gzip is detected from the magic bytes ``1f 8b``, not from the suffix. The
    payload must hold exactly ``prod(dims) * itemsize`` bytes: truncated files
    and trailing bytes both raise ``ValueError``.

    >>> import os, struct, tempfile
    >>> p = os.path.join(tempfile.mkdtemp(), "labels-idx1-ubyte")
    >>> with open(p, "wb") as f:
    ...     _ = f.write(bytes([0, 0, 0x08, 1]) + struct.pack(">I", 3) + bytes([7, 2, 1]))
    >>> read_idx(p)
    array([7, 2, 1], dtype=uint8)
    """
    path = check_path(path)
    data = _read_raw(path)
    dtype, shape = _parse_idx_header(data, path)
    offset = 4 + 4 * len(shape)
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    actual = len(data) - offset
    if actual != expected:
        what = "truncated" if actual < expected else "trailing bytes after the data"
        raise ValueError(
            f"IDX file '{path}': {what}; shape {shape} of {dtype.name} needs {expected} "
            f"payload bytes, found {actual}"
        )
    flat = np.frombuffer(data, dtype=dtype, offset=offset)
    return flat.astype(dtype.newbyteorder("=")).reshape(shape)
