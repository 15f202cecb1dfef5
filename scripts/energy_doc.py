#!/usr/bin/env python3
"""Write docs/energy.md from the energy model's coefficient table
(``sw_model/accel/energy.py``); ``--check`` exits 1 when the file is out of date.

    python scripts/energy_doc.py [--check]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fetta.sw_model.accel.energy import markdown_table

DOC = Path(__file__).resolve().parent.parent / "docs" / "energy.md"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="compare, do not write")
    args = ap.parse_args(argv)
    text = markdown_table()
    if args.check:
        if not DOC.exists() or DOC.read_text() != text:
            print(f"{DOC} is out of date: run python scripts/energy_doc.py", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(text)
    print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
