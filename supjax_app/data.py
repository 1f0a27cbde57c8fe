"""Data sets for supjax: IDX (MNIST-format) folders, scikit-learn digits, batching.

Everything here is offline: nothing is ever downloaded. Images come back as
float32 arrays scaled to ``[0, 1]`` with shape ``(N, H, W, 1)`` (channels-last)
and labels as int32 arrays of shape ``(N,)``.

>>> ds = load_dataset("digits")
>>> ds.x_train.shape[1:], ds.num_classes
((8, 8, 1), 10)
"""

from __future__ import annotations

import numbers
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from supjax_app._checks import check_fraction, check_seed
from supjax_app.idx import check_path as _check_path
from supjax_app.idx import read_idx

__all__ = [
    "Dataset",
    "batches",
    "load_dataset",
    "load_digits",
    "load_fashion_mnist",
    "load_idx_dir",
    "num_batches",
    "read_idx",
]

_FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"

# (split, kind) -> (file-name prefix in the flat layout, kind word, idx suffix)
_SPLIT_PREFIX = {"train": "train", "test": "t10k"}
_KIND_SUFFIX = {"images": "idx3-ubyte", "labels": "idx1-ubyte"}

_HOW_TO_GET_DATA = (
    "supjax never downloads data. For Fashion-MNIST run "
    "`apt-get install dataset-fashion-mnist` (Debian/Ubuntu; installs the four "
    f"IDX files to {_FASHION_MNIST_DIR}/). For MNIST or any other MNIST-format "
    "data set, copy the four IDX files (optionally gzipped) into one directory, "
    "or into DIR/train/ and DIR/test/ as in the MindArmour tutorial "
    "(MNIST_unzip/train, MNIST_unzip/test), and pass that directory."
)


class Dataset(NamedTuple):
    """An image classification data set split into train and test parts.

    Images are float32 in ``[0, 1]`` with shape ``(N, H, W, 1)``; labels are
    int32 with shape ``(N,)`` and values in ``range(num_classes)``.

    >>> import numpy as np
    >>> ds = Dataset(np.zeros((2, 4, 4, 1), np.float32), np.array([0, 1], np.int32),
    ...              np.zeros((1, 4, 4, 1), np.float32), np.array([1], np.int32),
    ...              name="toy", num_classes=2)
    >>> ds.x_train.shape, ds.name, ds.num_classes
    ((2, 4, 4, 1), 'toy', 2)
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    name: str
    num_classes: int


# --------------------------------------------------------------------------
# IDX directories
# --------------------------------------------------------------------------


def _candidate_names(split: str, kind: str) -> list[str]:
    """File names tried for one (split, kind) in the flat layout, best first."""
    prefix, suffix = _SPLIT_PREFIX[split], _KIND_SUFFIX[kind]
    stems = [f"{prefix}-{kind}-{suffix}", f"{prefix}-{kind}.{suffix}"]
    return [name for stem in stems for name in (stem, stem + ".gz")]


def _glob_patterns(kind: str) -> list[str]:
    """Glob patterns tried inside ``DIR/train`` and ``DIR/test``."""
    suffix = _KIND_SUFFIX[kind]
    return [f"*-{kind}-{suffix}", f"*-{kind}-{suffix}.gz", f"*-{kind}.{suffix}", f"*-{kind}.{suffix}.gz"]


def _find_idx_file(data_dir: Path, split: str, kind: str) -> tuple[Path | None, list[str]]:
    """Locate one IDX file; return (path or None, the names searched)."""
    searched: list[str] = []
    for name in _candidate_names(split, kind):
        searched.append(str(data_dir / name))
        if (data_dir / name).is_file():
            return data_dir / name, searched
    sub = data_dir / split
    for pattern in _glob_patterns(kind):
        searched.append(str(sub / pattern))
        found = sorted(p for p in sub.glob(pattern) if p.is_file()) if sub.is_dir() else []
        if len(found) > 1:
            raise ValueError(
                f"ambiguous {split} {kind} files in '{sub}': {[p.name for p in found]}; "
                "keep exactly one"
            )
        if found:
            return found[0], searched
    return None, searched


def _to_images(raw: np.ndarray, path: Path) -> np.ndarray:
    if raw.dtype != np.uint8 or raw.ndim != 3:
        raise ValueError(
            f"image IDX file '{path}' must hold uint8 data of shape (N, H, W), "
            f"got {raw.dtype} of shape {raw.shape}"
        )
    return (raw.astype(np.float32) / np.float32(255.0))[..., None]


def _to_labels(raw: np.ndarray, path: Path) -> np.ndarray:
    if raw.ndim != 1 or raw.dtype.kind not in "iu":
        raise ValueError(
            f"label IDX file '{path}' must hold integers of shape (N,), "
            f"got {raw.dtype} of shape {raw.shape}"
        )
    if raw.size and raw.min() < 0:
        raise ValueError(f"label IDX file '{path}' holds negative labels (min {raw.min()})")
    return raw.astype(np.int32)


def _load_split(files: dict[str, Path], split: str) -> tuple[np.ndarray, np.ndarray]:
    images = _to_images(read_idx(files[f"{split}-images"]), files[f"{split}-images"])
    labels = _to_labels(read_idx(files[f"{split}-labels"]), files[f"{split}-labels"])
    if len(images) != len(labels):
        raise ValueError(
            f"{split} split: '{files[f'{split}-images']}' holds {len(images)} images but "
            f"'{files[f'{split}-labels']}' holds {len(labels)} labels"
        )
    return images, labels


def _resolve_num_classes(num_classes: int | None, y_train: np.ndarray, y_test: np.ndarray) -> int:
    observed = int(max(y_train.max(), y_test.max())) + 1
    if num_classes is None:
        return observed
    if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral):
        raise TypeError(f"num_classes must be a positive int or None, got {type(num_classes).__name__}")
    if num_classes < 1:
        raise ValueError(f"num_classes must be a positive int or None, got {num_classes}")
    if observed > num_classes:
        raise ValueError(f"labels go up to {observed - 1}, beyond num_classes={num_classes}")
    return int(num_classes)


def load_idx_dir(
    data_dir: str | os.PathLike, name: str = "idx", num_classes: int | None = None
) -> Dataset:
    """Load an MNIST-format data set (four IDX files) from a directory. Never downloads.

    Accepted layouts: ``DIR/train-images-idx3-ubyte``, ``DIR/train-labels-idx1-ubyte``,
    ``DIR/t10k-images-idx3-ubyte``, ``DIR/t10k-labels-idx1-ubyte`` (each optionally
    ``.gz``, or with a ``.`` before ``idx``), or the MindArmour tutorial layout
    ``DIR/train/*-images-idx3-ubyte`` etc. and ``DIR/test/*-labels-idx1-ubyte`` etc.
    ``num_classes`` defaults to ``max(label) + 1``.

    >>> try:
    ...     load_idx_dir("/nonexistent-dir")
    ... except FileNotFoundError as err:
    ...     print("train-images-idx3-ubyte" in str(err))
    True
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    root = _check_path(data_dir, "data_dir")
    files: dict[str, Path] = {}
    missing: list[str] = []
    for split in ("train", "test"):
        for kind in ("images", "labels"):
            found, searched = _find_idx_file(root, split, kind)
            if found is None:
                missing.append(f"{split} {kind}: tried " + ", ".join(searched))
            else:
                files[f"{split}-{kind}"] = found
    if missing:
        state = "is not a directory" if not root.is_dir() else "lacks some IDX files"
        raise FileNotFoundError(
            f"data set '{name}': '{root}' {state}.\n  " + "\n  ".join(missing) + "\n" + _HOW_TO_GET_DATA
        )
    x_train, y_train = _load_split(files, "train")
    x_test, y_test = _load_split(files, "test")
    if x_train.shape[1:] != x_test.shape[1:]:
        raise ValueError(f"train images {x_train.shape[1:]} and test images {x_test.shape[1:]} differ in shape")
    classes = _resolve_num_classes(num_classes, y_train, y_test)
    return Dataset(x_train, y_train, x_test, y_test, name=name, num_classes=classes)


def load_fashion_mnist(data_dir: str | os.PathLike = _FASHION_MNIST_DIR) -> Dataset:
    """Load Fashion-MNIST (60000 train / 10000 test 28x28 images, 10 classes).

    The default directory is where Debian's ``dataset-fashion-mnist`` package puts
    the gzipped IDX files (``apt-get install dataset-fashion-mnist``).

    >>> try:
    ...     load_fashion_mnist("/nonexistent-dir")
    ... except FileNotFoundError as err:
    ...     print("apt-get install dataset-fashion-mnist" in str(err))
    True
    """
    return load_idx_dir(data_dir, name="fashion-mnist", num_classes=10)


# --------------------------------------------------------------------------
# scikit-learn digits
# --------------------------------------------------------------------------


def load_digits(test_fraction: float = 0.25, seed: int = 0) -> Dataset:
    """Load scikit-learn's bundled 8x8 digits (1797 images, 10 classes), split stratified.

    Pixels (0..16) are divided by 16. The split is deterministic for a given seed.

    >>> ds = load_digits(test_fraction=0.25, seed=0)
    >>> ds.x_train.shape, ds.x_test.shape, ds.num_classes
    ((1347, 8, 8, 1), (450, 8, 8, 1), 10)
    """
    from sklearn.datasets import load_digits as sk_load_digits
    from sklearn.model_selection import train_test_split

    test_fraction = check_fraction(test_fraction, "test_fraction")
    seed = check_seed(seed)
    bunch = sk_load_digits()
    images = (bunch.images.astype(np.float32) / np.float32(16.0))[..., None]
    labels = bunch.target.astype(np.int32)
    x_train, x_test, y_train, y_test = train_test_split(
        images, labels, test_size=test_fraction, random_state=seed, stratify=labels
    )
    return Dataset(x_train, y_train, x_test, y_test, name="digits", num_classes=10)


# --------------------------------------------------------------------------
# Dispatch
# --------------------------------------------------------------------------

_NAMED_LOADERS = ("digits", "fashion-mnist")


def load_dataset(name: str, data_dir: str | os.PathLike | None = None, **kw: Any) -> Dataset:
    """Load a data set by name: ``"digits"``, ``"fashion-mnist"``, or any IDX directory.

    With ``data_dir`` given, ``"fashion-mnist"`` is read from there, and any other
    name (except ``"digits"``) loads that MNIST-format directory under that name.
    Extra keyword arguments go to the loader (e.g. ``test_fraction`` for digits).

    >>> load_dataset("digits", seed=1).name
    'digits'
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    key = name.strip().lower().replace("_", "-")
    if key == "digits":
        if data_dir is not None:
            raise ValueError("data_dir must be None for name='digits' (bundled with scikit-learn)")
        return load_digits(**kw)
    if key == "fashion-mnist":
        return load_fashion_mnist(_FASHION_MNIST_DIR if data_dir is None else data_dir, **kw)
    if data_dir is not None:
        return load_idx_dir(data_dir, name=name, **kw)
    raise ValueError(
        f"unknown data set name {name!r}; allowed: {', '.join(map(repr, _NAMED_LOADERS))}, "
        "or any name together with data_dir=<directory of MNIST-format IDX files>"
    )


# --------------------------------------------------------------------------
# Batching
# --------------------------------------------------------------------------


def _check_batch_size(batch_size: int) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    return int(batch_size)


def num_batches(n: int, batch_size: int, drop_remainder: bool = True) -> int:
    """Number of batches one epoch of ``n`` samples yields.

    >>> num_batches(10, 3), num_batches(10, 3, drop_remainder=False)
    (3, 4)
    """
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 0:
        raise ValueError(f"n must be a non-negative int, got {n!r}")
    batch_size = _check_batch_size(batch_size)
    return int(n) // batch_size if drop_remainder else -(-int(n) // batch_size)


def _iter_batches(
    x: np.ndarray, y: np.ndarray, order: np.ndarray, batch_size: int, count: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    for i in range(count):
        idx = order[i * batch_size : (i + 1) * batch_size]
        yield x[idx], y[idx]


def batches(
    x: np.ndarray,
    y: np.ndarray,
    batch_size: int,
    rng: np.random.Generator | None = None,
    drop_remainder: bool = True,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Iterate over one epoch of ``(x, y)`` numpy batches, shuffled when ``rng`` is given.

    Inputs are validated eagerly (at call time, not at the first ``next``).

    >>> import numpy as np
    >>> x, y = np.arange(5), np.arange(5) * 10
    >>> [b[1].tolist() for b in batches(x, y, 2, drop_remainder=False)]
    [[0, 10], [20, 30], [40]]
    """
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim == 0 or y.ndim == 0 or len(x) != len(y):
        raise ValueError(
            f"x and y must have the same leading length, got shapes {x.shape} and {y.shape}"
        )
    if rng is not None and not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator or None, got {type(rng).__name__}")
    count = num_batches(len(x), batch_size, drop_remainder)
    order = np.arange(len(x)) if rng is None else rng.permutation(len(x))
    return _iter_batches(x, y, order, int(batch_size), count)
