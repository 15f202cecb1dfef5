"""Amaranth's Python simulator as a backend (the reference RTL simulation)."""

from __future__ import annotations

import contextlib
from typing import Sequence

from amaranth.sim import Simulator

from fetta.sw_model.accel.hostmap import (BUF_BASE, BUF_SPAN, PROG_BASE, READ_LATENCY, REG_BASE,
                              Reg, BUFFER_WORD_BITS, buffer_base, buffer_word, ctrl_start)

from fetta.api_checks import check_bus_read, check_bus_write
from fetta.sim.backends.base import Backend
from fetta.errors import RunTimeout

__all__ = ["PysimBackend", "VCD_SIGNALS"]

# Signals listed in the GTKWave save file (paths relative to the top).
VCD_SIGNALS = [
    "controller.fsm_state", "controller.pc", "controller.error",
    "controller.rd_en", "controller.a_addr", "controller.b_addr",
    "controller.fabric.in_valid", "controller.fabric.in_first", "controller.fabric.in_last",
    "controller.fabric.tile_addr", "controller.fabric.tile_idx",
    "controller.fabric.a_net_cfg", "controller.fabric.b_net_cfg", "controller.fabric.red_cfg",
    "controller.cnt_cycles", "controller.cnt_mac_active", "controller.cnt_stall_drain",
    "fabric.draining", "fabric.out_valid", "fabric.out_addr",
]


class PysimBackend(Backend):
    """Runs ``rtl.top.Accelerator`` in ``amaranth.sim``. One persistent simulation: a
    background testbench executes bus commands queued by the API calls, so buffers
    and counters persist between calls (session use). With ``vcd=path`` every cycle
    is recorded (and ``gtkw`` written next to it)."""

    name = "pysim"

    def __init__(self, config, *, vcd: str | None = None, gtkw: str | None = None,
                 bus_only: bool = False):
        super().__init__(config)
        self.bus_only = bus_only
        from fetta.rtl.top import Accelerator
        self.top = Accelerator(self.config)
        self.sim = Simulator(self.top)
        self.sim.add_clock(1e-8)
        self._cmds: list = []
        self._results: list = []
        self._started = False       # the command server is added on first use (a
                                    # backend never used leaves no unstarted coroutine)
        self._vcd_ctx = contextlib.ExitStack()
        if vcd:
            traces = self._traces()
            self._vcd_ctx.enter_context(self.sim.write_vcd(
                vcd, gtkw or (str(vcd).rsplit(".", 1)[0] + ".gtkw"), traces=traces))

    def _traces(self):
        top = self.top
        found = [top.bus.addr, top.bus.wdata, top.bus.write, top.bus.read, top.bus.rdata,
                 top.busy, top.done, top.error]
        ctl, fab = top.controller, top.fabric
        for path in VCD_SIGNALS:
            owner, *names = path.split(".")
            sig = {"controller": ctl, "fabric": fab}[owner]
            for name in names:
                sig = getattr(sig, name)
            if hasattr(sig, "shape"):
                found.append(sig)
        return found

    # -- the command server -------------------------------------------------------
    async def _server(self, ctx):
        bus = self.top.bus
        while True:
            if not self._cmds:
                await ctx.tick()
                continue
            op, args = self._cmds.pop(0)
            if op == "write":
                addr, words = args
                ctx.set(bus.write, 1)
                for i, w in enumerate(words):
                    ctx.set(bus.addr, addr + i)
                    ctx.set(bus.wdata, w)
                    await ctx.tick()
                ctx.set(bus.write, 0)
                self._results.append(None)
            elif op == "poke":
                mem_rows, = args
                for data, value in mem_rows:
                    ctx.set(data, value)
                self._results.append(None)
            elif op == "peek":
                cells, = args
                self._results.append([ctx.get(c) for c in cells])
            elif op == "read":
                addr, count = args
                out = []
                ctx.set(bus.read, 1)
                for i in range(count + READ_LATENCY):
                    if i < count:
                        ctx.set(bus.addr, addr + i)
                    elif i == count:
                        ctx.set(bus.read, 0)
                    await ctx.tick()
                    if ctx.get(bus.rvalid):
                        out.append(ctx.get(bus.rdata))
                ctx.set(bus.read, 0)
                self._results.append(out[:count])
            elif op == "run":
                max_cycles, start = args
                ctx.set(bus.addr, REG_BASE + Reg.CTRL)
                ctx.set(bus.wdata, ctrl_start(start))
                ctx.set(bus.write, 1)
                await ctx.tick()
                ctx.set(bus.write, 0)
                spent = 1
                while ctx.get(self.top.busy) and spent < max_cycles:
                    chunk = min(64, max_cycles - spent)
                    await ctx.tick().repeat(chunk)
                    spent += chunk
                self._results.append(spent if not ctx.get(self.top.busy) else -1)

    def _call(self, op, *args):
        if not self._started:
            self.sim.add_testbench(self._server, background=True)
            self._started = True
        self._cmds.append((op, args))
        n = len(self._results)
        while len(self._results) == n:
            self.sim.advance()
        return self._results.pop()

    # -- direct memory access (known idle only: Backend.direct_ok) ------------------
    def _memory_cells(self, addr: int, count: int):
        """(MemoryData row, width) for a run of buffer/program words, or None when the
        range is not entirely inside one memory region."""
        cfg = self.config
        if PROG_BASE <= addr and addr + count <= PROG_BASE + cfg.prog_depth:
            data = self.top.prog.data
            return [(data[addr - PROG_BASE + i], 32) for i in range(count)]
        if addr >= BUF_BASE:
            sel = (addr - BUF_BASE) // BUF_SPAN
            if sel > 2:
                return None
            buf = self.top.buffers["abc"[sel]]
            j0 = addr - buffer_base(sel)
            if j0 + count > buf.lanes * buf.depth:
                return None
            return [(buf.banks[(j0 + i) % buf.lanes].data[(j0 + i) // buf.lanes], 16)
                    for i in range(count)]
        return None

    # -- Backend API --------------------------------------------------------------
    def write(self, addr: int, words: Sequence[int]) -> None:
        """Bus writes; buffer and program words go straight into the memories when
        the accelerator is known idle (same effect as the bus path, ~50x faster in
        pysim) unless ``bus_only``; otherwise over the bus, where the busy rule of
        ``sw_model/accel/hostmap.py`` applies."""
        addr, words = check_bus_write(addr, words)
        if not len(words):
            return
        cells = None if self.bus_only or not self.direct_ok(addr) else \
            self._memory_cells(addr, len(words))
        if cells is not None:
            self._call("poke", [(cell, int(w) & ((1 << width) - 1))
                                for (cell, width), w in zip(cells, words)])
        else:
            self.note_write(addr, words)
            self._call("write", addr, [int(w) & 0xFFFFFFFF for w in words])

    def read(self, addr: int, count: int) -> list[int]:
        addr, count = check_bus_read(addr, count)
        if not count:
            return []
        cells = None if self.bus_only or not self.direct_ok(addr) else \
            self._memory_cells(addr, count)
        if cells is not None:
            vals = self._call("peek", [cell for cell, _ in cells])
            # buffer words read back sign-extended, as on the bus
            return [buffer_word(v) if width == BUFFER_WORD_BITS else v & 0xFFFFFFFF
                    for v, (_, width) in zip(vals, cells)]
        return self._call("read", addr, count)

    def run_until_idle(self, max_cycles: int, start: int = 0) -> int:
        spent = self._call("run", max_cycles, start)
        if spent < 0:
            self.known_idle = False
            raise RunTimeout(f"pysim: program still running after {max_cycles} cycles "
                             f"(limit); increase max_cycles or check the program")
        return spent

    def close(self) -> None:
        self._vcd_ctx.close()
