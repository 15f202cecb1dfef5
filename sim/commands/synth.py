"""fetta synth: build a board bitstream with the YoWASP tools (yosys + nextpnr from
PyPI) and report Fmax, utilization and the critical path."""

from __future__ import annotations

import sys

from .options import add_config

HELP = "synthesize, place and route a board top (YoWASP yosys/nextpnr); report Fmax and resources"


def add_arguments(p):
    from fetta.boards.platforms import BOARDS
    from fetta.boards.top import DESIGNS
    p.add_argument("--board", required=True, choices=sorted(BOARDS),
                   help="target board")
    add_config(p, default=None, default_text="ice40 on icebreaker, ecp5 on ulx3s-85f")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="change a field of the preset, e.g. --set pe_rows=4 (repeatable; "
                        "fields: sw_model/accel/config.py)")
    p.add_argument("--design", default="accelerator", choices=DESIGNS,
                   help="accelerator (default), or memory: the UART link with a bus "
                        "memory, to bring up the link alone")
    p.add_argument("--clock-mhz", type=float, metavar="MHZ",
                   help="system clock (a PLL makes it; default: the board's, see "
                        "boards/platforms.py)")
    p.add_argument("--baud", type=int, default=115200, help="UART baud rate (default 115200)")
    p.add_argument("--seed", type=int, help="nextpnr placement seed")
    p.add_argument("--build-dir", metavar="DIR",
                   help="build directory (default build/<board>-<design>[-<config>])")
    p.add_argument("--json", metavar="PATH", help="write the summary as JSON")


class _Progress:
    """One status line per tool: a live spinner on a terminal, plain lines otherwise."""

    def __init__(self):
        self.tty = sys.stderr.isatty()
        self._status = None
        if self.tty:
            from rich.console import Console
            self.console = Console(stderr=True)

    def __call__(self, stage, seconds, done, detail=""):
        if done:
            if self._status is not None:
                self._status.stop()
                self._status = None
            print(f"  {stage:<34} {seconds:7.1f} s", file=sys.stderr, flush=True)
        elif self.tty:
            from rich.markup import escape
            text = f"{stage} ... {seconds:.0f} s" + (f"  [dim]{escape(detail)}[/dim]"
                                                      if detail else "")
            if self._status is None:
                self._status = self.console.status(text)
                self._status.start()
            else:
                self._status.update(text)

    def close(self):
        if self._status is not None:
            self._status.stop()


def format_summary(s: dict) -> str:
    what = (f"{s['design']} ({s['config']}: {s['macs']} {s['mac_kind']} MACs)"
            if s["design"] == "accelerator" else s["design"])
    lines = [f"{s['board']} / {s['device']}: {what} at {s['sys_clk_mhz']:g} MHz"]
    for dom, f in s["fmax_mhz"].items():
        tgt = s["target_mhz"].get(dom)
        ok = "met" if tgt is None or f >= tgt else "NOT met"
        lines.append(f"  Fmax {dom}: {f:.1f} MHz (target {tgt:g} MHz, timing {ok})")
    for name in ("LCs", "LUTs", "FFs", "DSPs", "BRAMs", "SPRAMs", "PLLs"):
        r = s["resources"].get(name)
        if r and r["available"]:
            lines.append(f"  {name:<6} {r['used']:6d} / {r['available']:<6d} "
                         f"({100 * r['used'] / r['available']:.0f} %)")
    cp = s.get("critical_path")
    if cp:
        lines.append(f"  critical path {cp['delay_ns']:.2f} ns ({cp['logic_levels']} logic "
                     f"levels, {cp['routing_ns']:.2f} ns routing): {cp['start']} -> "
                     f"{cp['end']}")
    t = s["tool_seconds"]
    lines.append("  tools: " + ", ".join(f"{k} {v:.1f} s" for k, v in t.items()) +
                 f"; total {s['wall_seconds']:.1f} s")
    lines.append(f"  bitstream: {s['bitstream']}")
    return "\n".join(lines)


def run(args) -> int:
    from fetta.boards.build import default_config, synth
    from fetta.sw_model.accel.config import with_overrides
    from .contract import write_json_atomic
    config = args.config
    if args.set:
        if args.design != "accelerator":
            raise ValueError(f"--set applies to the accelerator design, not {args.design!r}")
        config = with_overrides(config or default_config(args.board), args.set)
    progress = _Progress()
    try:
        summary = synth(args.board, config=config, design=args.design,
                        build_dir=args.build_dir, clock_mhz=args.clock_mhz,
                        baud=args.baud, seed=args.seed, on_progress=progress)
    finally:
        progress.close()
    print(format_summary(summary))
    if not summary["timing_met"]:
        print("warning: timing not met at the requested clock; lower --clock-mhz",
              file=sys.stderr)
    if args.json:
        write_json_atomic(args.json, summary)
    return 0
