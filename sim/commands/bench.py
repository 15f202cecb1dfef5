"""fetta bench sim: simulated cycles per wall second, pysim vs the compiled model.

The fixed workload is one 64x96 by 96x64 matrix product (``mk,kn->mn``, 16-bit
operands, nearest-even rounding) through ``Session.contract`` — the harness behind
``run_contraction``, which splits it into chunks when a config's buffers are too small —
repeated. A "cycle" is an accelerator clock cycle counted by its CYCLES register (what
``ContractionResult.cycles`` reports), the same number on every backend. Three
measurements per config:

* ``pysim``: Amaranth's Python simulator through the harness;
* ``compiled``: each compiled model (``backend="cxxrtl"``; ``backend="verilator"``,
  Verilator on the emitted Verilog, the faster one) through the harness (Python
  compiles, packs and unpacks each chunk, the C++ driver loads memories and clocks the
  run);
* ``minimal``: the same compiled design driven through the same chunks by a minimal
  loop: the writes and runs the harness made in its first repetition are recorded and
  replayed (the C++ driver clocks every run), with no compiling, packing or unpacking.
  This is the ceiling; the JSON also has the last chunk's program run back to back by
  ``run_repeat`` alone (``last_chunk_loop``).

Wall time is what the targets are stated in; CPU time of this process is reported too,
because on a shared 2-core machine wall time includes other people's work.
"""

from __future__ import annotations

import os
import platform
import subprocess
import time

import numpy as np

from fetta.sw_model.accel.config import PRESETS, get_config

from fetta.errors import FettaError
from ..jsonio import write_json_atomic  # noqa: F401 (re-exported)

HELP = "benchmarks; `fetta bench sim`: simulated cycles/s of pysim vs the compiled model"

WORKLOAD = {"spec": "mk,kn->mn", "a": (64, 96), "b": (96, 64), "shift": 8,
            "rounding": "nearest-even", "out_bits": 16, "seed": 7, "range": 2000}


def add_arguments(p):
    sub = p.add_subparsers(dest="what", metavar="WHAT")
    s = sub.add_parser("sim", help="simulated cycles per second: pysim vs compiled vs a "
                                   "minimal C++ loop, on a 64x96x64 matrix product",
                       description=__doc__.split("\n\n", 1)[1],
                       formatter_class=__import__("argparse").RawDescriptionHelpFormatter)
    s.add_argument("--configs", default="tiny",
                   help="comma-separated presets (default tiny; allowed "
                        f"{','.join(PRESETS)}; a first build of large takes 6-10 min)")
    s.add_argument("--reps", type=int, default=20,
                   help="workload repetitions on the compiled backend (default 20)")
    s.add_argument("--pysim-reps", type=int, default=1,
                   help="workload repetitions on pysim (default 1; 0 skips pysim)")
    s.add_argument("--backends", default="verilator",
                   help="compiled backends to measure (default verilator, the fastest "
                        "to run; cxxrtl,verilator measures both: a first CXXRTL build "
                        "is the slow one, README 'Compiled simulation')")
    s.add_argument("--cache-dir", help="compiled-model cache (default $FETTA_CACHE_DIR or "
                                       "~/.cache/fetta-hdl)")
    s.add_argument("--json", metavar="PATH", help="write all measurements as JSON")


def _operands():
    rng = np.random.default_rng(WORKLOAD["seed"])
    r = WORKLOAD["range"]
    return rng.integers(-r, r, WORKLOAD["a"]), rng.integers(-r, r, WORKLOAD["b"])


def _contract(session, a, b):
    w = WORKLOAD
    return session.contract(w["spec"], a, b, shift=w["shift"], rounding=w["rounding"],
                            out_bits=w["out_bits"], seed=w["seed"])


def _progress():
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                               TimeElapsedColumn)
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), transient=True)


def _timed(fn, n, progress, label):
    """Run fn() n times; (results, wall seconds, CPU seconds)."""
    task = progress.add_task(label, total=n)
    out = []
    w0, c0 = time.perf_counter(), time.process_time()
    for _ in range(n):
        out.append(fn())
        progress.advance(task)
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    progress.remove_task(task)
    return out, wall, cpu


# The compiled backends (registered in sim.backends.base.BACKENDS like pysim).
COMPILED = ("cxxrtl", "verilator")


def _compiled_backend(name, cfg, cache_dir, verbose):
    if name not in COMPILED:
        raise ValueError(f"compiled backend {name!r} unknown; allowed {', '.join(COMPILED)}")
    from fetta.sim.backends.base import get_backend
    return get_backend(name, cfg, cache_dir=cache_dir, verbose=verbose)


def bench_sim(config, *, reps: int = 20, pysim_reps: int = 1, backends=("verilator",),
              cache_dir=None, verbose: bool = True) -> dict:
    """Measure one config; returns a JSON-ready dict (see the module docstring)."""
    from fetta.sw_model.arith.contraction import reference_contraction

    from ..harness import Session

    cfg = get_config(config)
    if reps < 1:
        raise ValueError(f"--reps={reps} invalid; allowed >= 1")
    if pysim_reps < 0:
        raise ValueError(f"--pysim-reps={pysim_reps} invalid; allowed >= 0")
    a, b = _operands()
    w = WORKLOAD
    golden = reference_contraction(w["spec"], a, b, shift=w["shift"], rounding=w["rounding"],
                                   out_bits=w["out_bits"], seed=w["seed"],
                                   acc_bits=cfg.acc_bits)
    res = {"config": cfg.name, "macs": cfg.macs, "compiled": {}, "minimal": {},
           "build": {},
           "workload": f"{w['spec']} {w['a'][0]}x{w['a'][1]} by {w['b'][0]}x{w['b'][1]}"}
    cycles = None
    with _progress() as progress:
        for name in backends:
            t0 = time.perf_counter()
            be = _compiled_backend(name, cfg, cache_dir, verbose)
            res["build"][name] = {"built": be.built, "key": be.key,
                                  "seconds": round(time.perf_counter() - t0, 3),
                                  "library": str(be.library)}
            session = Session(cfg, be)
            # Warm-up and the correctness check; it also records what the harness does
            # to the backend (memory/bus writes, runs) for the minimal loop below.
            ops = []
            write, run_until_idle = be.write, be.run_until_idle
            be.write = lambda addr, words: (ops.append(("w", addr, np.asarray(words))),
                                            write(addr, words))[1]
            be.run_until_idle = lambda mc: (ops.append(("r", mc)), run_until_idle(mc))[1]
            try:
                first = _contract(session, a, b)
            finally:
                del be.write, be.run_until_idle
            if not np.array_equal(first.output, golden):
                raise FettaError(f"{cfg.name}: {name} output differs from the golden model")
            if cycles is not None and first.cycles != cycles:
                raise FettaError(f"{cfg.name}: {name} took {first.cycles} cycles, "
                                 f"{backends[0]} {cycles}")
            cycles = first.cycles
            res["cycles_per_rep"] = cycles
            res["chunks"] = getattr(first, "chunks", 1)
            edges0 = be.cycles
            runs, wall, cpu = _timed(lambda: _contract(session, a, b), reps, progress,
                                     f"{cfg.name}: {name} x{reps}")
            if any(r.cycles != cycles for r in runs):
                raise FettaError(f"{cfg.name}: {name} cycle count changed between runs")
            res["compiled"][name] = {"reps": reps, "wall_s": wall, "cpu_s": cpu,
                                     "cycles_per_s": cycles * reps / wall,
                                     "cycles_per_cpu_s": cycles * reps / cpu,
                                     "clock_edges": be.cycles - edges0}

            # The minimal loop: the same design through the same chunks, replaying the
            # recorded writes and runs (C++ clocks every run) without the harness's
            # compiling, packing and unpacking.
            def replay():
                for op in ops:
                    if op[0] == "w":
                        be.write(op[1], op[2])
                    else:
                        be.run_until_idle(op[1])

            _, wall_m, cpu_m = _timed(replay, reps, progress, f"{cfg.name}: {name} minimal")
            res["minimal"][name] = {"reps": reps, "wall_s": wall_m, "cpu_s": cpu_m,
                                    "cycles_per_s": cycles * reps / wall_m,
                                    "cycles_per_cpu_s": cycles * reps / cpu_m,
                                    "harness_overhead": (cycles * reps / wall_m) /
                                    res["compiled"][name]["cycles_per_s"]}
            # For reference: the last chunk's program alone, back to back in C++.
            limit = 100 * cycles + 10_000
            per_run = be.run_repeat(1, limit)
            n = max(1, cycles * reps // max(per_run, 1))
            w0, c0 = time.perf_counter(), time.process_time()
            total = be.run_repeat(n, limit)
            res["minimal"][name]["last_chunk_loop"] = {
                "runs": n, "cycles": total,
                "cycles_per_s": total / (time.perf_counter() - w0),
                "cycles_per_cpu_s": total / (time.process_time() - c0)}
            be.close()

        if pysim_reps:
            t0 = time.perf_counter()
            ps = Session(cfg, "pysim")
            res["pysim_setup_s"] = time.perf_counter() - t0
            runs, wall, cpu = _timed(lambda: _contract(ps, a, b), pysim_reps, progress,
                                     f"{cfg.name}: pysim x{pysim_reps}")
            ps.close()
            for r in runs:
                if not np.array_equal(r.output, golden) or r.cycles != cycles:
                    raise FettaError(f"{cfg.name}: pysim ({r.cycles} cycles) and compiled "
                                     f"({cycles} cycles) disagree on the workload")
            res["pysim"] = {"reps": pysim_reps, "wall_s": wall, "cpu_s": cpu,
                            "cycles_per_s": cycles * pysim_reps / wall,
                            "cycles_per_cpu_s": cycles * pysim_reps / cpu}
            for name, c in res["compiled"].items():
                c["speedup_vs_pysim"] = c["cycles_per_s"] / res["pysim"]["cycles_per_s"]
                c["speedup_vs_pysim_cpu"] = (c["cycles_per_cpu_s"] /
                                             res["pysim"]["cycles_per_cpu_s"])
    return res


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    cxx = os.environ.get("CXX", "g++")
    try:
        ver = subprocess.run([cxx, "--version"], capture_output=True, text=True,
                             timeout=30).stdout.splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        ver = "?"
    try:
        vl = subprocess.run([os.environ.get("VERILATOR", "verilator"), "--version"],
                            capture_output=True, text=True, timeout=60).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        vl = "?"
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = None
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "cxx": ver, "verilator": vl or "?", "load_average": load,
            "pgo": os.environ.get("FETTA_PGO", "1")}


def table(results: list[dict]) -> str:
    """Markdown table of bench_sim results (the README's): wall-clock cycles/s, with
    per-CPU-second figures in parentheses."""
    rows = ["| config | backend | cycles/rep | pysim cycles/s | compiled cycles/s | "
            "minimal C++ loop cycles/s | compiled / pysim | minimal / compiled |",
            "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        ps = r.get("pysim")
        for name, c in r["compiled"].items():
            m = r["minimal"][name]
            rows.append(
                f"| {r['config']} | {name} | {r['cycles_per_rep']:,} | "
                + (f"{ps['cycles_per_s']:,.0f} ({ps['cycles_per_cpu_s']:,.0f}) | "
                   if ps else "- | ")
                + f"{c['cycles_per_s']:,.0f} ({c['cycles_per_cpu_s']:,.0f}) | "
                + f"{m['cycles_per_s']:,.0f} ({m['cycles_per_cpu_s']:,.0f}) | "
                + (f"{c['speedup_vs_pysim']:,.0f}x | " if ps else "- | ")
                + f"{m['harness_overhead']:.2f}x |")
    return "\n".join(rows)


def run(args) -> int:
    if getattr(args, "what", None) != "sim":
        raise FettaError("bench needs a target; allowed: sim (fetta bench sim --help)")
    names = [c.strip() for c in args.configs.split(",") if c.strip()]
    for n in names:
        get_config(n)
    backends = tuple(b.strip() for b in args.backends.split(",") if b.strip())
    for b in backends:
        if b not in COMPILED:
            raise ValueError(f"--backends {b!r} unknown; allowed {', '.join(COMPILED)}")
    results = []
    for n in names:
        r = bench_sim(n, reps=args.reps, pysim_reps=args.pysim_reps, backends=backends,
                      cache_dir=args.cache_dir)
        results.append(r)
        print(f"{n}: {r['workload']} = {r['cycles_per_rep']:,} cycles in {r['chunks']} "
              f"chunk(s)")
        ps = r.get("pysim")
        if ps:
            print(f"  {'pysim':<10}{ps['cycles_per_s']:>14,.0f} cycles/s "
                  f"({ps['cycles_per_cpu_s']:,.0f} per CPU s)")
        for name, c in r["compiled"].items():
            m, bd = r["minimal"][name], r["build"][name]
            print(f"  {name:<10}{c['cycles_per_s']:>14,.0f} cycles/s "
                  f"({c['cycles_per_cpu_s']:,.0f} per CPU s)"
                  + (f", {c['speedup_vs_pysim']:,.0f}x pysim" if ps else "")
                  + f"; build {'cold' if bd['built'] else 'warm'} {bd['seconds']:.1f} s")
            print(f"  {'  minimal':<10}{m['cycles_per_s']:>14,.0f} cycles/s "
                  f"({m['cycles_per_cpu_s']:,.0f} per CPU s); harness costs "
                  f"{m['harness_overhead']:.2f}x")
    print()
    print(table(results))
    if args.json:
        write_json_atomic(args.json, {"machine": machine(), "workload": WORKLOAD,
                                      "results": results})
    return 0
