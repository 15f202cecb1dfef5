#!/usr/bin/env python3
"""Simulation speed benchmark for the README: pysim vs the compiled models vs a minimal
C++ loop, on the fixed 64x96 by 96x64 matrix product (see ``sim/commands/bench.py``).

    python scripts/bench_sim.py                       # tiny and large, both compiled backends
    python scripts/bench_sim.py --configs tiny --reps 50 --json bench.json --markdown bench.md

Prints the README table (wall-clock cycles/s, per-CPU-second in parentheses) under a
line naming the machine, and checks the issue's targets on ``tiny``: compiled
>= 1,000,000 cycles/s and >= 1000x pysim, harness within 2x of the minimal loop.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fetta.sim.commands.bench import bench_sim, machine, table, write_json_atomic  # noqa: E402
from fetta.sim.commands.bench import WORKLOAD  # noqa: E402

TARGET_CYCLES_PER_S = 1_000_000
TARGET_SPEEDUP = 1000
TARGET_OVERHEAD = 2.0


def targets(result: dict) -> list[str]:
    """One line per compiled backend saying which targets it meets (wall and CPU)."""
    lines = []
    for name, c in result["compiled"].items():
        m = result["minimal"][name]
        checks = [
            (f">= {TARGET_CYCLES_PER_S:,} cycles/s",
             c["cycles_per_s"] >= TARGET_CYCLES_PER_S,
             c["cycles_per_cpu_s"] >= TARGET_CYCLES_PER_S),
            (f">= {TARGET_SPEEDUP}x pysim",
             c.get("speedup_vs_pysim", 0) >= TARGET_SPEEDUP,
             c.get("speedup_vs_pysim_cpu", 0) >= TARGET_SPEEDUP),
            (f"harness within {TARGET_OVERHEAD}x of the minimal loop",
             m["harness_overhead"] <= TARGET_OVERHEAD,
             m["cycles_per_cpu_s"] / c["cycles_per_cpu_s"] <= TARGET_OVERHEAD),
        ]
        parts = [f"{what}: wall {'yes' if w else 'NO'}, CPU {'yes' if cpu else 'NO'}"
                 for what, w, cpu in checks]
        lines.append(f"{result['config']}/{name}: " + "; ".join(parts))
    return lines


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--configs", default="tiny,large")
    p.add_argument("--backends", default="cxxrtl,verilator")
    p.add_argument("--reps", type=int, default=20)
    p.add_argument("--pysim-reps", type=int, default=1)
    p.add_argument("--json", metavar="PATH")
    p.add_argument("--markdown", metavar="PATH", help="write the table (+ machine line)")
    args = p.parse_args(argv)
    results = []
    for cfg in [c for c in args.configs.split(",") if c]:
        results.append(bench_sim(cfg, reps=args.reps, pysim_reps=args.pysim_reps,
                                 backends=tuple(b for b in args.backends.split(",") if b)))
    mach = machine()
    load = mach.get("load_average")
    head = (f"Machine: {mach['cpu']}, {mach['cores']} cores"
            + (f" (load average {load:.1f} at the end)" if load is not None else "")
            + f", Python {mach['python']}, {mach['cxx']}, {mach.get('verilator', '?')}. "
            f"Command: `fetta bench sim --configs {args.configs} --reps {args.reps}`.")
    text = head + "\n\n" + table(results) + "\n"
    print(text)
    for r in results:
        for line in targets(r):
            print(line)
    if args.markdown:
        Path(args.markdown).write_text(text)
    if args.json:
        write_json_atomic(args.json, {"machine": mach, "workload": WORKLOAD,
                                      "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
