"""Host-bus traffic recorded on one backend, replayed on the emitted Verilog in a
third-party simulator from power-up.

* ``RecordingBackend(inner)`` is a ``Backend`` that forwards every call to ``inner``
  (normally pysim, the reference) and records it: writes with their words, reads with
  the words ``inner`` returned, runs. Anything that drives a backend (``Session``, a
  hand-written program) can be recorded.
* ``run_replay(verilog, ops, simulator)`` writes the ops as a text file, runs the
  generic testbench ``TESTBENCH`` around the emitted top in ``simulator`` (Icarus
  ``-g2005``, Icarus ``-g2012`` or Verilator ``--binary --timing``) and returns what the
  simulator read: one value per recorded read word and the cycle count of every run.
* ``compare_replay`` names the first read that differs (operation index, address,
  simulator and reference values).

The testbench never asserts reset: registers start from their initializers, the
state a freshly configured FPGA is in. Bus timing is the host-bus contract
(``sw_model/accel/hostmap.py``): a one-cycle write strobe; a one-cycle read strobe with
``rdata`` taken when ``rvalid`` rises ``READ_LATENCY`` cycles later (a missing
``rvalid`` is reported); a run is a START write, then clock cycles until ``busy`` is
low. Inputs change on the falling clock edge.

The Verilator binary depends only on the Verilog (the ops are read at run time), so it
is built once per design into the build cache (``build_cache.cache_root``).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Sequence

from fetta.sw_model.accel.hostmap import ADDR_BITS, READ_LATENCY, REG_BASE, Reg, ctrl_start

from fetta.errors import FettaError

from .backends.base import Backend
from .iverilog import require_iverilog

__all__ = ["RecordingBackend", "SIMULATORS", "TESTBENCH", "run_replay", "compare_replay",
           "available_simulators"]

# simulator name -> what it is (the testbench and the design compile unchanged in all)
SIMULATORS = {
    "iverilog-2005": "Icarus Verilog, iverilog -g2005 (Verilog-2005)",
    "iverilog-2012": "Icarus Verilog, iverilog -g2012 (SystemVerilog; cocotb's default)",
    "verilator": "Verilator --binary --timing, X initial values randomized",
}

OP_WRITE, OP_READ, OP_RUN = 0, 1, 2

TESTBENCH = f"""\
`timescale 1ns/1ps
// Generic host-bus replay testbench (sim/bus_replay.py). Reads ops.txt, one op per line
// "<kind> <addr> <data>" in hex: 0 write data to addr; 1 read addr; 2 START and wait at
// most data cycles for busy to drop. Writes results.txt: "R <addr> <rdata> <rvalid>" per
// read, "C <cycles>" per run. Reset is never asserted (power-up state).
module fetta_replay_tb;
  reg clk = 1'b0;
  reg [{ADDR_BITS - 1}:0] addr = {ADDR_BITS}'d0;
  reg [31:0] wdata = 32'd0;
  reg write = 1'b0;
  reg read = 1'b0;
  wire [31:0] rdata;
  wire rvalid, busy, done, error;
  TOP dut (.clk(clk), .rst(1'b0), .bus__addr(addr), .bus__wdata(wdata),
           .bus__write(write), .bus__read(read), .bus__rdata(rdata),
           .bus__rvalid(rvalid), .busy(busy), .done(done), .error(error));
  always #5 clk = ~clk;
  integer fd, out, code, n;
  reg [31:0] kind, a, d;
  initial begin
    fd = $fopen("ops.txt", "r");
    out = $fopen("results.txt", "w");
    @(negedge clk);
    code = $fscanf(fd, "%h %h %h\\n", kind, a, d);
    while (code == 3) begin
      if (kind == {OP_WRITE}) begin
        write = 1'b1; addr = a; wdata = d;
        @(negedge clk);
        write = 1'b0;
      end else if (kind == {OP_READ}) begin
        read = 1'b1; addr = a;
        @(negedge clk);
        read = 1'b0;
        repeat ({READ_LATENCY - 1}) @(negedge clk);
        $fwrite(out, "R %h %h %h\\n", a, rdata, rvalid);
      end else begin
        write = 1'b1; addr = {REG_BASE + Reg.CTRL}; wdata = a;   // the CTRL word (START, start word)
        @(negedge clk);
        write = 1'b0;
        n = 0;
        while (busy && n < d) begin
          @(negedge clk);
          n = n + 1;
        end
        $fwrite(out, "C %0d\\n", n);
      end
      code = $fscanf(fd, "%h %h %h\\n", kind, a, d);
    end
    $fclose(out);
    $finish;
  end
endmodule
"""

VERILATOR_FLAGS = ("--binary", "--timing", "-j", "0", "-Wno-fatal", "-Wno-lint",
                   "-Wno-style", "--x-assign", "unique", "--x-initial", "unique",
                   "--top-module", "fetta_replay_tb")
# The C++ of a replay build runs a few thousand cycles: compile it without optimization.
VERILATOR_MAKE = ("OPT_FAST=-O0", "OPT_SLOW=-O0", "OPT_GLOBAL=-O0")
# Randomize every X initial value (a design relying on one would differ between runs).
VERILATOR_RUN = ("+verilator+rand+reset+2", "+verilator+seed+7")


class RecordingBackend(Backend):
    """Forwards to ``inner`` and records ``("write", addr, words)``,
    ``("read", addr, words_returned)`` and ``("run", max_cycles, cycles)``."""

    def __init__(self, inner: Backend):
        super().__init__(inner.config)
        self.inner = inner
        self.name = f"recording({inner.name})"
        self.ops: list[tuple] = []

    def write(self, addr: int, words: Sequence[int]) -> None:
        words = [int(w) & 0xFFFFFFFF for w in words]
        self.inner.write(addr, words)
        self.ops.append(("write", addr, words))

    def read(self, addr: int, count: int) -> list[int]:
        got = self.inner.read(addr, count)
        self.ops.append(("read", addr, list(got)))
        return got

    def run_until_idle(self, max_cycles: int, start: int = 0) -> int:
        spent = self.inner.run_until_idle(max_cycles, start)
        self.ops.append(("run", max_cycles, spent, start))
        return spent

    def close(self) -> None:
        self.inner.close()


def ops_text(ops) -> str:
    lines = []
    for op in ops:
        if op[0] == "write":
            lines += [f"{OP_WRITE} {op[1] + i:x} {w:x}" for i, w in enumerate(op[2])]
        elif op[0] == "read":
            lines += [f"{OP_READ} {op[1] + i:x} 0" for i in range(len(op[2]))]
        elif op[0] == "run":
            lines.append(f"{OP_RUN} {ctrl_start(op[3] if len(op) > 3 else 0):x} {op[1]:x}")
        else:
            raise ValueError(f"op {op[0]!r} unknown; allowed write, read, run")
    return "\n".join(lines) + "\n"


def available_simulators() -> list[str]:
    """The SIMULATORS whose tools are on PATH."""
    have = []
    if shutil.which("iverilog") and shutil.which("vvp"):
        have += ["iverilog-2005", "iverilog-2012"]
    if shutil.which(os.environ.get("VERILATOR", "verilator")) and shutil.which("make"):
        have.append("verilator")
    return have


def _run(cmd, cwd, timeout, what):
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        raise FettaError(f"{what} failed (exit {proc.returncode}): "
                         f"{detail[-1] if detail else 'no output'}")
    return proc


def _verilator_binary(design: str, tb: str, timeout: float) -> Path:
    from .compiled.build_cache import cache_root
    verilator = os.environ.get("VERILATOR", "verilator")
    version = _run([verilator, "--version"], None, 60, "verilator --version").stdout
    key = hashlib.sha256("\0".join([design, tb, version, *VERILATOR_FLAGS,
                                    *VERILATOR_MAKE]).encode()).hexdigest()[:24]
    root = cache_root() / "replay" / key
    binary = root / "obj_dir" / "Vfetta_replay_tb"
    if binary.exists():
        return binary
    tmp = Path(tempfile.mkdtemp(prefix="build-", dir=_mkdir(root.parent)))
    (tmp / "dut.v").write_text(design)
    (tmp / "tb.v").write_text(tb)
    _run([verilator, *VERILATOR_FLAGS, "tb.v", "dut.v",
          "-MAKEFLAGS", " ".join(VERILATOR_MAKE)], tmp, timeout, "verilator")
    try:
        os.replace(tmp, root)
    except OSError:          # built concurrently by another process: use that one
        shutil.rmtree(tmp, ignore_errors=True)
    return binary


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def run_replay(verilog: str, ops, simulator: str, *, top: str = "fetta_accel",
               keep_dir: str | Path | None = None, timeout: float = 900) -> dict:
    """Replay ``ops`` (``RecordingBackend.ops``) on ``verilog`` (top module ``top``) in
    ``simulator`` (a key of ``SIMULATORS``), from power-up. Returns
    ``{"reads": [(addr, value, rvalid), ...], "runs": [cycles, ...]}`` in op order."""
    if simulator not in SIMULATORS:
        raise ValueError(f"simulator {simulator!r} unknown; allowed "
                         f"{', '.join(SIMULATORS)}")
    tb = TESTBENCH.replace("TOP dut", f"{top} dut")
    with tempfile.TemporaryDirectory(prefix="fetta-replay-") as tmp:
        work = Path(keep_dir) if keep_dir is not None else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        (work / "ops.txt").write_text(ops_text(ops))
        if simulator.startswith("iverilog"):
            iverilog, vvp = require_iverilog()
            (work / "dut.v").write_text(verilog)
            (work / "tb.v").write_text(tb)
            std = "-g" + simulator.split("-")[1]
            _run([iverilog, std, "-o", "sim.vvp", "-s", "fetta_replay_tb", "tb.v", "dut.v"],
                 work, timeout, f"iverilog {std}")
            _run([vvp, "-n", "sim.vvp"], work, timeout, "vvp")
        else:
            binary = _verilator_binary(verilog, tb, timeout)
            _run([str(binary), *VERILATOR_RUN], work, timeout, "verilated testbench")
        lines = (work / "results.txt").read_text().split("\n")
    reads, runs = [], []
    for line in lines:
        f = line.split()
        if not f:
            continue
        if f[0] == "R":
            bad = [x for x in f[1:] if any(c not in "0123456789abcdefABCDEF" for c in x)]
            reads.append((int(f[1], 16), None if bad else int(f[2], 16),
                          None if bad else int(f[3], 16)))
        else:
            runs.append(int(f[1]))
    return {"reads": reads, "runs": runs}


def compare_replay(ops, got: dict, simulator: str) -> list[str]:
    """Mismatches between the recorded reads (the reference backend's) and a replay's,
    one line each: op index, address, simulator value, reference value. Empty if equal."""
    expected = [(op[1] + i, w, n) for n, op in enumerate(ops) if op[0] == "read"
                for i, w in enumerate(op[2])]
    problems = []
    if len(got["reads"]) != len(expected):
        problems.append(f"{simulator}: {len(got['reads'])} reads completed, "
                        f"{len(expected)} recorded")
    for (addr, want, n), (gaddr, value, rvalid) in zip(expected, got["reads"]):
        if value is None or not rvalid or value != want:
            shown = "X" if value is None else f"0x{value:08x}"
            problems.append(f"{simulator}: op {n} read of 0x{addr:06x} gave {shown}"
                            f"{'' if rvalid else ' without rvalid'}, reference "
                            f"0x{want:08x}")
    return problems
