#!/usr/bin/env python3
"""What the on-chip MOVEs of a resident training step copy, row by row: the input for
a wider MOVE path.

For every layer of ``--workload`` at ``--batch`` on ``--config``, the step is planned
as resident chains (``sw_model.ttm.resident_step``) and every MOVE that copies
(fills left out) is expanded into its (source word, destination word) pairs
(``Move.addresses``). Per destination row of a layout change it classifies how the
row's words could be copied by a MOVE wider than one word per cycle:

* ``row copy``: the whole row from one source row, each word in its own lane (a plain
  row-wide copy would do);
* ``one source row``: all of the row's words from one source row, lanes permuted (a
  row-wide copy through a lane permutation, e.g. the distribution network);
* ``gather``: from several source rows (a corner turn: only a block transpose or a
  producer writing the consumer's layout avoids word-by-word copies).

Prints the words in each class and the MOVEs' share of the step's cycles.

    python scripts/move_patterns.py --workload digits --config tiny [--batch 64] [--json PATH]
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict

from fetta.sim.jsonio import write_json_atomic
from fetta.sw_model.accel.config import get_config
from fetta.sw_model.accel.move import buffer_lanes
from fetta.sw_model.program.resident_plan import plan_segments
from fetta.sw_model.ttm.resident_step import layer_chains, resident_step_events
from fetta.sw_model.ttm.workloads import get_workload

CLASSES = ("row copy", "one source row", "gather")


def classify(moves, src_lanes: int, dst_lanes: int) -> dict:
    """Words of one layout change's copying ``moves`` by class (module docstring)."""
    rows = defaultdict(list)
    for mv in moves:
        if mv.fill:
            continue
        src, dst = mv.addresses()
        for s, d in zip(src.tolist(), dst.tolist()):
            rows[d // dst_lanes].append((s, d))
    out = dict.fromkeys(CLASSES, 0)
    for pairs in rows.values():
        src_rows = {s // src_lanes for s, _ in pairs}
        if len(src_rows) > 1:
            out["gather"] += len(pairs)
        elif (len(pairs) == dst_lanes and src_lanes == dst_lanes and
              all(s % src_lanes == d % dst_lanes for s, d in pairs)):
            out["row copy"] += len(pairs)
        else:
            out["one source row"] += len(pairs)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workload", default="digits")
    ap.add_argument("--config", default="tiny")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    cfg = get_config(args.config)
    wl = get_workload(args.workload)
    words = dict.fromkeys(CLASSES, 0)
    for layer, (steps, shapes, _) in sorted(layer_chains(wl, args.batch, cfg).items()):
        for seg in plan_segments(steps, shapes, cfg):
            if seg.plan is None:
                continue
            for _, _, bank, mp in seg.plan.moves:
                got = classify(mp.moves, buffer_lanes(cfg, "C"), buffer_lanes(cfg, bank))
                for k in CLASSES:
                    words[k] += got[k]
    st = resident_step_events(wl, cfg, args.batch)["total"]
    total = st.cycles + st.move_cycles + st.host_words
    n = sum(words.values())
    doc = {"workload": wl.name, "config": cfg.name, "batch": args.batch,
           "words_copied": n, "by_class": words, "move_cycles": st.move_cycles,
           "step_cycles": total, "move_share": st.move_cycles / total if total else 0.0}
    print(f"{wl.name} on {cfg.name}, batch {args.batch}: {n:,} words copied by MOVEs; "
          + ", ".join(f"{k} {v:,} ({100 * v / n if n else 0:.0f}%)" for k, v in words.items())
          + f"; MOVEs {st.move_cycles:,} of {total:,} step cycles "
            f"({100 * doc['move_share']:.0f}%)")
    if args.json:
        write_json_atomic(args.json, doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
