"""Datasets: scikit-learn's offline 8x8 digits (fixed 80/20 split) and MNIST from
user-supplied IDX files, padded to 28x32 = 896 features (the paper's layout).

Features are float64 in [0, 1] (digits: pixel / 16, MNIST: pixel / 255); labels int64.
"""

from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["Dataset", "load_digits_split", "read_idx", "write_idx", "load_mnist",
           "pad_mnist", "load_dataset", "DIGITS_SPLIT_SEED", "MNIST_FILES"]

DIGITS_SPLIT_SEED = 0
MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
# IDX type byte -> NumPy big-endian dtype
_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


@dataclass
class Dataset:
    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    @property
    def n_features(self) -> int:
        return int(self.x_train.shape[1])


def load_digits_split(test_fraction: float = 0.2) -> Dataset:
    """The 1,797 digits, stratified 80/20 split with a fixed seed (the same split for
    every training seed)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    d = load_digits()
    x = d.data.astype(np.float64) / 16.0
    y = d.target.astype(np.int64)
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=test_fraction,
                                          random_state=DIGITS_SPLIT_SEED, stratify=y)
    return Dataset("digits", xtr, ytr, xte, yte)


_CHUNK = 1 << 20


def _read_exact(f, n: int) -> bytes:
    """Up to ``n`` bytes from ``f`` in bounded chunks (a gzip stream is never inflated
    past what is asked for)."""
    parts, got = [], 0
    while got < n:
        part = f.read(min(_CHUNK, n - got))
        if not part:
            break
        parts.append(part)
        got += len(part)
    return b"".join(parts)


def read_idx(path) -> np.ndarray:
    """Read an IDX file (optionally gzip-compressed). ValueError with one line when the
    file is missing, truncated or malformed. The header is read first and the body is
    decompressed only up to the size it declares (plus one byte to detect trailing
    data), so a small ``.gz`` cannot inflate past what its header promises."""
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"IDX file {str(p)!r} not found")
    try:
        with open(p, "rb") as raw_f:
            compressed = raw_f.read(2) == b"\x1f\x8b"
        f = gzip.open(p, "rb") if compressed else open(p, "rb")
        with f:
            head = _read_exact(f, 4)
            if len(head) < 4 or head[0] != 0 or head[1] != 0:
                raise ValueError(f"IDX file {str(p)!r} malformed: bad magic "
                                 f"{head[:4].hex() or '(empty)'}; expected "
                                 f"0000<type><ndim>")
            dtype = _IDX_TYPES.get(head[2])
            if dtype is None:
                raise ValueError(f"IDX file {str(p)!r} malformed: type byte "
                                 f"0x{head[2]:02x}; allowed "
                                 f"{', '.join(f'0x{t:02x}' for t in _IDX_TYPES)}")
            ndim = head[3]
            dims_raw = _read_exact(f, 4 * ndim)
            if ndim < 1 or len(dims_raw) < 4 * ndim:
                raise ValueError(f"IDX file {str(p)!r} malformed: {ndim} dimensions but "
                                 f"header is truncated")
            dims = [int.from_bytes(dims_raw[4 * i: 4 + 4 * i], "big") for i in range(ndim)]
            size = int(np.prod(dims, dtype=object)) * np.dtype(dtype).itemsize
            if not compressed and size != p.stat().st_size - 4 - 4 * ndim:
                raise ValueError(f"IDX file {str(p)!r} malformed: dims {dims} need {size} "
                                 f"data bytes, file has {p.stat().st_size - 4 - 4 * ndim}")
            body = _read_exact(f, size + 1)
    except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise ValueError(f"IDX file {str(p)!r} unreadable: "
                         f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
                         ) from None
    if len(body) != size:
        have = f"more than {size}" if len(body) > size else str(len(body))
        raise ValueError(f"IDX file {str(p)!r} malformed: dims {dims} need {size} data "
                         f"bytes, file has {have}")
    return np.frombuffer(body, dtype=dtype).reshape(dims).astype(
        np.dtype(dtype).newbyteorder("="))


def write_idx(path, array: np.ndarray) -> None:
    """Write an IDX file (uint8 arrays); used by tests and to prepare subsets."""
    a = np.asarray(array)
    codes = {np.dtype("uint8"): 0x08, np.dtype("int8"): 0x09}
    if a.dtype not in codes:
        raise ValueError(f"write_idx dtype {a.dtype} unsupported; allowed uint8, int8")
    header = bytes([0, 0, codes[a.dtype], a.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in a.shape)
    Path(path).write_bytes(header + a.tobytes())


def pad_mnist(images: np.ndarray) -> np.ndarray:
    """(n, 28, 28) uint8 -> (n, 896) float in [0, 1]: 4 zero columns per row (28x32)."""
    images = np.asarray(images)
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise ValueError(f"MNIST images shape {images.shape} invalid; expected (n, 28, 28)")
    out = np.zeros((images.shape[0], 28, 32), np.float64)
    out[:, :, :28] = images / 255.0
    return out.reshape(images.shape[0], 896)


def _find(directory: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"),
                 stem.replace("-idx", ".idx") + ".gz"):
        if (directory / name).is_file():
            return directory / name
    raise ValueError(f"MNIST file {stem}[.gz] not found in {str(directory)!r}; "
                     f"expected {', '.join(MNIST_FILES.values())}")


def load_mnist(directory) -> Dataset:
    """MNIST from the four standard IDX files in ``directory`` (``.gz`` accepted)."""
    if directory is None:
        raise ValueError("model mnist-tt needs MNIST IDX files; pass --mnist-dir DIR "
                         "(MNIST is not downloadable here)")
    d = Path(directory)
    if not d.is_dir():
        raise ValueError(f"MNIST directory {str(d)!r} not found")
    arrs = {k: read_idx(_find(d, v)) for k, v in MNIST_FILES.items()}
    for split in ("train", "test"):
        im, lb = arrs[f"{split}_images"], arrs[f"{split}_labels"]
        if im.ndim != 3 or im.shape[1:] != (28, 28):
            raise ValueError(f"MNIST {split} images shape {im.shape} invalid; expected "
                             f"(n, 28, 28)")
        if lb.ndim != 1 or lb.shape[0] != im.shape[0]:
            raise ValueError(f"MNIST {split} labels shape {lb.shape} does not match "
                             f"{im.shape[0]} images")
        if lb.dtype.kind not in "iu":
            raise ValueError(f"MNIST {split} labels have IDX type {lb.dtype}; allowed "
                             f"integer types (unsigned byte 0x08 in MNIST)")
        if lb.size and (lb.min() < 0 or lb.max() > 9):
            v = int(lb.min()) if lb.min() < 0 else int(lb.max())
            raise ValueError(f"MNIST {split} label {v} out of range; allowed 0..9")
        if im.dtype.kind == "f" and im.size and not np.isfinite(im).all():
            raise ValueError(f"MNIST {split} images contain NaN or infinite pixels; "
                             f"allowed values 0..255")
        if im.size and (im.min() < 0 or im.max() > 255):
            v = im.min() if im.min() < 0 else im.max()
            raise ValueError(f"MNIST {split} image pixel {v} out of range; allowed 0..255")
    return Dataset("mnist", pad_mnist(arrs["train_images"]),
                   arrs["train_labels"].astype(np.int64),
                   pad_mnist(arrs["test_images"]), arrs["test_labels"].astype(np.int64))


def load_dataset(name: str, mnist_dir=None) -> Dataset:
    if name == "digits":
        return load_digits_split()
    if name == "mnist":
        return load_mnist(mnist_dir)
    raise ValueError(f"dataset {name!r} unknown; allowed digits, mnist")
