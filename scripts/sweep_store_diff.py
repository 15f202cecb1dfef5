#!/usr/bin/env python3
"""Compare the results of two ``fetta sweep`` stores: the same (point, task) rows, each
with the same status, reason and result. ``--drop KEY ...`` leaves result keys out of
the comparison (fields that newer code adds). Exit code 1 when anything differs.

Used to check that a change meant to be result-neutral (e.g. a faster cost) stores
exactly what the code before it stored::

    fetta sweep docs/sweeps/mixed.toml --workers 2 --store before.db   # old tree
    fetta sweep docs/sweeps/mixed.toml --workers 2 --store after.db    # new tree
    python scripts/sweep_store_diff.py before.db after.db [--drop energy events]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys


def load(path, drop) -> dict:
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = con.execute("SELECT point_id, task, status, reason, result FROM results")
        out = {}
        for pid, task, status, reason, result in rows:
            res = json.loads(result) if result else None
            if isinstance(res, dict):
                res = {k: v for k, v in res.items() if k not in drop}
            out[pid, task] = (status, reason, res)
        return out
    finally:
        con.close()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--drop", nargs="+", default=[], metavar="KEY")
    args = ap.parse_args(argv)
    a, b = load(args.a, set(args.drop)), load(args.b, set(args.drop))
    only = sorted(a.keys() ^ b.keys())
    differ = sorted(k for k in a.keys() & b.keys() if a[k] != b[k])
    print(f"{args.a} vs {args.b}: {len(a)} and {len(b)} rows, {len(only)} in one store "
          f"only, {len(differ)} differ")
    for k in (only + differ)[:5]:
        print(f"  {k}: {a.get(k)} != {b.get(k)}"[:400])
    return 1 if only or differ else 0


if __name__ == "__main__":
    sys.exit(main())
