#!/usr/bin/env python3
"""Training throughput: the simulated accelerator at its configured clock next to the
float64 NumPy trainer on one CPU core.

For each model (digits, mnist-tt shapes) on random data of the model's size:

* accelerator: a few fixed-point training steps run on the simulated accelerator
  (``sim.rtl_training``, every contraction on the RTL, sample-verified); its samples/s
  is ``batch / (measured cycles per step / clock)``, with cycles = compute + host
  transfer (one bus word per cycle, ``sim/harness.py``) — elementwise work (bias, ReLU,
  softmax, optimizer) is host work and not counted;
* NumPy: float64 training steps of ``sw_model.train.trainer`` with BLAS limited to one
  thread (``OMP_NUM_THREADS=1`` etc. are set before NumPy is imported); samples/s from
  the CPU time of the steps (robust on a shared machine) and from wall time.

    python scripts/bench_training.py                      # digits and mnist-tt, tiny, cxxrtl
    python scripts/bench_training.py --models digits --steps 4 --json bench.json

Prints a markdown table.
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fetta.sim.rtl_training import RtlTraining, clock_for  # noqa: E402
from fetta.sw_model.accel.config import get_config  # noqa: E402
from fetta.sw_model.ttm.models import resolve_model  # noqa: E402
from fetta.sw_model.train.trainer import DEFAULT_BATCH, Trainer, TrainConfig  # noqa: E402


def batches(model, batch: int, n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    for _ in range(n):
        yield rng.random((batch, model.n_features)), rng.integers(0, model.n_classes, batch)


def bench_accelerator(model, batch, steps, config, sim, clock_mhz) -> dict:
    rt = RtlTraining(config, sim=sim, verify="sample", clock_mhz=clock_mhz)
    tr = Trainer(model, TrainConfig(precision="fixed", batch=batch), n_train=1000,
                 executor=rt.executor, observer=rt.observer)
    t0 = time.perf_counter()
    for x, y in batches(model, batch, steps):
        tr.train_step(x, y)
    wall = time.perf_counter() - t0
    rep = rt.report()
    rt.close()
    c = rep["cycles"]
    per_step = c["total"] / steps
    return {"cycles_per_step": per_step,
            "compute_per_step": (c["total"] - c["host_transfer"]) / steps,
            "host_transfer_per_step": c["host_transfer"] / steps,
            "contractions_per_step": rep["contractions"] / steps,
            "mac_utilization": rep["mac_utilization"], "mismatches": rep["mismatches"],
            "clock_mhz": rep["clock_mhz"],
            "samples_per_s": batch / (per_step / (rep["clock_mhz"] * 1e6)),
            "samples_per_s_compute_only": batch / (
                (c["total"] - c["host_transfer"]) / steps / (rep["clock_mhz"] * 1e6)),
            "sim_wall_s_per_step": wall / steps}


def bench_numpy(model, batch, steps) -> dict:
    tr = Trainer(model, TrainConfig(precision="float", batch=batch), n_train=1000)
    data = list(batches(model, batch, steps + 1))
    tr.train_step(*data[0])                      # warm-up (plan search, caches)
    w0, c0 = time.perf_counter(), time.process_time()
    for x, y in data[1:]:
        tr.train_step(x, y)
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    return {"samples_per_s_cpu": batch * steps / cpu, "samples_per_s_wall": batch * steps / wall}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["digits", "mnist-tt"])
    p.add_argument("--config", default="tiny", help="accelerator preset [default tiny]")
    p.add_argument("--sim", default="cxxrtl", help="simulator backend [default cxxrtl]")
    p.add_argument("--clock-mhz", type=float, default=None,
                   help="accelerator clock [default: the preset's, sw_model/accel/measured.py]")
    p.add_argument("--batch", type=int, default=DEFAULT_BATCH)
    p.add_argument("--steps", type=int, default=2, help="accelerator steps per model")
    p.add_argument("--numpy-steps", type=int, default=20, help="NumPy steps per model")
    p.add_argument("--json", metavar="PATH")
    args = p.parse_args(argv)
    cfg = get_config(args.config)
    clock = clock_for(cfg, args.clock_mhz)
    rows = []
    for name in args.models:
        model = resolve_model(name)
        acc = bench_accelerator(model, args.batch, args.steps, cfg, args.sim, clock)
        ref = bench_numpy(model, args.batch, args.numpy_steps)
        rows.append({"model": name, "batch": args.batch, "accelerator": acc, "numpy": ref})
        print(f"{name}: done", file=sys.stderr)
    print(f"Accelerator `{cfg.name}` ({cfg.macs} MACs) at {clock:g} MHz, simulated on "
          f"{args.sim}, {args.steps} fixed-point steps; NumPy float64 trainer on one core "
          f"of {platform.processor() or platform.machine()} ({os.cpu_count()} CPUs), "
          f"{args.numpy_steps} steps; batch {args.batch}, random data.\n")
    print("| model | contractions/step | accel cycles/step (compute + host transfer) | "
          "MAC util. | accel samples/s | NumPy float samples/s (1 core, CPU time) | "
          "accel / NumPy |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        a, n = r["accelerator"], r["numpy"]
        print(f"| {r['model']} | {a['contractions_per_step']:.0f} | "
              f"{a['cycles_per_step']:,.0f} ({a['compute_per_step']:,.0f} + "
              f"{a['host_transfer_per_step']:,.0f}) | {a['mac_utilization'] * 100:.1f}% | "
              f"{a['samples_per_s']:,.0f} | {n['samples_per_s_cpu']:,.0f} | "
              f"{a['samples_per_s'] / n['samples_per_s_cpu']:.2f}x |")
    if any(r["accelerator"]["mismatches"] for r in rows):
        print("MISMATCH against the golden model", file=sys.stderr)
        return 1
    if args.json:
        Path(args.json).write_text(json.dumps({"clock_mhz": clock, "config": cfg.name,
                                               "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
