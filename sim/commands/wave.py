"""fetta wave: print or plot signals of a VCD written by the simulator."""

from __future__ import annotations

from fetta.errors import FettaError
from ..waveform import load_vcd

HELP = "show signals of a VCD (value changes per cycle, optional PNG plot)"


def add_arguments(p):
    p.add_argument("vcd", help="VCD file (e.g. from fetta contract --vcd)")
    p.add_argument("--signals", action="append", metavar="PATTERN",
                   help="fnmatch pattern on signal names, e.g. '*cnt_*' (repeatable); "
                        "default: the signals listed in the .gtkw save file")
    p.add_argument("--signed", action="store_true", help="decode values as signed")
    p.add_argument("--from", dest="start", type=int, default=0, metavar="CYCLE")
    p.add_argument("--to", dest="stop", type=int, default=None, metavar="CYCLE")
    p.add_argument("--list", action="store_true", help="only list matching signal names")
    p.add_argument("--png", metavar="PATH", help="plot the signals as step traces")


def run(args) -> int:
    traces, cycles = load_vcd(args.vcd, args.signals, args.signed)
    stop = cycles if args.stop is None else args.stop
    if args.start < 0 or stop < args.start:
        raise FettaError(f"cycle window {args.start}..{stop} invalid; allowed "
                         f"0 <= from <= to")
    print(f"{args.vcd}: {cycles} cycles, {len(traces)} signals")
    for t in traces:
        if args.list:
            print(f"  {t.name} [{t.width}]")
            continue
        shown = [(c, v) for c, v in t.changes if args.start <= c <= stop]
        if t.name.endswith("ctrl_state_code"):
            from fetta.rtl.controller import CONTROLLER_STATES as names
            shown = [(c, names[v] if v is not None and v < len(names) else v)
                     for c, v in shown]
        vals = " ".join(f"@{c}:{'x' if v is None else v}" for c, v in shown[:40])
        more = f" ... (+{len(shown) - 40})" if len(shown) > 40 else ""
        print(f"  {t.name} [{t.width}]  {vals}{more}")
    if args.png:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, axes = plt.subplots(len(traces), 1, figsize=(12, 0.8 * len(traces) + 1),
                                 sharex=True, squeeze=False)
        for ax, t in zip(axes[:, 0], traces):
            xs = [c for c, v in t.changes if v is not None] + [stop]
            ys = [v for c, v in t.changes if v is not None]
            if ys:
                ax.step(xs, ys + [ys[-1]], where="post")
            ax.set_ylabel(t.name.rsplit(".", 1)[-1], rotation=0, ha="right", fontsize=7)
            ax.set_xlim(args.start, stop)
        axes[-1, 0].set_xlabel("cycle")
        fig.tight_layout()
        fig.savefig(args.png, dpi=100)
        print(f"plot written to {args.png}")
    return 0
