"""fetta bench sim: simulated cycles per wall second, pysim vs the compiled model.

The fixed workload is one 64x96 by 96x64 matrix product (``mk,kn->mn``, 16-bit
operands, nearest-even rounding) through ``Session.contract`` — the harness behind
``run_contraction``, which splits it into chunks when a config's buffers are too small —
repeated. A "cycle" is an accelerator clock cycle counted by its CYCLES register (what
``ContractionResult.cycles`` reports), the same number on every backend. Three
measurements per config:

* ``pysim``: Amaranth's Python simulator through the harness;
* ``compiled``: the CXXRTL model through the harness (Python compiles, packs and
  unpacks each chunk, the C++ driver loads memories and clocks the run);
* ``minimal``: the same compiled design with the last chunk's program loaded, run back
  to back by a C++ loop (``CxxrtlBackend.run_repeat``): the ceiling, no harness.

Wall time is what the targets are stated in; CPU time of this process is reported too,
because on a shared 2-core machine wall time includes other people's work.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import tempfile
import time

import numpy as np

from sw_model.config import PRESETS, get_config

from ..errors import FettaError

HELP = "benchmarks; `fetta bench sim`: simulated cycles/s of pysim vs the compiled model"

WORKLOAD = {"spec": "mk,kn->mn", "a": (64, 96), "b": (96, 64), "shift": 8,
            "rounding": "nearest-even", "out_bits": 16, "seed": 7, "range": 2000}


def add_arguments(p):
    sub = p.add_subparsers(dest="what", metavar="WHAT")
    s = sub.add_parser("sim", help="simulated cycles per second: pysim vs compiled vs a "
                                   "minimal C++ loop, on a 64x96x64 matrix product",
                       description=__doc__.split("\n\n", 1)[1],
                       formatter_class=__import__("argparse").RawDescriptionHelpFormatter)
    s.add_argument("--configs", default="tiny,large",
                   help="comma-separated presets (default tiny,large; allowed "
                        f"{','.join(PRESETS)})")
    s.add_argument("--reps", type=int, default=20,
                   help="workload repetitions on the compiled backend (default 20)")
    s.add_argument("--pysim-reps", type=int, default=1,
                   help="workload repetitions on pysim (default 1; 0 skips pysim)")
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


def bench_sim(config, *, reps: int = 20, pysim_reps: int = 1, cache_dir=None,
              verbose: bool = True) -> dict:
    """Measure one config; returns a JSON-ready dict (see the module docstring)."""
    from sw_model.contraction import reference_contraction

    from ..cxxrtl_backend import CxxrtlBackend
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
    res = {"config": cfg.name, "macs": cfg.macs,
           "workload": f"{w['spec']} {w['a'][0]}x{w['a'][1]} by {w['b'][0]}x{w['b'][1]}"}

    t0 = time.perf_counter()
    be = CxxrtlBackend(cfg, cache_dir=cache_dir, verbose=verbose)
    res["build"] = {"built": be.built, "seconds": round(time.perf_counter() - t0, 3),
                    "key": be.key}
    with _progress() as progress:
        session = Session(cfg, be)
        first = _contract(session, a, b)          # warm-up (and the correctness check)
        if not np.array_equal(first.output, golden):
            raise FettaError(f"{cfg.name}: compiled output differs from the golden model")
        cycles = first.cycles
        res["cycles_per_rep"] = cycles
        res["chunks"] = first.chunks
        edges0 = be.cycles
        runs, wall, cpu = _timed(lambda: _contract(session, a, b), reps, progress,
                                 f"{cfg.name}: compiled x{reps}")
        assert all(r.cycles == cycles for r in runs)
        res["compiled"] = {"reps": reps, "wall_s": wall, "cpu_s": cpu,
                           "cycles_per_s": cycles * reps / wall,
                           "cycles_per_cpu_s": cycles * reps / cpu,
                           "clock_edges": be.cycles - edges0}

        # The ceiling: the last chunk's program, run back to back in C++.
        per_run = be.run_repeat(1, 100 * cycles + 10_000)
        n = max(1, cycles * reps // max(per_run, 1))
        w0, c0 = time.perf_counter(), time.process_time()
        total = be.run_repeat(n, 100 * cycles + 10_000)
        wall_m, cpu_m = time.perf_counter() - w0, time.process_time() - c0
        res["minimal"] = {"runs": n, "cycles": total, "wall_s": wall_m, "cpu_s": cpu_m,
                          "cycles_per_s": total / wall_m, "cycles_per_cpu_s": total / cpu_m}
        be.close()

        if pysim_reps:
            t0 = time.perf_counter()
            ps = Session(cfg, "pysim")
            res["pysim_setup_s"] = time.perf_counter() - t0
            runs, wall, cpu = _timed(lambda: _contract(ps, a, b), pysim_reps, progress,
                                     f"{cfg.name}: pysim x{pysim_reps}")
            ps.close()
            if not all(np.array_equal(r.output, golden) and r.cycles == cycles for r in runs):
                raise FettaError(f"{cfg.name}: pysim and compiled disagree on the workload")
            res["pysim"] = {"reps": pysim_reps, "wall_s": wall, "cpu_s": cpu,
                            "cycles_per_s": cycles * pysim_reps / wall,
                            "cycles_per_cpu_s": cycles * pysim_reps / cpu}
            res["speedup_vs_pysim"] = (res["compiled"]["cycles_per_s"] /
                                       res["pysim"]["cycles_per_s"])
    res["minimal_over_compiled"] = (res["minimal"]["cycles_per_s"] /
                                    res["compiled"]["cycles_per_s"])
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
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "cxx": ver}


def table(results: list[dict]) -> str:
    """Markdown table of bench_sim results (the README's)."""
    rows = ["| config | MACs | cycles/rep | pysim cycles/s | compiled cycles/s | "
            "minimal C++ loop cycles/s | compiled / pysim | minimal / compiled |",
            "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        ps = r.get("pysim")
        rows.append(
            f"| {r['config']} | {r['macs']} | {r['cycles_per_rep']:,} | "
            f"{ps['cycles_per_s']:,.0f} | " if ps else
            f"| {r['config']} | {r['macs']} | {r['cycles_per_rep']:,} | - | ")
        rows[-1] += (f"{r['compiled']['cycles_per_s']:,.0f} | "
                     f"{r['minimal']['cycles_per_s']:,.0f} | "
                     + (f"{r['speedup_vs_pysim']:,.0f}x | " if ps else "- | ")
                     + f"{r['minimal_over_compiled']:.2f}x |")
    return "\n".join(rows)


def write_json_atomic(path, data):
    path = os.fspath(path)
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def run(args) -> int:
    if getattr(args, "what", None) != "sim":
        raise FettaError("bench needs a target; allowed: sim (fetta bench sim --help)")
    names = [c.strip() for c in args.configs.split(",") if c.strip()]
    for n in names:
        get_config(n)
    results = []
    for n in names:
        r = bench_sim(n, reps=args.reps, pysim_reps=args.pysim_reps,
                      cache_dir=args.cache_dir)
        results.append(r)
        ps = r.get("pysim")
        print(f"{n}: {r['workload']} = {r['cycles_per_rep']:,} cycles in {r['chunks']} "
              f"chunk(s); build {'cold' if r['build']['built'] else 'warm'} "
              f"{r['build']['seconds']:.1f} s")
        if ps:
            print(f"  pysim     {ps['cycles_per_s']:>14,.0f} cycles/s "
                  f"({ps['cycles_per_cpu_s']:,.0f} per CPU s)")
        c, m = r["compiled"], r["minimal"]
        print(f"  compiled  {c['cycles_per_s']:>14,.0f} cycles/s "
              f"({c['cycles_per_cpu_s']:,.0f} per CPU s)"
              + (f", {r['speedup_vs_pysim']:,.0f}x pysim" if ps else ""))
        print(f"  minimal   {m['cycles_per_s']:>14,.0f} cycles/s "
              f"({m['cycles_per_cpu_s']:,.0f} per CPU s); harness costs "
              f"{r['minimal_over_compiled']:.2f}x")
    print()
    print(table(results))
    if args.json:
        write_json_atomic(args.json, {"machine": machine(), "workload": WORKLOAD,
                                      "results": results})
    return 0
