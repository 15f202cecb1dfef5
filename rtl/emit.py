"""Verilog emission that every simulator evaluates the same way from power-up.

``emit_verilog(component, name)`` is ``amaranth.back.verilog.convert`` (yosys
``write_verilog``) followed by one fix, ``evaluate_at_time_zero``. Every Verilog file the
project writes for another tool goes through it (``fetta verilog``, the Icarus vector
runner, the Verilator backend, the replay and cocotb testbenches).

The problem it fixes. Yosys writes combinational logic as ``always @*`` blocks; an
``always @*`` block runs only when one of its inputs changes, so at power-up (no reset
asserted, every register at its initializer) a block whose inputs do not change before
they are used keeps its outputs at X. To make every block run once, yosys declares a
dummy register with an initializer (``reg \\$auto$...dump_module$N = 0;``) and reads it in
every block (``if (\\$auto$...) begin end``), relying on the initializer being a time-0
change event. It is one in Verilog-2005 (Icarus ``-g2005``), but not in SystemVerilog:
IEEE 1800 applies variable initializers before time 0 without an event, so under Icarus
``-g2012`` (cocotb's default) those blocks never ran, and the first CONTRACT after
power-up lost its first delta-table write and produced wrong results
(``tests/sim/test_power_up.py`` shows it on the raw yosys output).

The fix: the dummy register is declared without initializer (X) and set by an
``initial`` statement placed after every ``always`` block of its module. An ``initial``
assignment is a procedural update, an event in every Verilog and SystemVerilog mode, so
each ``always @*`` that reads the register re-evaluates at time 0. The register is read
nowhere else, so no logic changes (synthesis removes it; yosys reads ``initial`` as the
init value, as before). Verilator evaluates all combinational logic at start either way.
"""

from __future__ import annotations

import re

from fetta.errors import FettaError

__all__ = ["emit_verilog", "evaluate_at_time_zero"]

_DUMP_DECL = re.compile(r"^(\s*)reg (\\\S*dump_module\$\d+)\s*=\s*0;\s*$")


def evaluate_at_time_zero(text: str) -> str:
    """Rewrite yosys ``write_verilog`` output so every ``always @*`` block is evaluated
    at time 0 in Verilog-2005 and SystemVerilog simulators alike (module docstring).

    Each module's ``reg <dump_module> = 0;`` becomes ``reg <dump_module>;`` and
    ``initial <dump_module> = 1'b0;`` is added just before that module's ``endmodule``.
    Text without such registers (no ``always @*`` blocks) is returned unchanged."""
    out: list[str] = []
    pending: str | None = None
    for line in text.split("\n"):
        m = _DUMP_DECL.match(line)
        if m:
            if pending is not None:
                raise FettaError(f"two time-0 registers in one module ({pending}, "
                                 f"{m.group(2)}); expected one per module")
            pending = m.group(2)
            out.append(f"{m.group(1)}reg {pending} ;")
            continue
        if line.startswith("endmodule") and pending is not None:
            out.append("  // evaluate every always @* block once at time 0 in every "
                       "simulator mode")
            out.append(f"  initial {pending} = 1'b0;")
            pending = None
        out.append(line)
    if pending is not None:
        raise FettaError(f"time-0 register {pending} outside any module")
    return "\n".join(out)


def emit_verilog(component, name: str = "top", **kwargs) -> str:
    """Verilog of ``component`` (top module ``name``) that evaluates identically from
    power-up in Icarus (``-g2005``/``-g2012``) and Verilator. ``kwargs`` go to
    ``amaranth.back.verilog.convert`` (default ``emit_src=False``)."""
    from amaranth.back import verilog
    kwargs.setdefault("emit_src", False)
    return evaluate_at_time_zero(verilog.convert(component, name=name, **kwargs))
