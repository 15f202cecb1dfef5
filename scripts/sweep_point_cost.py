#!/usr/bin/env python3
"""CPU cost of cycle-model sweep points: ``fetta.sweep.cost.cost_workload`` on every
layer of the TTM workload suite, in one process. Prints CPU seconds (robust on a shared
machine) and wall seconds.

* ``--configs PRESET ...``: each preset in turn, the first one in a fresh process (so
  the CSSE plan searches of ``order="macs"`` are included, as on a fresh worker), per
  workload;
* ``--space FILE [--every N]``: every N-th valid point of a space file after one warm-up
  point (plans searched and cached, as on a worker past its first point): mean and
  maximum CPU seconds per point.

    python scripts/sweep_point_cost.py --configs tiny ecp5 [--order macs]
    python scripts/sweep_point_cost.py --space docs/sweeps/neighbourhood.toml --every 3
"""

from __future__ import annotations

import argparse
import sys
import time

from fetta.sw_model.accel.config import get_config
from fetta.sw_model.ttm.workloads import LAYERS, ORDERS
from fetta.sweep.cost import cost_workload


def _point(cfg, order) -> dict:
    """CPU seconds per workload (an infeasible workload costs what it took to find out)."""
    out = {}
    for wl in LAYERS:
        t = time.process_time()
        try:
            cost_workload(cfg, wl, order)
        except ValueError:
            pass
        out[wl] = time.process_time() - t
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", nargs="+", default=None)
    ap.add_argument("--space", metavar="FILE")
    ap.add_argument("--every", type=int, default=1, metavar="N")
    ap.add_argument("--order", default="macs", choices=ORDERS)
    args = ap.parse_args(argv)
    if args.space:
        from fetta.sweep.space import load_space
        space = load_space(args.space)
        pts = [p for p in space.points if not p.reason]
        _point(pts[0].config, space.order)               # warm-up: plans cached
        pts = pts[::args.every]
        c0, w0 = time.process_time(), time.perf_counter()
        costs = [sum(_point(p.config, space.order).values()) for p in pts]
        cpu, wall = time.process_time() - c0, time.perf_counter() - w0
        print(f"{args.space}: {len(pts)} points x {len(LAYERS)} workloads: {cpu:.2f} s "
              f"CPU, {wall:.2f} s wall; {cpu / len(pts):.3f} s CPU per point (max "
              f"{max(costs):.3f})")
    for name in args.configs or ([] if args.space else ["tiny"]):
        cfg = get_config(name)
        c0, w0 = time.process_time(), time.perf_counter()
        parts = _point(cfg, args.order)
        print(f"{name}: {time.process_time() - c0:.2f} s CPU, "
              f"{time.perf_counter() - w0:.2f} s wall for {len(LAYERS)} workloads "
              f"({'; '.join(f'{wl}: {s:.2f}' for wl, s in parts.items())})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
