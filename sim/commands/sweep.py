"""`fetta sweep`: design-space exploration on Dask (``fetta.sweep``).

    fetta sweep SPACE.toml [--workloads NAME ...] [--scheduler ADDRESS | --workers N]
                [--store PATH] [--synth BOARD] [--rtl-check K]
    fetta sweep --report STORE [--png PATH] [--json] [--x macs|dsps|buffer_kbits|luts]
                [--y cycles_per_sample|samples_per_s|energy_per_sample]
"""

from __future__ import annotations

import json
import sys

HELP = ("design-space sweep of accelerator configurations on Dask (resumable store, "
        "exact cycle model, energy model, optional Verilator check and synthesis); "
        "--report: Pareto front")


def add_arguments(p):
    p.add_argument("space", nargs="?", metavar="SPACE.toml",
                   help="space file: AccelConfig fields with values or ranges, "
                        "constraints, workloads (fetta/sweep/space.py, README "
                        "'Design-space sweeps')")
    p.add_argument("--workloads", nargs="+", metavar="NAME",
                   help="TTM suite layers (default: the space file's, else all; names "
                        "in sw_model/ttm/workloads.py)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--scheduler", metavar="ADDRESS",
                       help="a running Dask scheduler, tcp://HOST:PORT or tls://HOST:PORT "
                            "(TLS from --tls-* or Dask's distributed.comm.tls config)")
    where.add_argument("--workers", type=int, metavar="N",
                       help="worker processes of the local cluster (default: CPU count)")
    p.add_argument("--store", default="sweep.db", metavar="PATH",
                   help="SQLite store; rerunning resumes it (default sweep.db)")
    p.add_argument("--synth", metavar="BOARD",
                   help="also synthesize each point for BOARD (icebreaker, ulx3s-85f)")
    p.add_argument("--synth-seed", type=int, metavar="SEED", help="nextpnr seed")
    p.add_argument("--rtl-check", type=int, default=0, metavar="K",
                   help="also run K sampled contractions per point on Verilator")
    p.add_argument("--retries", type=int, default=2, help="task retries (default 2)")
    p.add_argument("--dashboard", default="127.0.0.1:8787", metavar="HOST:PORT",
                   help="local cluster's dashboard address (default 127.0.0.1:8787; a "
                        "free port is taken when busy)")
    p.add_argument("--tls-ca-file", metavar="PEM")
    p.add_argument("--tls-cert", metavar="PEM", help="client certificate")
    p.add_argument("--tls-key", metavar="PEM", help="client private key")
    p.add_argument("--report", metavar="STORE",
                   help="print the Pareto front per workload of STORE (no sweep)")
    p.add_argument("--x", default="macs", help="--report area axis: macs, dsps, "
                   "buffer_kbits, luts (default macs)")
    p.add_argument("--y", default="cycles_per_sample", help="--report cost axis: "
                   "cycles_per_sample, samples_per_s (needs --synth results) or "
                   "energy_per_sample (uJ; the FPGA model with --synth results, else "
                   "the ASIC model)")
    p.add_argument("--png", metavar="PATH", help="--report: write the plots")
    p.add_argument("--stale", action="store_true",
                   help="--report: include results computed by other code (another "
                        "cycle model or RTL fingerprint)")
    p.add_argument("--json", nargs="?", const="-", metavar="PATH",
                   help="JSON to PATH (default stdout): the report, or the sweep summary")


def _security(args):
    if not (args.tls_ca_file or args.tls_cert or args.tls_key):
        return None
    if not (args.scheduler or "").startswith("tls://"):
        raise ValueError("--tls-* options need --scheduler tls://HOST:PORT")
    from distributed.security import Security
    return Security(tls_ca_file=args.tls_ca_file, tls_client_cert=args.tls_cert,
                    tls_client_key=args.tls_key, require_encryption=True)


def _emit_json(obj, dest):
    text = json.dumps(obj, indent=1, default=str)
    if dest == "-":
        print(text)
    else:
        from ..jsonio import write_json_atomic
        write_json_atomic(dest, obj)


def run(args) -> int:
    if args.report:
        if args.space:
            raise ValueError("give either SPACE.toml (run a sweep) or --report STORE")
        from fetta.sweep.report import build_report, format_report, plot
        rep = build_report(args.report, args.x, args.y, include_stale=args.stale)
        if args.json:
            _emit_json({k: v for k, v in rep.items()}, args.json)
        if args.json != "-":
            print(format_report(rep))
        if args.png:
            plot(rep, args.png)
            print(f"plots: {args.png}", file=sys.stderr)
        return 0
    if not args.space:
        raise ValueError("missing SPACE.toml (or --report STORE)")
    if args.png:
        raise ValueError("--png applies to --report")
    from fetta.sweep.runner import run_sweep
    summary = run_sweep(args.space, args.store, workloads=args.workloads,
                        scheduler=args.scheduler, workers=args.workers, synth=args.synth,
                        synth_seed=args.synth_seed, rtl_check=args.rtl_check,
                        security=_security(args), dashboard_address=args.dashboard,
                        retries=args.retries, argv=sys.argv)
    if args.json:
        _emit_json(summary, args.json)
    return 1 if summary["failed"] else 0
