"""Resident dataflow vs separate jobs, per TTM layer, measured on the RTL.

For each layer of a workload, its training step's contractions (the CSSE plan's
forward then backward steps, ``sw_model.ttm.resident_step.layer_chains``) run as
one chain twice on the same backend: as separate jobs (every result read back and
rewritten by the host) and resident (``run_chain(..., resident=True)``: results moved
on chip by MOVE instructions, the host writing only the layer's inputs - x, the cores,
dy - and reading only what no contraction consumes - y, dx, the core gradients).
Operands are random integers; the outputs of both runs must be equal bit for bit
(the script fails otherwise). ``dy`` is written before the program here; in training
the host computes it between the forward and the backward (same words).

Reported per layer: cycles by phase (compute, on-chip moves, host transfer), host words
and the programs of the resident run, its segments and (JSON) the steps laid out
footprint-aware to fit the banks (``sw_model.program.resident_plan``); the resident run's counted cycles
equal its model (asserted).

    python scripts/resident_report.py --workload digits --config tiny --batch 8
        [--backend pysim|verilator|cxxrtl] [--json PATH]
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from fetta.sim.chain import run_chain
from fetta.sim.jsonio import source_commit, write_json_atomic
from fetta.sw_model.accel.config import get_config
from fetta.sw_model.ttm.resident_step import layer_chains
from fetta.sw_model.ttm.workloads import get_workload


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workload", default="digits")
    ap.add_argument("--config", default="tiny")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--backend", default="pysim")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    cfg = get_config(args.config)
    wl = get_workload(args.workload)
    rng = np.random.default_rng(0)
    rows, doc = [], {"workload": wl.name, "config": cfg.name, "batch": args.batch,
                     "backend": args.backend, "commit": source_commit(), "layers": []}
    # the CSSE plans by MACs, as the stored runs docs/resident/*.json were measured
    for layer, (steps, shapes, _) in sorted(layer_chains(wl, args.batch, cfg,
                                                          order="macs").items()):
        steps = [(spec, a, b, o, {"shift": 6}) for spec, a, b, o, _ in steps]
        tensors = {k: rng.integers(-64, 64, v) for k, v in shapes.items()}
        t0 = time.perf_counter()
        jobs = run_chain(steps, tensors, config=cfg, backend=args.backend)
        res = run_chain(steps, tensors, config=cfg, backend=args.backend, resident=True)
        wall = time.perf_counter() - t0
        for name, got in res.outputs.items():
            want = jobs.outputs[name]
            if not np.array_equal(got, want):
                bad = tuple(np.argwhere(got != want)[0])
                print(f"layer {layer}: output {name} element {bad}: resident "
                      f"{got[bad]}, separate jobs {want[bad]}", file=sys.stderr)
                return 1
        run = res.resident
        assert run.cycles["counted"] == run.cycles["predicted"], run.cycles
        plans = [s.plan for s in run.segments if s.plan is not None]
        entry = {"layer": layer, "contractions": len(steps),
                 "separate_jobs": {"cycles": jobs.cycles, "host_words": jobs.host_words},
                 "resident": {"cycles": res.cycles, "host_words": res.host_words,
                              "segments": [[s.lo, s.hi, "resident" if s.plan else "job"]
                                           for s in run.segments],
                              # steps laid out footprint-aware (not cycle-optimal)
                              "footprint_steps": [s.lo + i for s in run.segments
                                                  if s.plan is not None
                                                  for i in s.plan.footprint_steps],
                              "programs": sum(len(p.programs) for p in plans),
                              "moves": sum(len(mp.moves) for p in plans
                                           for _, _, _, mp in p.moves),
                              "moved_elements": sum(mp.elements for p in plans
                                                    for _, _, _, mp in p.moves)},
                 "outputs_equal": True, "wall_seconds": round(wall, 1)}
        doc["layers"].append(entry)
        j, r = jobs.cycles, res.cycles
        rows.append((layer, len(steps), len(run.segments), j["compute"], j["host_transfer"], j["total"],
                     r["compute"], r["on_chip_moves"], r["host_transfer"], r["total"],
                     jobs.host_words["written"] + jobs.host_words["read"],
                     res.host_words["written"] + res.host_words["read"]))
    print(f"{wl.name} on {cfg.name}, batch {args.batch}, backend {args.backend}; outputs "
          f"equal bit for bit")
    print("| layer | contractions | resident segments | jobs: compute | jobs: transfer | jobs: total | "
          "resident: compute | resident: moves | resident: transfer | resident: total | "
          "host words jobs | host words resident |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print("| " + " | ".join(f"{v:,}" if isinstance(v, int) else str(v) for v in r) + " |")
    if args.json:
        write_json_atomic(args.json, doc)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
