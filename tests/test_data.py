"""Tests for supjax_app.data: IDX reader, IDX directories, digits, batching."""

from __future__ import annotations

import doctest
import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

import supjax_app.data as data_mod
from supjax_app.data import (
    Dataset,
    batches,
    load_dataset,
    load_digits,
    load_fashion_mnist,
    load_idx_dir,
    num_batches,
    read_idx,
)

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")

_TYPE_CODES = {"u1": 0x08, "i1": 0x09, "i2": 0x0B, "i4": 0x0C, "f4": 0x0D, "f8": 0x0E}


def idx_bytes(arr: np.ndarray) -> bytes:
    """Encode an array as IDX (big-endian), independently of supjax."""
    code = _TYPE_CODES[arr.dtype.kind + str(arr.dtype.itemsize)]
    header = bytes([0, 0, code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return header + arr.astype(arr.dtype.newbyteorder(">")).tobytes()


def write_idx(path: Path, arr: np.ndarray, gz: bool = False) -> Path:
    payload = idx_bytes(arr)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(payload) if gz else payload)
    return path


def make_split(n: int, seed: int, h: int = 5, w: int = 4, classes: int = 3):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, h, w), dtype=np.uint8)
    labels = (np.arange(n) % classes).astype(np.uint8)
    return images, labels


def write_mnist_dir(root: Path, layout: str = "flat", gz: bool = False, n_train: int = 12, n_test: int = 6):
    """Write a tiny MNIST-format data set; return the arrays written."""
    train, test = make_split(n_train, 0), make_split(n_test, 1)
    suffix = ".gz" if gz else ""
    for prefix, sub, (images, labels) in (("train", "train", train), ("t10k", "test", test)):
        folder = root / sub if layout == "subfolders" else root
        write_idx(folder / f"{prefix}-images-idx3-ubyte{suffix}", images, gz)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte{suffix}", labels, gz)
    return train, test


# ----------------------------------------------------------------- read_idx


def test_read_idx_uint8_images(tmp_path):
    images, _ = make_split(7, 3, h=28, w=28)
    out = read_idx(write_idx(tmp_path / "img-idx3-ubyte", images))
    assert out.dtype == np.uint8 and out.shape == (7, 28, 28)
    np.testing.assert_array_equal(out, images)


def test_read_idx_labels(tmp_path):
    labels = np.array([5, 0, 4, 1, 9], np.uint8)
    np.testing.assert_array_equal(read_idx(write_idx(tmp_path / "lab-idx1-ubyte", labels)), labels)


@pytest.mark.parametrize("name", ["x-idx3-ubyte.gz", "gzipped-without-suffix"])
def test_read_idx_gzip_detected_by_magic(tmp_path, name):
    images, _ = make_split(4, 0)
    np.testing.assert_array_equal(read_idx(write_idx(tmp_path / name, images, gz=True)), images)


@pytest.mark.parametrize("dtype", ["i1", "i2", "i4", "f4", "f8"])
def test_read_idx_other_dtypes_big_endian(tmp_path, dtype):
    arr = (np.arange(24).reshape(2, 3, 4) - 7).astype(dtype)
    out = read_idx(write_idx(tmp_path / "a.idx", arr))
    assert out.dtype.isnative and out.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(out, arr)


def test_read_idx_four_dims(tmp_path):
    arr = np.arange(2 * 3 * 2 * 2, dtype=np.uint8).reshape(2, 3, 2, 2)
    np.testing.assert_array_equal(read_idx(write_idx(tmp_path / "a.idx", arr)), arr)


def test_read_idx_truncated_names_file_and_counts(tmp_path):
    path = tmp_path / "short-idx3-ubyte"
    path.write_bytes(idx_bytes(np.zeros((3, 4, 4), np.uint8))[:-5])
    with pytest.raises(ValueError, match="truncated") as err:
        read_idx(path)
    assert str(path) in str(err.value) and "48" in str(err.value) and "43" in str(err.value)


def test_read_idx_trailing_bytes(tmp_path):
    path = tmp_path / "long-idx1-ubyte"
    path.write_bytes(idx_bytes(np.arange(5, dtype=np.uint8)) + b"\x00\x01")
    with pytest.raises(ValueError, match="trailing") as err:
        read_idx(path)
    assert "5" in str(err.value) and "7" in str(err.value)


@pytest.mark.parametrize(
    "header, match",
    [
        (bytes([1, 0, 0x08, 1]) + struct.pack(">I", 1) + b"\x00", "magic"),
        (bytes([0, 0, 0x0A, 1]) + struct.pack(">I", 1) + b"\x00", "magic"),
        (bytes([0, 0, 0x08, 0]), "dims"),
        (bytes([0, 0, 0x08, 5]) + struct.pack(">5I", 1, 1, 1, 1, 1) + b"\x00", "dims"),
        (bytes([0, 0, 0x08, 2]) + struct.pack(">2I", 3, 0), "positive"),
        (bytes([0, 0, 0x08, 3]) + struct.pack(">I", 3), "header"),
        (b"\x00\x00", "too short"),
        (b"", "too short"),
    ],
)
def test_read_idx_bad_header(tmp_path, header, match):
    path = tmp_path / "bad.idx"
    path.write_bytes(header)
    with pytest.raises(ValueError, match=match):
        read_idx(path)


def test_read_idx_corrupt_gzip(tmp_path):
    path = tmp_path / "broken.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.zeros((10, 8, 8), np.uint8)))[:-12])
    with pytest.raises(ValueError, match="gzip"):
        read_idx(path)


def test_read_idx_bad_path_type():
    with pytest.raises(TypeError, match="path"):
        read_idx(123)


def test_read_idx_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_idx(tmp_path / "nope")


# ------------------------------------------------------------ load_idx_dir


def check_dataset(ds: Dataset, train, test, name: str) -> None:
    assert ds.name == name and ds.num_classes == 3
    assert ds.x_train.shape == (12, 5, 4, 1) and ds.x_test.shape == (6, 5, 4, 1)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int32
    assert ds.y_test.dtype == np.int32
    np.testing.assert_allclose(ds.x_train[..., 0], train[0] / 255.0, rtol=1e-6)
    np.testing.assert_allclose(ds.x_test[..., 0], test[0] / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(ds.y_train, train[1])
    np.testing.assert_array_equal(ds.y_test, test[1])
    assert 0.0 <= ds.x_train.min() and ds.x_train.max() <= 1.0


@pytest.mark.parametrize("layout, gz", [("flat", False), ("flat", True), ("subfolders", False), ("subfolders", True)])
def test_load_idx_dir_layouts(tmp_path, layout, gz):
    train, test = write_mnist_dir(tmp_path, layout=layout, gz=gz)
    check_dataset(load_idx_dir(tmp_path, name="toy"), train, test, "toy")


def test_load_idx_dir_mindarmour_tutorial_layout(tmp_path):
    root = tmp_path / "MNIST_unzip"
    train, test = write_mnist_dir(root, layout="subfolders")
    check_dataset(load_idx_dir(str(root), name="mnist"), train, test, "mnist")


def test_load_idx_dir_subfolder_any_prefix(tmp_path):
    train, test = make_split(12, 0), make_split(6, 1)
    write_idx(tmp_path / "train" / "mnist-images-idx3-ubyte", train[0])
    write_idx(tmp_path / "train" / "mnist-labels-idx1-ubyte.gz", train[1], gz=True)
    write_idx(tmp_path / "test" / "mnist-images-idx3-ubyte", test[0])
    write_idx(tmp_path / "test" / "mnist-labels-idx1-ubyte", test[1])
    check_dataset(load_idx_dir(tmp_path), train, test, "idx")


def test_load_idx_dir_count_mismatch(tmp_path):
    write_mnist_dir(tmp_path)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(5, np.uint8))
    with pytest.raises(ValueError, match="6 images.*5 labels"):
        load_idx_dir(tmp_path)


def test_load_idx_dir_labels_beyond_num_classes(tmp_path):
    write_mnist_dir(tmp_path)
    with pytest.raises(ValueError, match="num_classes=2"):
        load_idx_dir(tmp_path, num_classes=2)


def test_load_idx_dir_missing_lists_names_and_how_to_get_data(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        load_idx_dir(tmp_path / "absent", name="fashion-mnist")
    msg = str(err.value)
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                 "t10k-labels-idx1-ubyte", ".gz"):
        assert name in msg
    assert "apt-get install dataset-fashion-mnist" in msg
    assert "/usr/share/datasets/fashion-mnist" in msg


def test_load_idx_dir_partially_missing_lists_only_missing(tmp_path):
    write_mnist_dir(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(FileNotFoundError, match="test labels") as err:
        load_idx_dir(tmp_path)
    assert "train images" not in str(err.value)


def test_load_fashion_mnist_missing_dir_message(tmp_path):
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        load_fashion_mnist(tmp_path)


@pytest.mark.skipif(not FASHION_DIR.is_dir(), reason="dataset-fashion-mnist is not installed")
def test_load_fashion_mnist_real():
    ds = load_fashion_mnist()
    assert ds.name == "fashion-mnist" and ds.num_classes == 10
    assert ds.x_train.shape == (60000, 28, 28, 1) and ds.x_test.shape == (10000, 28, 28, 1)
    assert ds.y_train.shape == (60000,) and ds.y_test.shape == (10000,)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int32
    assert ds.x_train.min() == 0.0 and ds.x_train.max() == 1.0
    np.testing.assert_array_equal(np.bincount(ds.y_train), np.full(10, 6000))
    np.testing.assert_array_equal(np.bincount(ds.y_test), np.full(10, 1000))


# ------------------------------------------------------------------ digits


def test_load_digits_shapes_and_ranges():
    ds = load_digits()
    assert ds.name == "digits" and ds.num_classes == 10
    assert ds.x_train.shape == (1347, 8, 8, 1) and ds.x_test.shape == (450, 8, 8, 1)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int32
    for x in (ds.x_train, ds.x_test):
        assert x.min() == 0.0 and x.max() == 1.0
    assert set(np.unique(ds.y_train)) == set(range(10))


def test_load_digits_stratified_and_deterministic():
    a, b, c = load_digits(seed=3), load_digits(seed=3), load_digits(seed=4)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.y_test, b.y_test)
    assert not np.array_equal(a.y_test, c.y_test)
    train_share = np.bincount(a.y_train) / len(a.y_train)
    test_share = np.bincount(a.y_test) / len(a.y_test)
    np.testing.assert_allclose(train_share, test_share, atol=0.01)


def test_load_digits_test_fraction():
    ds = load_digits(test_fraction=0.5)
    assert abs(len(ds.x_test) - len(ds.x_train)) <= 1


@pytest.mark.parametrize("bad", [0, 1, 1.5, -0.1, "0.2", True])
def test_load_digits_bad_fraction(bad):
    with pytest.raises(ValueError, match="test_fraction"):
        load_digits(test_fraction=bad)


def test_load_digits_bad_seed():
    with pytest.raises(TypeError, match="seed"):
        load_digits(seed=0.5)
    with pytest.raises(ValueError, match="seed"):
        load_digits(seed=-1)


# ------------------------------------------------------------ load_dataset


def test_load_dataset_dispatch(tmp_path):
    assert load_dataset("digits", test_fraction=0.2).x_test.shape[0] == 360
    write_mnist_dir(tmp_path, gz=True)
    ds = load_dataset("my-mnist", data_dir=tmp_path)
    assert ds.name == "my-mnist" and ds.x_train.shape == (12, 5, 4, 1)
    fashion = load_dataset("Fashion_MNIST", data_dir=tmp_path)
    assert fashion.name == "fashion-mnist" and fashion.num_classes == 10


def test_load_dataset_unknown_name_lists_allowed():
    with pytest.raises(ValueError, match="'digits', 'fashion-mnist'"):
        load_dataset("cifar10")


def test_load_dataset_digits_rejects_data_dir(tmp_path):
    with pytest.raises(ValueError, match="data_dir"):
        load_dataset("digits", data_dir=tmp_path)


def test_load_dataset_bad_name_type():
    with pytest.raises(TypeError, match="name"):
        load_dataset(3)


# ----------------------------------------------------------------- batches


@pytest.mark.parametrize("n, bs, drop", [(10, 3, True), (10, 3, False), (9, 3, True), (5, 8, False), (5, 8, True)])
def test_num_batches(n, bs, drop):
    expected = n // bs if drop else int(np.ceil(n / bs))
    assert num_batches(n, bs, drop) == expected


@pytest.mark.parametrize("drop", [True, False])
def test_batches_cover_every_sample_once_per_epoch(drop):
    n, bs = 23, 5
    x = np.arange(n * 2, dtype=np.float32).reshape(n, 2)
    y = np.arange(n)
    rng = np.random.default_rng(0)
    epochs = []
    for _ in range(2):
        seen = []
        got = list(batches(x, y, bs, rng=rng, drop_remainder=drop))
        assert len(got) == num_batches(n, bs, drop)
        for xb, yb in got:
            assert len(xb) == len(yb) and (len(xb) == bs or not drop)
            np.testing.assert_array_equal(xb[:, 0], 2 * yb)
            seen.extend(yb.tolist())
        assert len(seen) == len(set(seen)) == ((n // bs) * bs if drop else n)
        if not drop:
            assert sorted(seen) == list(range(n))
        epochs.append(seen)
    assert epochs[0] != epochs[1]
    assert epochs[0] != sorted(epochs[0])


def test_batches_unshuffled_order():
    y = np.arange(7)
    assert [b.tolist() for _, b in batches(y, y, 3)] == [[0, 1, 2], [3, 4, 5]]


def test_batches_validates_eagerly():
    x = np.zeros((4, 2))
    with pytest.raises(ValueError, match="same leading length"):
        batches(x, np.zeros(3), 2)
    with pytest.raises(ValueError, match="batch_size"):
        batches(x, np.zeros(4), 0)
    with pytest.raises(TypeError, match="rng"):
        batches(x, np.zeros(4), 2, rng=np.random.RandomState(0))
    with pytest.raises(ValueError, match="n must"):
        num_batches(-1, 2)


# ---------------------------------------------------------------- doctests


def test_docstring_examples_run():
    result = doctest.testmod(data_mod, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
    for name in data_mod.__all__:
        assert ">>>" in (getattr(data_mod, name).__doc__ or ""), name
