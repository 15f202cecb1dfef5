"""Write the documents generated from the code, or check that they are up to date.

    python scripts/gen_docs.py [--check] [datasheet] [energy] [fpga-table]

* ``datasheet``: docs/datasheet.md (``fetta.sim.datasheet.render``);
* ``energy``: docs/energy.md (``fetta.sw_model.accel.energy.markdown_table``);
* ``fpga-table``: the FPGA build table in README.md between its markers
  (``fetta.sim.fpga_table.render``, from the stored synthesis summaries);
* ``train-rtl``: README's "Training on the RTL" figures between their markers
  (``fetta.sim.train_table.render``, from the stored run ``docs/train/rtl-digits-tiny.json``).

With no names, all of them. ``--check`` writes nothing and exits 1 naming every
document that differs from what the code generates.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _datasheet(current: str) -> str:
    from fetta.sim.datasheet import render
    return render()


def _energy(current: str) -> str:
    from fetta.sw_model.accel.energy import markdown_table
    return markdown_table()


def _splice(current: str, begin: str, end: str, block: str, what: str) -> str:
    """``current`` with the text from ``begin`` to ``end`` (markers included) replaced."""
    i, j = current.find(begin), current.find(end)
    if i < 0 or j < i:
        raise SystemExit(f"README.md has no {what} markers ({begin!r} ... {end!r})")
    return current[:i] + block + current[j + len(end) + 1:]


def _fpga_table(current: str) -> str:
    from fetta.sim.fpga_table import BEGIN, END, render
    return _splice(current, BEGIN, END, render(), "FPGA table")


def _train_rtl(current: str) -> str:
    from fetta.sim.train_table import BEGIN, END, load, render
    return _splice(current, BEGIN, END, render(load(ROOT)), "RTL training")


DOCS = {"datasheet": ("docs/datasheet.md", _datasheet),
        "energy": ("docs/energy.md", _energy),
        "fpga-table": ("README.md", _fpga_table),
        "train-rtl": ("README.md", _train_rtl)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="compare only; exit 1 if out of date")
    ap.add_argument("names", nargs="*", choices=[[], *DOCS], default=[],
                    metavar="NAME", help=f"documents ({', '.join(DOCS)}); default all")
    args = ap.parse_args(argv)
    stale = []
    for name in args.names or DOCS:
        rel, make = DOCS[name]
        path = ROOT / rel
        current = path.read_text() if path.exists() else ""
        text = make(current)
        if text == current:
            continue
        if args.check:
            stale.append(rel)
        else:
            path.write_text(text)
            print(f"wrote {rel} ({name})")
    if stale:
        print(f"out of date: {', '.join(stale)}; run python scripts/gen_docs.py",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
