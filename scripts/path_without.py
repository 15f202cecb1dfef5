"""Print a PATH on which the given commands are not found (everything else still is).

    python3 scripts/path_without.py --dir /tmp/shadow verilator iverilog vvp

Each PATH directory that holds one of the commands is replaced by a directory under
``--dir`` of symlinks to all its other entries, so compilers, make, perl and the rest
of /usr/bin stay reachable. Used by CI (.ci/run) and tests/sim/test_fresh_machine.py to
run the project as on a machine without Debian's Verilator and Icarus.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def path_without(commands, shadow_root, path=None) -> str:
    """``path`` (default ``$PATH``) with ``commands`` hidden; shadows in ``shadow_root``."""
    shadow_root = Path(shadow_root)
    out = []
    path = os.environ["PATH"] if path is None else path
    for i, entry in enumerate(path.split(os.pathsep)):
        d = Path(entry)
        if not entry or not d.is_dir():
            continue
        if not any((d / c).exists() for c in commands):
            out.append(entry)
            continue
        shadow = shadow_root / f"{i}-{d.resolve().name}"
        shadow.mkdir(parents=True, exist_ok=True)
        for f in d.iterdir():
            link = shadow / f.name
            if f.name not in commands and not link.exists() and not link.is_symlink():
                link.symlink_to(f)
        out.append(str(shadow))
    return os.pathsep.join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", required=True, help="where to create the shadow directories")
    ap.add_argument("commands", nargs="+", help="commands to hide")
    args = ap.parse_args(argv)
    print(path_without(args.commands, args.dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
