"""`fetta eval`: the papers' evaluation reproduced (``sim/evaluation.py``): per workload
and preset, cycles by phase, latency, samples/s, energy per sample, EDP and on-chip
memory, against the same training step measured now on this machine's CPU."""

from __future__ import annotations


import sys

HELP = ("evaluate training steps per workload and preset against the CPU (speed, "
        "energy, EDP, memory)")


def _list(text, allowed, what):
    items = [t for t in str(text).split(",") if t]
    for t in items:
        if t not in allowed:
            raise ValueError(f"{what} {t!r} unknown; allowed {', '.join(allowed)}")
    if not items:
        raise ValueError(f"{what} list is empty; allowed {', '.join(allowed)}")
    return items


def add_arguments(p):
    p.add_argument("--workloads", metavar="W1,W2", default=None,
                   help="workloads (default all: sw_model/ttm/workloads.py WORKLOADS)")
    p.add_argument("--presets", metavar="P1,P2", default=None,
                   help="accelerator presets (default tiny,large,asic; ecp5 needs its stored synthesis report)")
    p.add_argument("--batch", type=int, default=64, help="batch size (default 64)")
    p.add_argument("--cpu-steps", type=int, default=5,
                   help="timed CPU steps per workload and thread count (default 5)")
    p.add_argument("--confirm", default="tiny", metavar="P1,P2",
                   help="presets whose digits step also runs on the Verilator model to "
                        "confirm the cycle model (default tiny; 'none' to skip)")
    p.add_argument("--json", metavar="PATH", help="write every number as JSON")
    p.add_argument("--png", metavar="PATH", help="plot speedup, energy ratio and the "
                                                 "cycle breakdown")


def run(args) -> int:
    from fetta.sw_model.accel.config import PRESETS
    from fetta.sw_model.ttm.workloads import WORKLOADS

    from ..evaluation import DEFAULT_PRESETS, confirmation_lines, evaluate, markdown, plot
    from ..jsonio import write_json_atomic
    wls = _list(args.workloads, list(WORKLOADS), "workload") if args.workloads else None
    pres = _list(args.presets, list(PRESETS), "preset") if args.presets else \
        list(DEFAULT_PRESETS)
    confirm = [] if args.confirm == "none" else _list(args.confirm, list(PRESETS),
                                                      "--confirm preset")
    if not 1 <= args.batch <= 4096:
        raise ValueError(f"--batch {args.batch} out of range; allowed 1..4096")
    if not 1 <= args.cpu_steps <= 1000:
        raise ValueError(f"--cpu-steps {args.cpu_steps} out of range; allowed 1..1000")
    res = evaluate(wls, pres, batch=args.batch, cpu_steps=args.cpu_steps,
                   confirm=confirm,
                   progress=lambda m: print(m, file=sys.stderr, flush=True))
    if args.json:                 # first: a completed run is never lost to its printing
        write_json_atomic(args.json, res)
    print(markdown(res))
    for line in confirmation_lines(res):
        print(f"\n{line}")
    m = res["memory"]
    print(f"\nmemory (mnist-tt, fixed, batch {m['batch']}) vs dense 784-512-10 FP32: "
          f"weights {m['reduction_weights']:.0f}x, weights + master "
          f"{m['reduction_weights_and_master']:.1f}x, total {m['reduction_total']:.1f}x "
          f"(the paper reports {m['paper_reported']:g}x)")
    print(f"({res['wall_seconds']:.0f} s)")
    if args.png:
        plot(res, args.png)
    return 0
