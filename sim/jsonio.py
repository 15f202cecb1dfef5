"""Atomic JSON output: every `--json` file the CLI writes goes through here."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

__all__ = ["write_json_atomic"]


def write_json_atomic(path, obj, *, sort_keys: bool = False) -> None:
    """Write ``obj`` as JSON to ``path`` via a temp file in the same directory and
    ``os.replace``, so an interrupted write never leaves half a file (the previous
    file, if any, stays intact)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp",
                               dir=path.resolve().parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, indent=2, sort_keys=sort_keys)
            f.write("\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
