"""Checkpoints: round trip, corruption, truncation, mismatch, atomic save, resume."""

import os

import numpy as np
import pytest

from fetta.sw_model.train import checkpoint as ckpt
from fetta.sw_model.train.data import load_digits_split
from fetta.sw_model.ttm.models import get_model, model_from_dict
from fetta.sw_model.train.trainer import TrainConfig, train


def _save_sample(path, value=1.0):
    arrays = {"a": np.full((3, 4), value), "b": np.arange(5, dtype=np.int64)}
    ckpt.save(path, arrays, {"epoch": 3, "note": "x"})
    return arrays


def test_roundtrip(tmp_path):
    p = tmp_path / "c.npz"
    arrays = _save_sample(p)
    got, meta = ckpt.load(p)
    assert meta == {"epoch": 3, "note": "x"}
    assert set(got) == set(arrays)
    for k in arrays:
        assert np.array_equal(got[k], arrays[k]) and got[k].dtype == arrays[k].dtype
    assert [f for f in os.listdir(tmp_path) if f.endswith(".tmp")] == []


def test_corrupted_byte(tmp_path):
    p = tmp_path / "c.npz"
    _save_sample(p)
    raw = bytearray(p.read_bytes())
    # flip a byte inside array "a"'s data (first member of the archive)
    i = raw.index(np.full((3, 4), 1.0).tobytes()) + 5
    raw[i] ^= 0xFF
    p.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="corrupted") as exc:
        ckpt.load(p)
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize("keep", [0, 10, 100, 0.5, 0.95])
def test_truncated(tmp_path, keep):
    p = tmp_path / "c.npz"
    _save_sample(p)
    raw = p.read_bytes()
    n = int(len(raw) * keep) if isinstance(keep, float) else keep
    p.write_bytes(raw[:n])
    with pytest.raises(ValueError, match="corrupted|truncated|not a fetta") as exc:
        ckpt.load(p)
    assert "\n" not in str(exc.value)


def test_not_a_checkpoint(tmp_path):
    p = tmp_path / "c.npz"
    np.savez(p, a=np.zeros(3))
    with pytest.raises(ValueError, match="no metadata"):
        ckpt.load(p)
    with pytest.raises(ValueError, match="not found"):
        ckpt.load(tmp_path / "missing.npz")


def test_version_mismatch(tmp_path, monkeypatch):
    p = tmp_path / "c.npz"
    monkeypatch.setattr(ckpt, "FORMAT_VERSION", 99)
    _save_sample(p)
    monkeypatch.setattr(ckpt, "FORMAT_VERSION", 1)
    with pytest.raises(ValueError, match="format version 99 unsupported"):
        ckpt.load(p)


def test_interrupted_save_keeps_previous(tmp_path, monkeypatch):
    p = tmp_path / "c.npz"
    _save_sample(p, 1.0)
    before = p.read_bytes()

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(KeyboardInterrupt):
        _save_sample(p, 2.0)
    monkeypatch.undo()
    assert p.read_bytes() == before
    assert np.array_equal(ckpt.load(p)[0]["a"], np.full((3, 4), 1.0))
    assert [f for f in os.listdir(tmp_path) if f != "c.npz"] == []


def test_interrupted_write_keeps_previous(tmp_path, monkeypatch):
    """The process dies while the temp file is half written."""
    p = tmp_path / "c.npz"
    _save_sample(p, 1.0)
    before = p.read_bytes()
    real_fsync = os.fsync

    def die(fd):
        os.ftruncate(fd, 7)
        raise OSError("disk gone")

    monkeypatch.setattr(os, "fsync", die)
    with pytest.raises(OSError):
        _save_sample(p, 2.0)
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert p.read_bytes() == before


def test_model_mismatch(tmp_path):
    data = load_digits_split()
    p = tmp_path / "c.npz"
    train("digits", epochs=1, data=data, checkpoint=p)
    other = model_from_dict({"name": "other", "dataset": "digits", "layers": [
        {"in_modes": [8, 8], "out_modes": [4, 4], "ranks": [2]}]})
    before = p.read_bytes()
    with pytest.raises(ValueError, match="checkpoint is for model 'digits'"):
        train(other, epochs=2, data=data, checkpoint=p, resume=True)
    with pytest.raises(ValueError, match="precision"):
        train("digits", precision="fixed", epochs=2, data=data, checkpoint=p, resume=True)
    with pytest.raises(ValueError, match="seed"):
        train("digits", seed=5, epochs=2, data=data, checkpoint=p, resume=True)
    assert p.read_bytes() == before


@pytest.mark.parametrize("precision", ["float", "fixed"])
def test_resume_equals_uninterrupted(tmp_path, precision):
    data = load_digits_split()
    data.x_train, data.y_train = data.x_train[:256], data.y_train[:256]
    full = train("digits", precision=precision, epochs=2, data=data)
    p = tmp_path / "c.npz"
    train("digits", precision=precision, epochs=1, data=data, checkpoint=p)
    resumed = train("digits", precision=precision, epochs=2, data=data, checkpoint=p,
                    resume=True)
    assert resumed["epochs"] == full["epochs"]
    arrays, meta = ckpt.load(p)
    assert meta["epoch"] == 2


def test_check_compatible_ok():
    m = get_model("digits")
    cfg = TrainConfig()
    meta = {"model": m.to_dict(), "train": cfg.to_dict()}
    ckpt.check_compatible(meta, m, cfg)


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_signal_mid_epoch_checkpoint_and_exact_resume(tmp_path, sig):
    """A signal in the middle of epoch 2 stops at the step boundary, writes the
    checkpoint and raises KeyboardInterrupt; resuming ends with the same results and
    the same final weights as an uninterrupted run."""
    import signal
    data = load_digits_split()
    data.x_train, data.y_train = data.x_train[:320], data.y_train[:320]
    p_full, p = tmp_path / "full.npz", tmp_path / "c.npz"
    full = train("digits", precision="fixed", epochs=2, data=data, checkpoint=p_full)

    def progress(epoch, step, steps):
        if epoch == 1 and step == 2:
            os.kill(os.getpid(), getattr(signal, sig))

    with pytest.raises(KeyboardInterrupt):
        train("digits", precision="fixed", epochs=2, data=data, checkpoint=p,
              progress=progress)
    arrays, meta = ckpt.load(p)
    assert meta["epoch"] == 1 and meta["partial"]["pos"] == 2
    resumed = train("digits", precision="fixed", epochs=2, data=data, checkpoint=p,
                    resume=True)
    assert resumed["epochs"] == full["epochs"]
    a, _ = ckpt.load(p)
    b, _ = ckpt.load(p_full)
    assert set(a) == set(b) and all(np.array_equal(a[k], b[k]) for k in a)


def _rezip(path, edit):
    """Rewrite the archive at ``path`` with member bytes passed through ``edit(name,
    data)`` and valid CRCs (damage that the ZIP layer cannot see)."""
    import zipfile
    with zipfile.ZipFile(path) as z:
        members = [(i.filename, z.read(i)) for i in z.infolist()]
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members:
            z.writestr(name, edit(name, data))


@pytest.mark.parametrize("damage", ["syntax", "huge", "object", "short"])
def test_damaged_member_header_is_one_line_error(tmp_path, damage):
    """A damaged array header raised tokenize.TokenError, or allocated the shape it
    declared (MemoryError for terabytes), before any integrity check."""
    p = tmp_path / "c.npz"
    _save_sample(p)

    def edit(name, data):
        if name != "a.npy":
            return data
        if damage == "syntax":
            return data.replace(b"(3, 4)", b"(3, 4 ")
        if damage == "huge":
            return data.replace(b"'shape': (3, 4)", b"'shape': (1000000000000, 4)")
        if damage == "object":
            return data.replace(b"'<f8'", b"'|O' ")
        return data[:-8]
    _rezip(p, edit)
    with pytest.raises(ValueError, match="corrupted|allowed") as exc:
        ckpt.load(p)
    assert "\n" not in str(exc.value)


def test_damaged_header_bytes_fail_the_crc_first(tmp_path):
    p = tmp_path / "c.npz"
    _save_sample(p)
    raw = bytearray(p.read_bytes())
    i = raw.index(b"(3, 4)")
    raw[i + 5] = ord("(")
    p.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="corrupted") as exc:
        ckpt.load(p)
    assert "\n" not in str(exc.value)
