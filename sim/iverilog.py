"""Run an Amaranth component's emitted Verilog in Icarus Verilog, one input vector per
clock cycle (rung 5 of the verification ladder: a third-party simulator).

``run_iverilog(component, inputs)`` emits the component with
``rtl.emit.emit_verilog`` (every ``always @*`` evaluated at time 0), writes a
generated testbench that ``$readmemh``-s the per-cycle input vectors, applies vector
``i``, lets the logic settle, samples every output, then gives one rising clock edge; it runs the testbench with ``iverilog -g2012``
and ``vvp`` in a temporary directory and returns the sampled outputs as Python ints
(signed ports decoded as two's complement).

Cycle ``i`` of the result is what an Amaranth testbench sees with::

    ctx.set(inputs, vector[i]); outputs[i] = ctx.get(outputs); await ctx.tick()

so registered outputs show the state after ``i`` clock edges and combinational outputs
the response to vector ``i``. Reset is never asserted: registers start from their
``init`` values, which Amaranth writes into the Verilog as initializers. Components
without a clock domain are driven the same way (the clock is simply not connected).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from amaranth.lib import wiring

from fetta.errors import FettaError
from fetta.rtl.emit import emit_verilog

__all__ = ["run_iverilog", "component_ports", "to_signed", "require_iverilog"]

TOP = "dut_top"


def to_signed(value: int, width: int) -> int:
    """Interpret the low ``width`` bits of ``value`` as two's complement."""
    value &= (1 << width) - 1
    return value - (1 << width) if width and value >> (width - 1) else value


def require_iverilog() -> tuple[str, str]:
    """Paths of ``iverilog`` and ``vvp``, or a one-line FettaError saying what is missing."""
    tools = []
    for tool in ("iverilog", "vvp"):
        path = shutil.which(tool)
        if path is None:
            raise FettaError(f"{tool} not found on PATH; install Icarus Verilog "
                             f"(Debian/Ubuntu: apt-get install iverilog)")
        tools.append(path)
    return tools[0], tools[1]


def component_ports(component: wiring.Component) -> dict[str, tuple[str, int, bool]]:
    """``{verilog_name: (direction, width, signed)}`` of a component's signature members
    (nested members joined with ``__``, as Amaranth names them in Verilog)."""
    ports = {}
    for path, member, value in component.signature.flatten(component):
        name = "__".join(str(p) for p in path)
        shape = value.shape()
        direction = "input" if member.flow == wiring.In else "output"
        ports[name] = (direction, shape.width, shape.signed)
    return ports


def _verilog_ports(text: str) -> dict[str, tuple[str, int]]:
    found = {}
    for direction, msb, name in re.findall(
            r"^\s*(input|output)\s+(?:\[(\d+):0\]\s+)?([A-Za-z_][\w$]*)\s*;", text, re.M):
        found[name] = (direction, int(msb) + 1 if msb else 1)
    return found


def _testbench(ins, outs, n_cycles, clocked, in_width):
    lines = ["`timescale 1ns/1ps", "module tb;"]
    lines.append(f"  reg [{in_width - 1}:0] vectors [0:{n_cycles - 1}];")
    lines.append("  reg clk = 1'b0;")
    lines.append("  reg rst = 1'b0;")
    for name, width in ins:
        lines.append(f"  reg [{width - 1}:0] in_{name};")
    for name, width in outs:
        lines.append(f"  wire [{width - 1}:0] out_{name};")
    conns = [f".{n}(in_{n})" for n, _ in ins] + [f".{n}(out_{n})" for n, _ in outs]
    if clocked:
        conns = [".clk(clk)", ".rst(rst)"] + conns
    lines.append(f"  {TOP} dut ({', '.join(conns)});")
    fmt = " ".join("%h" for _ in outs)
    args = ", ".join(f"out_{n}" for n, _ in outs)
    lines += [
        "  integer i, fd;",
        "  initial begin",
        '    $readmemh("inputs.hex", vectors);',
        '    fd = $fopen("outputs.txt", "w");',
        "    #2;",
        f"    for (i = 0; i < {n_cycles}; i = i + 1) begin",
        f"      {{{', '.join(f'in_{n}' for n, _ in ins)}}} = vectors[i];",
        "      #1;",
        f'      $fwrite(fd, "{fmt}\\n", {args});',
        "      #4 clk = 1'b1;",
        "      #5 clk = 1'b0;",
        "    end",
        "    $fclose(fd);",
        "    $finish;",
        "  end",
        "endmodule",
    ]
    return "\n".join(lines) + "\n"


def run_iverilog(component: wiring.Component, inputs: Mapping[str, Sequence[int]],
                 outputs: Sequence[str] | None = None, *, keep_dir: str | Path | None = None,
                 timeout: float = 600) -> dict[str, list[int]]:
    """Simulate ``component`` in Icarus Verilog for ``len(inputs[...])`` cycles.

    Args:
        component: a ``wiring.Component`` (its signature gives the ports).
        inputs:    ``{port: per-cycle values}``, all the same length; every input port
                   must be given. Negative values are allowed for any port (two's
                   complement, masked to the port width).
        outputs:   output ports to sample (default: all).
        keep_dir:  build there instead of a temporary directory, and keep the files.
        timeout:   seconds for each tool run.

    Returns:
        ``{port: per-cycle values}``; signed ports decoded as two's complement.
    """
    iverilog, vvp = require_iverilog()
    ports = component_ports(component)
    in_names = [n for n, (d, _, _) in ports.items() if d == "input"]
    missing = sorted(set(in_names) - set(inputs))
    unknown = sorted(set(inputs) - set(in_names))
    if missing or unknown:
        raise ValueError(f"inputs must cover exactly the input ports {in_names}; "
                         f"missing {missing}, unknown {unknown}")
    out_names = list(outputs) if outputs is not None else \
        [n for n, (d, _, _) in ports.items() if d == "output"]
    bad = [n for n in out_names if ports.get(n, ("input",))[0] != "output"]
    if bad or not out_names:
        raise ValueError(f"outputs {bad or out_names} invalid; allowed a non-empty "
                         f"subset of the output ports "
                         f"{[n for n, (d, _, _) in ports.items() if d == 'output']}")
    lengths = {len(v) for v in inputs.values()}
    if len(lengths) != 1:
        raise ValueError(f"input vectors have different lengths {sorted(lengths)}; "
                         f"allowed one length for all ports")
    n_cycles = lengths.pop()
    if n_cycles == 0:
        return {n: [] for n in out_names}

    text = emit_verilog(component, name=TOP)
    declared = _verilog_ports(text)
    for name in in_names + out_names:
        if declared.get(name, (None, None))[1] != ports[name][1]:
            raise FettaError(f"port {name} ({ports[name][1]} bits) not found as such in "
                             f"the emitted Verilog; found {declared.get(name)}")
    clocked = "clk" in declared and "clk" not in ports

    ins = [(n, ports[n][1]) for n in in_names]
    outs = [(n, ports[n][1]) for n in out_names]
    in_width = sum(w for _, w in ins)
    words = []
    for i in range(n_cycles):
        word = 0
        for name, width in ins:  # first port in the most significant bits
            word = (word << width) | (int(inputs[name][i]) & ((1 << width) - 1))
        words.append(f"{word:x}")

    with tempfile.TemporaryDirectory(prefix="fetta-iverilog-") as tmp:
        work = Path(keep_dir) if keep_dir is not None else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        (work / "dut.v").write_text(text)
        (work / "tb.v").write_text(_testbench(ins, outs, n_cycles, clocked, in_width))
        (work / "inputs.hex").write_text("\n".join(words) + "\n")
        for cmd in ([iverilog, "-g2012", "-o", "sim.vvp", "-s", "tb", "tb.v", "dut.v"],
                    [vvp, "-n", "sim.vvp"]):
            proc = subprocess.run(cmd, cwd=work, capture_output=True, text=True,
                                  timeout=timeout)
            if proc.returncode != 0:
                detail = (proc.stderr or proc.stdout).strip().splitlines()
                raise FettaError(f"{Path(cmd[0]).name} failed (exit {proc.returncode}): "
                                 f"{detail[0] if detail else 'no output'}")
        rows = (work / "outputs.txt").read_text().split("\n")[:n_cycles]

    if len(rows) != n_cycles:
        raise FettaError(f"iverilog wrote {len(rows)} output rows; expected {n_cycles}")
    result = {n: [] for n in out_names}
    for cycle, row in enumerate(rows):
        fields = row.split()
        for (name, width), field in zip(outs, fields, strict=True):
            if not re.fullmatch(r"[0-9a-fA-F]+", field):
                raise FettaError(f"output {name} is {field!r} (undefined) at cycle {cycle}")
            value = int(field, 16)
            result[name].append(to_signed(value, width) if ports[name][2] else value)
    return result
