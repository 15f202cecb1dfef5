#!/usr/bin/env python3
"""Markdown table of CSSE MAC counts per REFERENCES.md section 5 layer: dense step,
sum of independent per-network optima, joint plan (reuse across networks), reduction,
ratio to dense.

    python3 scripts/csse_table.py [--batch 64 32] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_csse import SECTION5  # noqa: E402

from fetta.sw_model.ttm import csse  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, nargs="+", default=[64, 32])
    ap.add_argument("--json", help="write rows as JSON")
    args = ap.parse_args(argv)
    rows = []
    for b in args.batch:
        print(f"\n### batch {b}\n")
        print("| layer | in -> out modes, ranks | dense MACs | per-network total | joint "
              "total | joint reduction | per-network / dense | joint / dense | joint exact over |")
        print("|---|---|---:|---:|---:|---:|---:|---:|---|")
        for name, i, o, r in SECTION5:
            m = csse.search(i, o, r, b).meta
            row = {"layer": name, "in": i, "out": o, "ranks": r, "batch": b,
                   "dense_macs": m["dense_macs"],
                   "per_network_total_macs": m["per_network_total_macs"],
                   "total_macs": m["total_macs"],
                   "exact_over": m["joint_search"]["exact_over"]}
            rows.append(row)
            dense, ind, joint = m["dense_macs"], m["per_network_total_macs"], m["total_macs"]
            print(f"| {name} | {','.join(map(str, i))} -> {','.join(map(str, o))}, "
                  f"r {','.join(map(str, r))} | {dense:,} | {ind:,} | {joint:,} | "
                  f"{ind / joint:.2f}x | {ind / dense:.3f} | {joint / dense:.3f} | "
                  f"{row['exact_over']} |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
