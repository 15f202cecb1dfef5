"""fetta contract: run one pairwise contraction on the simulated accelerator."""

from __future__ import annotations

import sys

import numpy as np

from fetta.sw_model.accel.config import PRESETS
from fetta.sw_model.arith.contraction import reference_contraction
from fetta.sw_model.arith.einsum_spec import parse_spec
from fetta.sw_model.arith.fixedpoint import ROUNDING_MODES, Pow2Code
from fetta.sw_model.accel.isa import Mapping

from fetta.errors import FettaError
from fetta.api_checks import check_run_params
from ..backends.base import BACKENDS
from ..work_estimate import MAX_BYTES, MAX_SECONDS, estimate
from ..jsonio import write_json_atomic  # noqa: F401 (re-exported)
from .options import add_config

HELP = ("run one einsum contraction (or a chain file of them) on the accelerator; print "
        "cycles and utilization")


def add_arguments(p):
    p.add_argument("spec", nargs="?", help="pairwise einsum, e.g. 'ij,jk->ik'")
    p.add_argument("--chain", metavar="FILE.json",
                   help="run a chain of contractions instead (sim/chain.py: 'steps' "
                        "[{spec, a, b, out, shift?, rounding?, out_bits?, seed?}], "
                        "'tensors' {name: {shape, range?} or {data}}, 'config'?, "
                        "'seed'?); checked against the reference model step by step")
    p.add_argument("--resident", action="store_true",
                   help="with --chain: keep intermediates on chip (one program per "
                        "segment, results MOVEd into their readers' layouts; needs a "
                        "preset with the MOVE unit); the outputs no step reads are checked")
    p.add_argument("--program-at", default="0", metavar="WORD|top",
                   help="with --chain --resident: the program word the programs are "
                        "written at and started from (START with a start word), or "
                        "'top': the end of program memory [default 0]")
    p.add_argument("--stage", action="store_true",
                   help="with --chain --resident: the host writes each input densely "
                        "(one word per element) and MOVEs lay it out")
    p.add_argument("--shape", action="append", default=[], metavar="X=d0,d1,...",
                   help="operand shape, X is A or B (give both)")
    p.add_argument("--random", type=int, default=0, metavar="SEED",
                   help="seed of the random int operands (default 0)")
    p.add_argument("--range", type=int, default=1000, metavar="R",
                   help="operands drawn from [-R, R) (default 1000)")
    add_config(p)
    p.add_argument("--backend", default="pysim",
                   help="pysim (default), verilator or cxxrtl (compiled models; "
                        "verilator is the faster)")
    p.add_argument("--shift", type=int, default=0)
    p.add_argument("--rounding", default="floor", choices=ROUNDING_MODES)
    p.add_argument("--out-bits", type=int, default=16)
    p.add_argument("--seed", type=int, default=0, help="stochastic-rounding dither seed")
    p.add_argument("--mapping", metavar="GA,GB,GK",
                   help="force a mapping instead of the compiler's choice")
    p.add_argument("--vcd", metavar="PATH", help="write a VCD (+ .gtkw) of the run (pysim)")
    p.add_argument("--json", metavar="PATH", help="write the result summary as JSON")
    p.add_argument("--print-output", action="store_true", help="print the output tensor")
    p.add_argument("--force", action="store_true",
                   help="run even when the estimate is over the limits (expected wall "
                        "time > 10 minutes or host memory > 2 GiB; sim/work_estimate.py)")


def _shape(text, name):
    try:
        dims = tuple(int(x) for x in text.split(","))
    except ValueError:
        raise FettaError(f"--shape {name}={text!r} malformed; expected integers like 2,3,4")
    if any(d < 1 for d in dims):
        raise FettaError(f"--shape {name}={text!r} has a size < 1; allowed sizes >= 1")
    return dims


def run_chain_file(args) -> int:
    from ..chain import check_chain, load_chain_file, reference_chain, run_chain

    steps, tensors, opts = load_chain_file(args.chain, args.random)
    config = opts.get("config", args.config)
    if config not in PRESETS:
        raise FettaError(f"chain file config {config!r} unknown; allowed "
                         f"{', '.join(sorted(PRESETS))}")
    cfg = PRESETS[config]
    seed = opts.get("seed", args.seed)
    plan = check_chain(steps, tensors, seed)
    if args.stage and not args.resident:
        raise FettaError("--stage needs --resident (it stages a resident chain's inputs)")
    at = args.program_at
    if at != "top":
        try:
            at = int(at)
        except ValueError:
            raise FettaError(f"--program-at {at!r} invalid; allowed 'top' or a program "
                             f"word 0..{cfg.prog_depth - 1}") from None
    if at != 0 and not args.resident:
        raise FettaError("--program-at needs --resident (it places resident programs)")
    res = run_chain(steps, tensors, config=cfg, backend=args.backend, seed=seed,
                    resident=args.resident, stage=args.stage, program_at=at)
    values, mismatches = reference_chain(plan, tensors, cfg), 0
    for (spec, a, b, o, p), r in zip(plan, res.steps):
        bad = int((res.outputs[o] != values[o]).sum())
        mismatches += bad
        print(f"{o:<10} {spec:<22} {r.cycles:>9} cycles (predicted {r.predicted_cycles}), "
              f"{r.chunks} program(s), {100 * r.mac_utilization:.1f}% MACs, "
              f"{'bit-exact' if bad == 0 else f'{bad} MISMATCHES'}")
    if res.resident is not None:
        run = res.resident
        for seg in run.segments:
            how = (f"resident, {len(seg.plan.programs)} program(s)"
                   + (f", staged {', '.join(seg.plan.staged)}" if seg.plan.staged else "")
                   if seg.plan else "separate job")
            print(f"steps {seg.lo}..{seg.hi:<4} {how}")
        for o, v in res.outputs.items():
            bad = int((v != values[o]).sum())
            mismatches += bad
            print(f"{o:<10} {'bit-exact' if bad == 0 else f'{bad} MISMATCHES'}")
        print(f"cycles counted  {run.cycles['counted']} (predicted {run.cycles['predicted']})")
    c = res.cycles
    print(f"cycles          compute {c['compute']}  on-chip moves {c['on_chip_moves']}  "
          f"host transfer {c['host_transfer']}  total {c['total']}")
    print(f"host words      written {res.host_words['written']}  read "
          f"{res.host_words['read']}  skipped (resident) {res.host_words['skipped']}")
    print(f"MAC utilization {100 * res.mac_utilization:.1f}% of compute, "
          f"{100 * res.mac_utilization_with_transfer:.1f}% with transfer")
    if args.print_output:
        for o, v in res.outputs.items():
            print(f"{o} =\n{v}")
    if args.json:
        out = res.to_dict()
        out["mismatches"] = mismatches
        write_json_atomic(args.json, out)
    return 0 if mismatches == 0 else 1


def _progress_printer():
    """stderr progress for chunked work: every chunk on a terminal, else every ~10%."""
    tty = sys.stderr.isatty()

    def show(done, total):
        if total < 2:
            return
        if tty or done == total or done % max(1, total // 10) == 0:
            end = "\r" if tty and done < total else "\n"
            print(f"progress        chunk {done:,}/{total:,}", end=end, file=sys.stderr,
                  flush=True)
    return show


def run(args) -> int:
    from ..harness import run_contraction

    if args.chain:
        if args.spec:
            raise FettaError(f"give a spec or --chain, not both (spec {args.spec!r})")
        return run_chain_file(args)
    if not args.spec:
        raise FettaError("spec missing; give a pairwise einsum like 'ij,jk->ik' or "
                         "--chain FILE.json")
    sp = parse_spec(args.spec)
    shapes = {}
    for item in args.shape:
        if "=" not in item:
            raise FettaError(f"--shape {item!r} malformed; expected A=d0,d1,... or B=...")
        name, dims = item.split("=", 1)
        name = name.strip().upper()
        if name not in ("A", "B"):
            raise FettaError(f"--shape operand {name!r} unknown; allowed A, B")
        shapes[name] = _shape(dims, name)
    for name in ("A", "B"):
        if name not in shapes:
            raise FettaError(f"--shape {name}=... missing; give the shapes of A and B")
    sp.sizes(shapes["A"], shapes["B"])
    cfg = PRESETS[args.config]
    mapping = None
    if args.mapping:
        try:
            ga, gb, gk = (int(x) for x in args.mapping.split(","))
        except ValueError:
            raise FettaError(f"--mapping {args.mapping!r} malformed; expected GA,GB,GK")
        mapping = Mapping(ga, gb, gk).check(cfg)
    # every argument checked before the estimate is printed (bad input: one line)
    check_run_params(cfg, shift=args.shift, rounding=args.rounding, out_bits=args.out_bits,
                     seed=args.seed, mapping=mapping, max_cycles=None)
    if not 1 <= args.range <= 1 << (cfg.operand_bits - 1):
        raise ValueError(f"--range {args.range} invalid; allowed "
                         f"1..{1 << (cfg.operand_bits - 1)} (operands are "
                         f"{cfg.operand_bits}-bit)")
    if args.backend not in BACKENDS:
        raise ValueError(f"backend {args.backend!r} unknown; allowed {', '.join(BACKENDS)}")
    est = estimate(sp, shapes["A"], shapes["B"], cfg, args.backend, mapping)
    print(f"estimate        {est.describe()}", file=sys.stderr, flush=True)
    if est.too_big and not args.force:
        raise FettaError(f"contraction too big to start without --force: "
                         f"{est.describe()}; limits {MAX_SECONDS // 60} min, "
                         f"{MAX_BYTES >> 30} GiB")
    rng = np.random.default_rng(args.random)
    a = rng.integers(-args.range, args.range, size=shapes["A"])
    pow2 = Pow2Code(cfg.pow2_bits) if cfg.mac_kind == "shift" else None
    if pow2:
        b = pow2.quantize(rng.normal(0, 4, size=shapes["B"]))
    else:
        b = rng.integers(-args.range, args.range, size=shapes["B"])
    res = run_contraction(str(sp), a, b, config=cfg, shift=args.shift,
                          rounding=args.rounding, out_bits=args.out_bits, seed=args.seed,
                          backend=args.backend, vcd=args.vcd, mapping=mapping,
                          progress=_progress_printer())
    ref = reference_contraction(str(sp), a, b, shift=args.shift, rounding=args.rounding,
                                out_bits=args.out_bits, seed=args.seed,
                                acc_bits=cfg.acc_bits, b_pow2=pow2)
    mismatches = int((res.output != ref).sum())
    mp = res.mapping
    print(f"contraction     {sp}   A{shapes['A']} x B{shapes['B']} -> {res.output.shape}")
    print(f"config          {cfg.name}: {cfg.n_ce} CEs x {cfg.pe_rows}x{cfg.pe_cols} PEs "
          f"= {cfg.macs} MACs, backend {res.backend}")
    print(f"mapping         ga={mp.ga} gb={mp.gb} gk={mp.gk} ({mp.mode})")
    print(f"cycles          {res.cycles}   (predicted {res.predicted_cycles})")
    print(f"useful MACs     {res.useful_macs}")
    print(f"MAC utilization {100 * res.mac_utilization:.1f}%")
    c = res.counters
    print(f"counters        mac_active {c['mac_active_cycles']}  stall_drain "
          f"{c['stall_drain']}  stall_fill {c['stall_fill']}  stall_config "
          f"{c['stall_config']}")
    print(f"golden model    {'bit-exact' if mismatches == 0 else f'{mismatches} MISMATCHES'}")
    if args.vcd:
        print(f"waveform        {args.vcd} (+ {args.vcd.rsplit('.', 1)[0]}.gtkw)")
    if args.print_output:
        print(res.output)
    if args.json:
        out = res.to_dict()
        out["mismatches"] = mismatches
        write_json_atomic(args.json, out)
    return 0 if mismatches == 0 else 1
