#!/usr/bin/env python3
"""CPU cost of one cycle-model sweep point: ``fetta.sweep.cost.cost_workload`` on every
layer of the TTM workload suite for each given preset, in one fresh process (so the
CSSE plan searches of ``order="macs"`` are included, as on a fresh worker). Prints CPU
seconds (robust on a shared machine) and wall seconds per workload and in total.

    python scripts/sweep_point_cost.py --configs tiny ecp5 [--order macs]
"""

from __future__ import annotations

import argparse
import sys
import time

from fetta.sw_model.accel.config import get_config
from fetta.sw_model.ttm.workloads import LAYERS, ORDERS
from fetta.sweep.cost import cost_workload


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", nargs="+", default=["tiny"])
    ap.add_argument("--order", default="macs", choices=ORDERS)
    args = ap.parse_args(argv)
    for name in args.configs:
        cfg = get_config(name)
        c0, w0 = time.process_time(), time.perf_counter()
        parts = []
        for wl in LAYERS:
            t = time.process_time()
            cost_workload(cfg, wl, args.order)
            parts.append(f"{wl}: {time.process_time() - t:.2f}")
        print(f"{name}: {time.process_time() - c0:.2f} s CPU, "
              f"{time.perf_counter() - w0:.2f} s wall for {len(LAYERS)} workloads "
              f"({'; '.join(parts)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
