"""Fuzzing the file loaders: any corruption of a checkpoint or an IDX file loads
exactly what was saved or raises the documented one-line ValueError; never another
exception, never a partial or different checkpoint."""

import gzip
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fuzz_tiers import tier  # noqa: E402

from fetta.sw_model.train import checkpoint as ckpt  # noqa: E402
from fetta.sw_model.train.data import read_idx, write_idx  # noqa: E402

ARRAYS = {"w": np.arange(24, dtype=np.float64).reshape(4, 6) / 7,
          "n": np.arange(5, dtype=np.int64), "e": np.zeros((0, 3), np.float32)}


@pytest.fixture(scope="module")
def good_checkpoint(tmp_path_factory):
    p = tmp_path_factory.mktemp("ck") / "c.npz"
    ckpt.save(p, ARRAYS, {"epoch": 2})
    return p.read_bytes()


# a damage: (kind, position fraction, byte value, length)
damage = st.tuples(st.sampled_from(["flip", "set", "truncate", "insert", "delete"]),
                   st.floats(0, 1, allow_nan=False), st.integers(0, 255),
                   st.integers(1, 16))


def _damage(raw: bytes, edits) -> bytes:
    b = bytearray(raw)
    for kind, where, value, n in edits:
        if not b:
            break
        i = min(len(b) - 1, int(where * len(b)))
        if kind == "flip":
            b[i] ^= (value or 1)
        elif kind == "set":
            b[i:i + n] = bytes([value]) * len(b[i:i + n])
        elif kind == "truncate":
            del b[i:]
        elif kind == "insert":
            b[i:i] = bytes([value]) * n
        else:
            del b[i:i + n]
    return bytes(b)


def check_checkpoint(tmp_path, raw):
    p = tmp_path / "c.npz"
    p.write_bytes(raw)
    try:
        arrays, meta = ckpt.load(p)
    except ValueError as exc:
        assert "\n" not in str(exc)
        return
    # it loaded: then it is exactly what was saved (nothing partial or altered)
    assert meta == {"epoch": 2} and set(arrays) == set(ARRAYS)
    for k, v in ARRAYS.items():
        assert arrays[k].dtype == v.dtype and np.array_equal(arrays[k], v)


@tier()
@given(edits=st.lists(damage, min_size=1, max_size=4))
def test_fuzz_checkpoint_corruption(tmp_path_factory, good_checkpoint, edits):
    check_checkpoint(tmp_path_factory.mktemp("f"), _damage(good_checkpoint, edits))


@pytest.mark.slow
@tier(slow=True)
@given(edits=st.lists(damage, min_size=1, max_size=4))
def test_fuzz_checkpoint_corruption_slow(tmp_path_factory, good_checkpoint, edits):
    """Slow tier: 10,000 random corruptions (~1-2 min)."""
    check_checkpoint(tmp_path_factory.mktemp("f"), _damage(good_checkpoint, edits))


@pytest.fixture(scope="module")
def good_idx(tmp_path_factory):
    p = tmp_path_factory.mktemp("idx") / "a.idx"
    write_idx(p, np.arange(2 * 5 * 3, dtype=np.uint8).reshape(2, 5, 3))
    return p.read_bytes()


def check_idx(tmp_path, raw, compress):
    p = tmp_path / ("a.idx.gz" if compress else "a.idx")
    p.write_bytes(gzip.compress(raw) if compress else raw)
    try:
        arr = read_idx(p)
    except ValueError as exc:
        assert "\n" not in str(exc)
        return
    n = int(np.prod(arr.shape)) * arr.dtype.itemsize
    assert n <= len(raw)                     # never more data than the file holds


@tier()
@given(edits=st.lists(damage, min_size=1, max_size=4), compress=st.booleans())
def test_fuzz_idx_corruption(tmp_path_factory, good_idx, edits, compress):
    check_idx(tmp_path_factory.mktemp("f"), _damage(good_idx, edits), compress)


@tier()
@given(raw=st.binary(max_size=64), compress=st.booleans())
def test_fuzz_idx_random_bytes(tmp_path_factory, raw, compress):
    check_idx(tmp_path_factory.mktemp("f"), raw, compress)


@pytest.mark.slow
@tier(slow=True)
@given(edits=st.lists(damage, min_size=1, max_size=4), compress=st.booleans())
def test_fuzz_idx_corruption_slow(tmp_path_factory, good_idx, edits, compress):
    """Slow tier: 10,000 random corruptions."""
    check_idx(tmp_path_factory.mktemp("f"), _damage(good_idx, edits), compress)


@pytest.mark.slow
@tier(slow=True)
@given(raw=st.binary(max_size=64), compress=st.booleans())
def test_fuzz_idx_random_bytes_slow(tmp_path_factory, raw, compress):
    """Slow tier: 10,000 random files."""
    check_idx(tmp_path_factory.mktemp("f"), raw, compress)
