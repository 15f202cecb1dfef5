"""A test bench for the UART bridge's frame layer that runs on every simulator: a
``FrameBridge`` on a ``BusMemory``, fed bytes by a small script player, behind a host
bus (``sw_model/accel/hostmap.py``), so the compiled backends (CXXRTL, Verilator:
``CxxrtlBackend(config, top_factory=...)``) and pysim (``PysimBus`` below) run the
same design, and a whole exchange (bytes in, the bridge's answer out) is clocked by
the simulator with no per-cycle host code.

``BridgeBench(max_burst, timeout, target_depth)``: the bridge under test is
``FrameBridge(max_burst=, timeout=)`` mastering ``BusMemory(target_depth)`` (power-on
zeros). Both are clocked only while a script runs (``EnableInserter``): host-bus
cycles spent loading a script or reading results are invisible to them, so the
bridge sees exactly the cycles of the script, as a byte-level testbench would drive it.

Script (program memory, ``PROG_BASE + i``, ``SCRIPT_DEPTH`` 32-bit entries; see
``script_entry``): entry ``i`` lasts ``cycles`` clock cycles; in its first cycle
``rx_valid`` is ``strobe`` and ``rx_data`` is ``byte``; the entry with ``last`` set
ends the run. ``Ctrl.START`` (``REG_BASE + Reg.CTRL``, ignored while running) plays
the script from entry 0; ``busy`` is high while it plays.

Observed: ``tx.ready`` is high while the script plays; every byte the bridge sends
then is stored in the TX log (``BUF_BASE + j``, ``LOG_DEPTH`` bytes, bus read only)
and counted. Registers (``REG_BASE + BenchReg.X``, read): ``TX_COUNT`` (bytes sent
during the last run; the log keeps the first ``LOG_DEPTH``), ``WRITES`` (bus write
strobes the bridge has issued since power-on), ``PLAYED`` (clock cycles the last run
took: the sum of its entries' ``cycles``).

Latency: ``rvalid`` exactly ``READ_LATENCY`` (2) cycles after ``read``; one strobe per
cycle; host writes to the script while it plays are dropped.

Members: ``bus: In(HostBusSignature())``, ``busy: Out(1)``.
"""

import enum

from amaranth import Module, Mux, Signal
from amaranth.hdl import EnableInserter
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from fetta.boards.bridge import FrameBridge
from fetta.errors import RunTimeout
from fetta.boards.top import BusMemory
from fetta.rtl.host_bus import HostBusSignature
from fetta.sw_model.accel.hostmap import (BUF_BASE, PROG_BASE, READ_LATENCY, REG_BASE,
                                         Ctrl, Reg, ctrl_start)

__all__ = ["BridgeBench", "BenchReg", "PysimBus", "script_entry", "exchange",
           "SCRIPT_DEPTH", "LOG_DEPTH"]

SCRIPT_DEPTH = 64
LOG_DEPTH = 64


class BenchReg(enum.IntEnum):
    CTRL = Reg.CTRL       # write: Ctrl.START plays the script
    TX_COUNT = 2          # read: bytes the bridge sent during the last run
    WRITES = 3            # read: bus write strobes of the bridge since power-on
    PLAYED = 4            # read: cycles the last run played (the script's length)


def script_entry(cycles: int, byte: int | None = None, last: bool = False) -> int:
    """One script word: ``cycles`` (1..65536) clock cycles, the first with
    ``rx_valid`` high and ``rx_data = byte`` unless ``byte`` is None; ``last`` ends
    the run after it."""
    if not 1 <= cycles <= 1 << 16:
        raise ValueError(f"script entry of {cycles} cycles; allowed 1..65536")
    strobe = byte is not None
    return ((byte or 0) & 0xFF) | strobe << 8 | int(last) << 9 | (cycles - 1) << 16


def exchange(be, data: bytes, gap: int, idle: int) -> bytes:
    """On a ``BridgeBench`` behind ``be`` (a ``Backend`` or ``PysimBus``): send
    ``data``, one byte every ``gap`` cycles, then ``idle`` (>= 1) cycles; the bytes the
    bridge sent meanwhile."""
    script = [script_entry(gap, b) for b in data] + [script_entry(idle, last=True)]
    if len(script) > SCRIPT_DEPTH:
        raise ValueError(f"{len(data)} bytes; the script holds {SCRIPT_DEPTH - 1}")
    be.write(PROG_BASE, script)
    cycles = gap * len(data) + idle
    be.run_until_idle(cycles + 64)              # RunTimeout if the script never ends
    n, _, played = be.read(REG_BASE + BenchReg.TX_COUNT, 3)
    assert played == cycles, f"the script played {played} cycles, not {cycles}"
    assert n <= LOG_DEPTH, f"the bridge sent {n} bytes in one exchange"
    return bytes(be.read(BUF_BASE, n)) if n else b""


class BridgeBench(wiring.Component):
    """See the module docstring."""

    bus: In(HostBusSignature())
    busy: Out(1)

    def __init__(self, *, max_burst: int = 4, timeout: int = 40, target_depth: int = 64):
        self.bridge = FrameBridge(max_burst=max_burst, timeout=timeout)
        self.target = BusMemory(target_depth)
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        bus = self.bus
        running = Signal()
        br, tgt = self.bridge, self.target
        m.submodules.bridge = EnableInserter(running)(br)
        m.submodules.target = EnableInserter(running)(tgt)
        wiring.connect(m, br.bus, tgt.bus)
        m.d.comb += self.busy.eq(running)

        # address decode: registers, the script (program region), the TX log (buffer A)
        is_reg = bus.addr[8:] == REG_BASE >> 8
        is_prog = bus.addr[16:] == PROG_BASE >> 16
        is_log = bus.addr[20:] == BUF_BASE >> 20

        # the script player
        m.submodules.prog = prog = Memory(shape=32, depth=SCRIPT_DEPTH, init=[])
        pw = prog.write_port()
        m.d.comb += [pw.addr.eq(bus.addr), pw.data.eq(bus.wdata),
                     pw.en.eq(bus.write & is_prog & ~running)]
        entry = prog.read_port(domain="comb")
        idx = Signal(range(SCRIPT_DEPTH))
        cnt = Signal(16)
        m.d.comb += [entry.addr.eq(idx), br.rx_data.eq(entry.data[0:8]),
                     br.rx_valid.eq(running & entry.data[8] & (cnt == 0))]
        with m.If(running):
            with m.If(cnt == entry.data[16:32]):
                m.d.sync += [cnt.eq(0), idx.eq(idx + 1)]
                with m.If(entry.data[9]):
                    m.d.sync += running.eq(0)
            with m.Else():
                m.d.sync += cnt.eq(cnt + 1)

        # the observers: TX log and count, bus write strobes
        tx_count = Signal(16)
        writes = Signal(32)
        played = Signal(32)
        with m.If(running):
            m.d.sync += played.eq(played + 1)
        m.submodules.tx_log = log = Memory(shape=8, depth=LOG_DEPTH, init=[])
        lw = log.write_port()
        took = running & br.tx.valid
        m.d.comb += [br.tx.ready.eq(running), lw.addr.eq(tx_count), lw.data.eq(br.tx.payload),
                     lw.en.eq(took & (tx_count < LOG_DEPTH))]
        with m.If(took):
            m.d.sync += tx_count.eq(tx_count + 1)
        with m.If(running & br.bus.write):
            m.d.sync += writes.eq(writes + 1)

        with m.If(bus.write & is_reg & (bus.addr[:8] == BenchReg.CTRL) &
                  bus.wdata[0] & ~running):
            m.d.sync += [running.eq(1), idx.eq(0), cnt.eq(0), tx_count.eq(0), played.eq(0)]
        assert Ctrl.START == 1

        # host reads: stage 1 reads the log and the registers, stage 2 muxes
        lr = log.read_port()
        m.d.comb += [lr.addr.eq(bus.addr), lr.en.eq(bus.read)]
        reg_val = Signal(32)
        with m.Switch(bus.addr[:8]):
            with m.Case(BenchReg.TX_COUNT):
                m.d.comb += reg_val.eq(tx_count)
            with m.Case(BenchReg.WRITES):
                m.d.comb += reg_val.eq(writes)
            with m.Case(BenchReg.PLAYED):
                m.d.comb += reg_val.eq(played)
        reg_q = Signal(32)
        sel = Signal(2)            # 0 zero, 1 register, 2 log
        read_q = Signal()
        m.d.sync += [read_q.eq(bus.read), reg_q.eq(reg_val),
                     sel.eq(Mux(is_reg, 1, Mux(is_log & (bus.addr[:20] < LOG_DEPTH), 2, 0)))]
        rdata = Mux(sel == 1, reg_q, Mux(sel == 2, lr.data, 0))
        m.d.sync += [bus.rvalid.eq(read_q), bus.rdata.eq(rdata)]
        assert READ_LATENCY == 2
        return m


class PysimBus:
    """A host-bus top in ``amaranth.sim`` with the bus calls of ``Backend``:
    ``write(addr, words)``, ``read(addr, count)``, ``run_until_idle(max_cycles)``
    (``Ctrl.START``, then clock until ``busy`` drops; ``RunTimeout`` after
    ``max_cycles``). One persistent simulation, advanced only inside these calls."""

    name = "pysim"

    def __init__(self, top):
        self.top = top
        self.sim = Simulator(top)
        self.sim.add_clock(1e-6)
        self._cmd, self._result = None, None
        self.sim.add_testbench(self._server, background=True)

    async def _server(self, ctx):
        bus = self.top.bus
        while True:
            if self._cmd is None:
                await ctx.tick()
                continue
            op, args = self._cmd
            if op == "write":
                addr, words = args
                ctx.set(bus.write, 1)
                for i, w in enumerate(words):
                    ctx.set(bus.addr, addr + i)
                    ctx.set(bus.wdata, w)
                    await ctx.tick()
                ctx.set(bus.write, 0)
                result = None
            elif op == "read":
                addr, count = args
                result = []
                for i in range(count + READ_LATENCY):
                    ctx.set(bus.read, i < count)
                    ctx.set(bus.addr, addr + min(i, count - 1))
                    await ctx.tick()
                    if ctx.get(bus.rvalid):
                        result.append(ctx.get(bus.rdata))
                ctx.set(bus.read, 0)
            else:                                       # run
                max_cycles, start = args
                ctx.set(bus.addr, REG_BASE + Reg.CTRL)
                ctx.set(bus.wdata, ctrl_start(start))
                ctx.set(bus.write, 1)
                await ctx.tick()
                ctx.set(bus.write, 0)
                result = 0             # clocked in chunks: past the end nothing changes
                while ctx.get(self.top.busy) and result <= max_cycles:
                    await ctx.tick().repeat(16)
                    result += 16
                result = -1 if ctx.get(self.top.busy) else result
            self._cmd, self._result = None, (result,)

    def _call(self, op, *args):
        self._cmd, self._result = (op, args), None
        while self._result is None:
            self.sim.advance()
        return self._result[0]

    def write(self, addr: int, words) -> None:
        self._call("write", addr, [int(w) & 0xFFFFFFFF for w in words])

    def read(self, addr: int, count: int) -> list[int]:
        return self._call("read", addr, count)

    def run_until_idle(self, max_cycles: int, start: int = 0) -> int:
        spent = self._call("run", max_cycles, start)
        if spent < 0:
            raise RunTimeout(f"pysim: still busy after {max_cycles} cycles")
        return spent

    def close(self) -> None:
        pass
