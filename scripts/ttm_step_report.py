#!/usr/bin/env python3
"""TTM training-step table: every pairwise contraction of a step (forward, input
gradient, every core gradient) for the layer shapes of REFERENCES.md §5 plus the
digits model, on one accelerator preset, with the run-time mapping (the compiler's
choice per contraction) and with the array locked to one fixed mapping; and each
whole step as the host sees it, every contraction a separate job beside one resident
chain (``fetta.sim.ttm_step_table``).

Cycles come from the compiler's analytic model, which equals the RTL cycle count
exactly (tests/sim/test_harness.py checks it on hundreds of random contractions; pass
``--measure`` to also run every contraction of the table on the compiled backend and
check measured == predicted). Contraction orders: the hardware-aware CSSE plan
(``csse.search(cost="cycles")``). Layers are scaled to the preset by the batch size:
the largest batch in 64, 32, ... 1 whose every step fits the buffers in one program.

    python scripts/ttm_step_report.py --config tiny [--fixed 2,2,1] [--json out.json]

README's table is generated from ``docs/ttm/ttm-steps-tiny.json`` (``python
scripts/gen_docs.py ttm-steps``).
"""

from __future__ import annotations

import argparse
import sys

from fetta.sim.jsonio import write_json_atomic
from fetta.sim.ttm_step_table import DEFAULT_FIXED, END, measure, render
from fetta.sw_model.accel.config import get_config
from fetta.sw_model.accel.isa import Mapping


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="tiny")
    ap.add_argument("--fixed", help="fixed mapping GA,GB,GK (default per preset)")
    ap.add_argument("--measure", action="store_true",
                    help="also run every contraction on the compiled backend")
    ap.add_argument("--json", help="write the tables' data as JSON")
    args = ap.parse_args(argv)
    cfg = get_config(args.config)
    fixed = Mapping(*(int(x) for x in args.fixed.split(","))) if args.fixed else \
        Mapping(*DEFAULT_FIXED.get(cfg.name, (1, 1, cfg.n_ce)))
    fixed.check(cfg)
    session = None
    if args.measure:
        from fetta.sim.harness import Session
        session = Session(cfg, "cxxrtl")
    print(f"config {cfg.name}: {cfg.n_ce} CEs x {cfg.pe_rows}x{cfg.pe_cols} = {cfg.macs} "
          f"MACs, {cfg.bank_depth}-row buffers; fixed mapping ga={fixed.ga} gb={fixed.gb} "
          f"gk={fixed.gk}", file=sys.stderr)
    doc = measure(cfg, fixed, session, progress=lambda m: print(m, file=sys.stderr))
    print(render(doc).split("\n", 2)[2].replace(END, "").rstrip())
    print(f"({doc['wall_seconds']:.0f} s{', measured on cxxrtl' if session else ''})",
          file=sys.stderr)
    if args.json:
        write_json_atomic(args.json, doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
