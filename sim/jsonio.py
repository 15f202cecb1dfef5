"""Atomic JSON output: every `--json` file the CLI writes goes through here; and the
source commit a report records (``source_commit``)."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path

from fetta.errors import FettaError

__all__ = ["write_json_atomic", "source_commit"]


def source_commit() -> str | None:
    """Short hash of the git commit the running code comes from (a checkout or an
    editable install); ``None`` when it is not in a git work tree."""
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, cwd=os.path.dirname(__file__), timeout=10)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def write_json_atomic(path, obj, *, sort_keys: bool = False) -> None:
    """Write ``obj`` as JSON to ``path`` via a temp file in the same directory and
    ``os.replace``, so an interrupted write never leaves half a file (the previous
    file, if any, stays intact)."""
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp",
                                   dir=path.resolve().parent)
    except OSError as exc:
        raise FettaError(f"cannot write {path}: {exc.strerror or exc} "
                         f"(folder {path.resolve().parent})") from None
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
