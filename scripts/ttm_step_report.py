#!/usr/bin/env python3
"""TTM training-step table: every pairwise contraction of a step (forward, input
gradient, every core gradient) for the layer shapes of REFERENCES.md §5 plus the
digits model, on one accelerator preset, with the run-time mapping (the compiler's
choice per contraction) and with the array locked to one fixed mapping.

Cycles come from the compiler's analytic model, which equals the RTL cycle count
exactly (tests/sim/test_harness.py checks it on hundreds of random contractions; pass
``--measure`` to also run every contraction of the table on the compiled backend and
check measured == predicted). Contraction orders: the hardware-aware CSSE plan
(``csse.search(cost="cycles")``). Layers are scaled to the preset by the batch size:
the largest batch in 64, 32, ... 1 whose every step fits the buffers in one program.

    python scripts/ttm_step_report.py --config tiny [--fixed 2,2,1] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from fetta.sw_model.program.kchunk import predict_total
from fetta.sw_model.accel.config import get_config
from fetta.sw_model.accel.isa import Mapping
from fetta.sw_model.ttm.workloads import LAYERS, scaled_plan, steps_of

DEFAULT_FIXED = {"tiny": (2, 2, 1), "ice40": (2, 1, 1), "ecp5": (2, 2, 1),
                 "large": (4, 4, 1)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="tiny")
    ap.add_argument("--fixed", help="fixed mapping GA,GB,GK (default per preset)")
    ap.add_argument("--measure", action="store_true",
                    help="also run every contraction on the compiled backend")
    ap.add_argument("--json", help="write the table as JSON")
    args = ap.parse_args(argv)
    cfg = get_config(args.config)
    fixed = Mapping(*(int(x) for x in args.fixed.split(","))) if args.fixed else \
        Mapping(*DEFAULT_FIXED.get(cfg.name, (1, 1, cfg.n_ce)))
    fixed.check(cfg)
    session = None
    if args.measure:
        from fetta.sim.harness import Session
        session = Session(cfg, "cxxrtl")
    rows, t0 = [], time.time()
    print(f"config {cfg.name}: {cfg.n_ce} CEs x {cfg.pe_rows}x{cfg.pe_cols} = {cfg.macs} "
          f"MACs, {cfg.bank_depth}-row buffers; fixed mapping ga={fixed.ga} gb={fixed.gb} "
          f"gk={fixed.gk}\n")
    print("| layer | batch | contractions | MACs | cycles (run-time) | utilization "
          "(mean / MAC-weighted) | cycles (fixed) | speedup (step / max) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, (i, o, r) in LAYERS.items():
        batch, plan, shapes = scaled_plan(i, o, r, cfg)
        utils, macs, cyc, cyc_fixed, speed = [], 0, 0, 0, []
        skewed = []
        for st, sa, sb in steps_of(plan, shapes):
            c, _ = predict_total(st.spec, sa, sb, cfg)
            cf, _ = predict_total(st.spec, sa, sb, cfg, fixed)
            if session is not None:
                rng = np.random.default_rng(0)
                res = session.contract(st.spec, rng.integers(-99, 99, sa),
                                       rng.integers(-99, 99, sb))
                if res.cycles != c:
                    sys.exit(f"measured {res.cycles} != predicted {c} for {st.spec}")
            utils.append(st.macs / (cfg.macs * c))
            skewed.append((st.macs / (cfg.macs * cf) < 0.5, cf / c))
            macs += st.macs
            cyc += c
            cyc_fixed += cf
            speed.append(cf / c)
        row = dict(layer=name, batch=batch, contractions=len(utils), macs=macs,
                   cycles=cyc, cycles_fixed=cyc_fixed,
                   utilization_mean=float(np.mean(utils)),
                   utilization_weighted=macs / (cfg.macs * cyc),
                   speedup_step=cyc_fixed / cyc, speedup_max=max(speed),
                   per_contraction_utilization=utils, skewed=skewed)
        rows.append(row)
        print(f"| {name} | {batch} | {len(utils)} | {macs:,} | {cyc:,} | "
              f"{100 * row['utilization_mean']:.0f}% / {100 * row['utilization_weighted']:.0f}% "
              f"| {cyc_fixed:,} | {row['speedup_step']:.2f}x / {row['speedup_max']:.2f}x |")
    allu = [u for r_ in rows for u in r_["per_contraction_utilization"]]
    sk = [sp for r_ in rows for is_sk, sp in r_["skewed"] if is_sk]
    if sk:
        print(f"skewed contractions (fixed mapping < 50% utilized): {len(sk)}; speedup of "
              f"the run-time mapping on them: mean {np.mean(sk):.2f}x, min {min(sk):.2f}x, "
              f"geometric mean {np.exp(np.mean(np.log(sk))):.2f}x")
    print(f"\nmean utilization over all {len(allu)} contractions: "
          f"{100 * np.mean(allu):.1f}%; mean of layer means "
          f"{100 * np.mean([r_['utilization_mean'] for r_ in rows]):.1f}%; "
          f"({time.time() - t0:.0f} s{', measured on cxxrtl' if session else ''})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"config": cfg.to_dict(), "fixed_mapping": [fixed.ga, fixed.gb,
                       fixed.gk], "rows": rows}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
