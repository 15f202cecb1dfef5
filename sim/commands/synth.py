"""fetta synth: build a board bitstream with the YoWASP tools (yosys + nextpnr from
PyPI) and report Fmax, utilization and the critical path.

``--seeds 1,2,3`` synthesizes once and places and routes once per nextpnr seed, one
after another: one line per seed (a seed whose tool fails or runs past
``--seed-timeout`` is reported failed with its reason, the others go on), then the
min/median/max Fmax over the routed seeds; the single-run figures below are the
slowest routed seed's (``boards.build.synth``).
"""

from __future__ import annotations

import argparse
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
    seeds = p.add_mutually_exclusive_group()
    seeds.add_argument("--seed", type=int, help="nextpnr placement seed")
    seeds.add_argument("--seeds", type=seed_list, metavar="N,N,...",
                       help="place and route once per nextpnr seed (synthesis once), "
                            "e.g. 1,2,3; reports each seed and min/median/max Fmax")
    p.add_argument("--seed-timeout", type=float, metavar="MIN",
                   help="stop a seed's place and route after MIN minutes and record it "
                        "as failed (a router that does not converge); default no limit")
    p.add_argument("--build-dir", metavar="DIR",
                   help="build directory (default build/<board>-<design>[-<config>])")
    p.add_argument("--json", metavar="PATH", help="write the summary as JSON")


def seed_list(text: str) -> list[int]:
    """``--seeds`` value: comma-separated distinct integers."""
    try:
        seeds = [int(x) for x in text.split(",")]
    except ValueError:
        seeds = []
    if not seeds or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(
            f"--seeds {text!r}: comma-separated distinct integers, e.g. 1,2,3")
    return seeds


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
            print(f"  {stage:<40} {seconds:7.1f} s", file=sys.stderr, flush=True)
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


def format_seed(r: dict) -> str:
    """One line for one seed of a multi-seed build."""
    if not r["routed"]:
        return f"  seed {r['seed']}: FAILED: {r['error']}"
    fmax = ", ".join(f"{d} {f:.1f} MHz" for d, f in r["fmax_mhz"].items())
    res = r["resources"]
    logic = next(f"{k} {res[k]['used']}/{res[k]['available']}" for k in ("LUTs", "LCs")
                 if k in res)
    cp = r["critical_path"] or {}
    path = (f"; path {cp['delay_ns']:.1f} ns, {cp['logic_levels']} levels, "
            f"{100 * cp['routing_share']:.0f} % routing" if cp else "")
    pnr = next(v for k, v in r["tool_seconds"].items() if k.startswith("nextpnr"))
    return (f"  seed {r['seed']}: {fmax} (timing {'met' if r['timing_met'] else 'NOT met'})"
            f", {logic}, FFs {res['FFs']['used'] if 'FFs' in res else '?'}, DSPs "
            f"{res['DSPs']['used']}, BRAMs {res['BRAMs']['used']}{path}; "
            f"nextpnr {pnr:.0f} s")


def format_seed_summary(s: dict) -> list[str]:
    """Per-seed lines and the min/median/max line of a multi-seed build."""
    agg = s["seed_summary"]
    lines = [format_seed(r) for r in s["seeds"]]
    spread = "; ".join(f"{d} min {v['min']:.1f} / median {v['median']:.1f} / max "
                       f"{v['max']:.1f} MHz" for d, v in agg["fmax_mhz"].items())
    lines.append(f"  seeds {','.join(map(str, agg['seeds']))}: {agg['routed']}/"
                 f"{len(agg['seeds'])} routed, timing met on {agg['timing_met']}; {spread}")
    lines.append(f"  below: seed {agg['reported_seed']}, the slowest routed seed")
    return lines


def format_summary(s: dict) -> str:
    what = (f"{s['design']} ({s['config']}: {s['macs']} {s['mac_kind']} MACs)"
            if s["design"] == "accelerator" else s["design"])
    lines = [f"{s['board']} / {s['device']}: {what} at {s['sys_clk_mhz']:g} MHz"]
    if "seeds" in s:
        lines += format_seed_summary(s)
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

    def on_seed(record, index, count):
        print(f"[{index + 1}/{count}]{format_seed(record)}", file=sys.stderr, flush=True)
    try:
        summary = synth(args.board, config=config, design=args.design,
                        build_dir=args.build_dir, clock_mhz=args.clock_mhz,
                        baud=args.baud, seed=args.seed, seeds=args.seeds,
                        seed_timeout=args.seed_timeout * 60 if args.seed_timeout else None,
                        on_progress=progress, on_seed=on_seed if args.seeds else None)
    finally:
        progress.close()
    print(format_summary(summary))
    if not summary["timing_met"]:
        print("warning: timing not met at the requested clock; lower --clock-mhz",
              file=sys.stderr)
    if args.json:
        write_json_atomic(args.json, summary)
    return 0
