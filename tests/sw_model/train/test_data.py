"""Datasets: the fixed digits split and the MNIST IDX loader on tiny files."""

import gzip

import numpy as np
import pytest

from fetta.sw_model.train.data import (MNIST_FILES, load_dataset, load_digits_split, load_mnist,
                           pad_mnist, read_idx, write_idx)


def test_digits_split_fixed():
    a, b = load_digits_split(), load_digits_split()
    assert a.x_train.shape == (1437, 64) and a.x_test.shape == (360, 64)
    assert np.array_equal(a.y_test, b.y_test) and np.array_equal(a.x_train, b.x_train)
    assert 0 <= a.x_train.min() and a.x_train.max() <= 1
    assert set(np.unique(a.y_train)) == set(range(10))


def test_idx_roundtrip(tmp_path):
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "a.idx", arr)
    assert np.array_equal(read_idx(tmp_path / "a.idx"), arr)
    (tmp_path / "a.idx.gz").write_bytes(gzip.compress((tmp_path / "a.idx").read_bytes()))
    assert np.array_equal(read_idx(tmp_path / "a.idx.gz"), arr)


@pytest.mark.parametrize("content,msg", [
    (b"", "bad magic"),
    (b"\x01\x02\x08\x01\x00\x00\x00\x01\x05", "bad magic"),
    (b"\x00\x00\x07\x01\x00\x00\x00\x01\x05", "type byte"),
    (b"\x00\x00\x08\x03\x00\x00", "truncated"),
    (b"\x00\x00\x08\x01\x00\x00\x00\x04\x05", "need 4 data bytes, file has 1"),
    (b"\x00\x00\x08\x01\x00\x00\x00\x01\x05\x06", "need 1 data bytes, file has 2"),
])
def test_idx_malformed(tmp_path, content, msg):
    p = tmp_path / "bad.idx"
    p.write_bytes(content)
    with pytest.raises(ValueError, match=msg) as exc:
        read_idx(p)
    assert "\n" not in str(exc.value)


def test_idx_missing(tmp_path):
    with pytest.raises(ValueError, match="not found"):
        read_idx(tmp_path / "nope")


def _write_mnist(d, n_train=5, n_test=3, seed=0):
    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("test", n_test)):
        write_idx(d / MNIST_FILES[f"{split}_images"],
                  rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        write_idx(d / MNIST_FILES[f"{split}_labels"],
                  rng.integers(0, 10, n, dtype=np.uint8))


def test_load_mnist_tiny(tmp_path):
    _write_mnist(tmp_path)
    ds = load_mnist(tmp_path)
    assert ds.x_train.shape == (5, 896) and ds.x_test.shape == (3, 896)
    img = read_idx(tmp_path / MNIST_FILES["train_images"])
    grid = ds.x_train.reshape(5, 28, 32)
    assert np.array_equal(grid[:, :, 28:], np.zeros((5, 28, 4)))
    np.testing.assert_allclose(grid[:, :, :28], img / 255.0)
    assert load_dataset("mnist", tmp_path).x_test.shape == (3, 896)


def test_load_mnist_errors(tmp_path):
    with pytest.raises(ValueError, match="--mnist-dir"):
        load_mnist(None)
    with pytest.raises(ValueError, match="not found"):
        load_mnist(tmp_path / "nodir")
    with pytest.raises(ValueError, match="not found"):
        load_mnist(tmp_path)
    _write_mnist(tmp_path)
    write_idx(tmp_path / MNIST_FILES["test_labels"], np.zeros(2, np.uint8))
    with pytest.raises(ValueError, match="does not match"):
        load_mnist(tmp_path)
    write_idx(tmp_path / MNIST_FILES["test_labels"], np.full(3, 12, np.uint8))
    with pytest.raises(ValueError, match="out of range"):
        load_mnist(tmp_path)
    write_idx(tmp_path / MNIST_FILES["test_images"], np.zeros((3, 8, 8), np.uint8))
    with pytest.raises(ValueError, match="expected"):
        load_mnist(tmp_path)


def test_pad_mnist_shape_check():
    with pytest.raises(ValueError):
        pad_mnist(np.zeros((2, 8, 8)))


def _idx_bytes(arr, type_byte, dtype):
    arr = np.asarray(arr, dtype=dtype)
    return bytes([0, 0, type_byte, arr.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in arr.shape) + arr.tobytes()


@pytest.mark.parametrize("what,msg", [
    ("nan_labels", "labels have IDX type float32"),
    ("nan_images", "NaN or infinite"),
    ("big_images", "pixel 300.0 out of range"),
])
def test_mnist_float_files_are_rejected(tmp_path, what, msg):
    """Float labels that were NaN passed the 0..9 check (then IndexError in training);
    NaN images trained "successfully"."""
    _write_mnist(tmp_path)
    if what == "nan_labels":
        (tmp_path / MNIST_FILES["train_labels"]).write_bytes(
            _idx_bytes([np.nan] * 5, 0x0D, ">f4"))
    else:
        im = np.zeros((5, 28, 28))
        im[1, 2, 3] = np.nan if what == "nan_images" else 300
        (tmp_path / MNIST_FILES["train_images"]).write_bytes(_idx_bytes(im, 0x0D, ">f4"))
    with pytest.raises(ValueError, match=msg) as exc:
        load_mnist(tmp_path)
    assert "\n" not in str(exc.value)


def test_gzip_is_not_inflated_past_the_declared_size(tmp_path):
    """A small .gz whose header declares 2x28x28 but which inflates to 100 MB: the
    loader stops at the declared size (+1 byte) instead of inflating everything."""
    import tracemalloc
    header = _idx_bytes(np.zeros((2, 28, 28)), 0x08, np.uint8)
    p = tmp_path / "bomb-idx3-ubyte.gz"
    with gzip.open(p, "wb", compresslevel=9) as f:
        f.write(header)
        zeros = bytes(1 << 20)
        for _ in range(100):
            f.write(zeros)
    assert p.stat().st_size < 1 << 20
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match="more than 1568") as exc:
            read_idx(p)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "\n" not in str(exc.value)
    assert peak < 8 << 20, peak
