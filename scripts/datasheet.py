"""Write docs/datasheet.md from the code (fetta.sim.datasheet.render).

    python scripts/datasheet.py [--check]

--check exits 1 (and says so) when the file differs from what the code generates.
"""

import argparse
import sys
from pathlib import Path

from fetta.sim.datasheet import render

PATH = Path(__file__).resolve().parent.parent / "docs" / "datasheet.md"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true",
                   help="only compare; exit 1 if docs/datasheet.md is out of date")
    args = p.parse_args()
    text = render()
    if args.check:
        if not PATH.exists() or PATH.read_text() != text:
            print(f"{PATH} is out of date; run python scripts/datasheet.py",
                  file=sys.stderr)
            return 1
        return 0
    PATH.write_text(text)
    print(f"wrote {PATH} ({len(text.splitlines())} lines)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
