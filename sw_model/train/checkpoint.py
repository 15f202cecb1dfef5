"""Training checkpoints: one ``.npz`` archive holding the state arrays plus a JSON
metadata record (``__meta__``, a uint8 array of UTF-8 JSON) with a format version and a
SHA-256 checksum over every array (name, dtype, shape, bytes in name order).

Writes are atomic: the archive goes to a temporary file in the same directory, is
flushed and fsync'd, then ``os.replace``d over the target, so an interrupted save
leaves the previous checkpoint intact. A missing, truncated, corrupted, wrong-version
or mismatched checkpoint raises ValueError with one line; nothing loads silently wrong.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

__all__ = ["FORMAT_VERSION", "save", "load", "exists", "checksum", "check_compatible"]

FORMAT_VERSION = 1
_META = "__meta__"


def checksum(arrays: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(name.encode())
        h.update(str(a.dtype.str).encode())
        h.update(repr(tuple(a.shape)).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def exists(path) -> bool:
    return Path(path).is_file()


def save(path, arrays: dict[str, np.ndarray], meta: dict) -> None:
    path = Path(path)
    if _META in arrays:
        raise ValueError(f"array name {_META!r} is reserved")
    arrays = {k: np.asarray(v) for k, v in arrays.items()}
    record = {"format": "fetta-checkpoint", "format_version": FORMAT_VERSION,
              "sha256": checksum(arrays), "meta": meta}
    blob = np.frombuffer(json.dumps(record, sort_keys=True).encode(), dtype=np.uint8)
    buf = io.BytesIO()
    np.savez(buf, **arrays, **{_META: blob})
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise ValueError(f"checkpoint directory {str(directory)!r} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(buf.getvalue())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _member_array(path: Path, name: str, data: bytes) -> np.ndarray:
    """One ``.npy`` member's bytes -> array. The header is parsed defensively and its
    declared shape must match the bytes actually present before anything is
    allocated (a damaged header can neither crash the parser nor ask for terabytes)."""
    bad = f"checkpoint {str(path)!r} member {name!r}"
    f = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise ValueError(f"npy version {version}")
    except Exception as exc:           # any damage in the header text: one line
        raise ValueError(f"{bad} has a damaged array header ({type(exc).__name__}); "
                         f"the file is corrupted") from None
    if dtype.hasobject or not all(isinstance(n, int) and n >= 0 for n in shape):
        raise ValueError(f"{bad} declares dtype {dtype} shape {shape}; allowed plain "
                         f"numeric arrays")
    count = 1
    for n in shape:
        count *= n
    body = len(data) - f.tell()
    if count * dtype.itemsize != body:
        raise ValueError(f"{bad} declares shape {shape} ({count * dtype.itemsize} bytes) "
                         f"but holds {body}; the file is corrupted")
    arr = np.frombuffer(data, dtype=dtype, count=count, offset=f.tell())
    return arr.reshape(shape, order="F" if fortran else "C").copy()


def load(path) -> tuple[dict[str, np.ndarray], dict]:
    """(arrays, meta) of a checkpoint, verified.

    Integrity comes first: every archive member is read with its ZIP CRC checked (a
    stored member cannot be larger than the file), then each array header is parsed
    defensively and must describe exactly the bytes present; only then are arrays
    built and the SHA-256 over all of them compared with the one recorded. Any
    failure is a one-line ValueError."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"checkpoint {str(path)!r} not found")
    size = path.stat().st_size
    members = {}
    try:
        with zipfile.ZipFile(path) as z:
            for info in z.infolist():
                if info.file_size > size or not info.filename.endswith(".npy"):
                    raise ValueError(f"member {info.filename!r} of {info.file_size} "
                                     f"bytes is not an array of this file")
                members[info.filename[:-4]] = z.read(info)     # CRC checked here
    except Exception as exc:
        msg = str(exc).splitlines()[0] if str(exc) else ""
        raise ValueError(f"checkpoint {str(path)!r} is corrupted or truncated "
                         f"({type(exc).__name__}: {msg})") from None
    arrays = {k: _member_array(path, k, v) for k, v in members.items()}
    if _META not in arrays:
        raise ValueError(f"checkpoint {str(path)!r} has no metadata; not a fetta "
                         f"checkpoint")
    try:
        record = json.loads(arrays.pop(_META).tobytes().decode())
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ValueError(f"checkpoint {str(path)!r} metadata is corrupted") from None
    if not isinstance(record, dict) or record.get("format") != "fetta-checkpoint":
        raise ValueError(f"checkpoint {str(path)!r} is not a fetta checkpoint")
    if record.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"checkpoint {str(path)!r} format version "
                         f"{record.get('format_version')!r} unsupported; allowed "
                         f"{FORMAT_VERSION}")
    if record.get("sha256") != checksum(arrays):
        raise ValueError(f"checkpoint {str(path)!r} checksum mismatch; the file is "
                         f"corrupted")
    if not isinstance(record.get("meta"), dict):
        raise ValueError(f"checkpoint {str(path)!r} metadata is corrupted")
    return arrays, record["meta"]


def check_compatible(meta: dict, model, cfg) -> None:
    """ValueError unless the checkpoint continues this model/config (ranks may differ:
    rank adaptation shrinks them)."""
    mm = meta.get("model", {})
    want = model.to_dict()

    def shapes(d):
        return [(tuple(l["in_modes"]), tuple(l["out_modes"])) for l in d.get("layers", [])]

    if mm.get("name") != want["name"] or mm.get("dataset") != want["dataset"] or \
            shapes(mm) != shapes(want):
        raise ValueError(f"checkpoint is for model {mm.get('name')!r} "
                         f"({mm.get('dataset')}, {len(mm.get('layers', []))} layers), not "
                         f"{want['name']!r}; use another --checkpoint path")
    t = meta.get("train", {})
    for key in ("precision", "batch", "seed", "optimizer", "lr", "rank_adapt",
                "rank_threshold", "rank_prior", "rank_finetune"):
        if t.get(key) != getattr(cfg, key):
            raise ValueError(f"checkpoint was trained with {key}={t.get(key)!r}, this run "
                             f"has {key}={getattr(cfg, key)!r}")
    if t.get("recipe") != cfg.recipe.to_dict():
        raise ValueError("checkpoint was trained with another fixed-point recipe")
