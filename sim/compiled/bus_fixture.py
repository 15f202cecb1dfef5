"""``BusFixture``: a small stand-in top with the accelerator's host-bus contract.

The backend tests and the benchmark use it to exercise the compiled-model machinery
(emission, driver, build cache, bus protocol) independently of the real array.
"""

from amaranth import *  # noqa: F403  (Module, Signal, Mux, Cat, C)
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from fetta.rtl.host_bus import HostBusSignature
from fetta.sw_model.accel.hostmap import (ADDR_BITS, BUFFER_WORD_BITS, BUF_BASE, BUF_SPAN, MAGIC, PROG_BASE,
                                          READ_LATENCY, Ctrl, ErrorCode, Reg)

__all__ = ["BusFixture"]


class BusFixture(wiring.Component):
    """A stand-in accelerator top with the real host-bus contract and a fake run.

    Registers (``sw_model/accel/hostmap.py``): ``ID`` reads ``MAGIC``; ``CTRL`` takes
    ``START``/``CLEAR``; ``STATUS`` is busy | done << 1 | error << 2 | code << 8;
    ``CYCLES``/``BUSY`` count cycles with ``busy`` high, ``INSTRUCTIONS`` counts
    starts, ``MAC_ACTIVE`` counts computed elements. Buffers A, B, C hold ``depth`` 16-bit
    words each (read sign-extended); program memory holds ``prog_depth`` 32-bit words.

    The run: program word 0 holds ``n``. After ``START``, ``busy`` is high for
    ``max(n, 1)`` cycles; in cycle ``i < n`` it writes
    ``C[i] = wrap16((A[i] * B[i]) >> 3) + i``. Buffer/program writes during a run are
    dropped and set error ``BUS_WHILE_BUSY``.

    Latency: ``rvalid`` is high exactly ``READ_LATENCY`` (2) cycles after ``read``.

    Members: ``bus: In(HostBusSignature())``, ``busy``, ``done``, ``error``: ``Out(1)``.
    """

    bus: In(HostBusSignature())
    busy: Out(1)
    done: Out(1)
    error: Out(1)

    def __init__(self, depth: int = 1024, prog_depth: int = 64):
        if depth < 2 or depth & (depth - 1) or depth > BUF_SPAN:
            raise ValueError(f"fixture depth={depth} invalid; allowed a power of two in "
                             f"2..{BUF_SPAN}")
        if prog_depth < 2 or prog_depth & (prog_depth - 1) or prog_depth > 0x10000:
            raise ValueError(f"fixture prog_depth={prog_depth} invalid; allowed a power "
                             f"of two in 2..65536")
        self.depth = depth
        self.prog_depth = prog_depth
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        bus = self.bus
        abits = (self.depth - 1).bit_length()
        pbits = (self.prog_depth - 1).bit_length()

        bufs = []
        for name in "abc":
            mem = Memory(shape=16, depth=self.depth, init=[])
            m.submodules[f"buf_{name}"] = mem
            bufs.append(mem)
        m.submodules.prog = prog = Memory(shape=32, depth=self.prog_depth, init=[])

        region = bus.addr[20:ADDR_BITS]            # 0: regs/prog, 1..3: buffers A..C
        offset = bus.addr[:20]
        is_reg = (region == 0) & (bus.addr[16:20] == 0)
        is_prog = (region == 0) & (bus.addr[16:20] == (PROG_BASE >> 16))
        assert BUF_BASE == 1 << 20 and BUF_SPAN == 1 << 20
        in_buf = offset < self.depth
        prog_offset = bus.addr[:16]
        in_prog = prog_offset < self.prog_depth

        busy = Signal()
        done = Signal()
        err_code = Signal(8)
        n = Signal(32)          # program word 0, latched at START
        idx = Signal(32)
        counters = {r: Signal(64, name=f"cnt_{r.name.lower()}")
                    for r in (Reg.CYCLES, Reg.BUSY, Reg.INSTRUCTIONS, Reg.MAC_ACTIVE)}
        m.d.comb += [self.busy.eq(busy), self.done.eq(done),
                     self.error.eq(err_code != 0)]

        # Host writes.
        host_wr = bus.write & ~busy
        for i, mem in enumerate(bufs[:2]):
            wp = mem.write_port()
            m.d.comb += [wp.addr.eq(offset), wp.data.eq(bus.wdata[:16]),
                         wp.en.eq(host_wr & (region == i + 1) & in_buf)]
        pw = prog.write_port()
        m.d.comb += [pw.addr.eq(prog_offset), pw.data.eq(bus.wdata),
                     pw.en.eq(host_wr & is_prog & in_prog)]
        with m.If(bus.write & busy & ~is_reg):
            m.d.sync += err_code.eq(ErrorCode.BUS_WHILE_BUSY)

        prog_n = prog.read_port(domain="comb")
        m.d.comb += prog_n.addr.eq(0)

        # The fake run: one element per cycle through comb read ports.
        ra = bufs[0].read_port(domain="comb")
        rb = bufs[1].read_port(domain="comb")
        cw = bufs[2].write_port()
        m.d.comb += [ra.addr.eq(idx), rb.addr.eq(idx)]
        prod = (ra.data.as_signed() * rb.data.as_signed()) >> 3
        with m.If(busy):
            m.d.comb += [cw.addr.eq(idx), cw.data.eq(prod[:16] + idx[:16]),
                         cw.en.eq(idx < n)]
        with m.Else():
            m.d.comb += [cw.addr.eq(offset), cw.data.eq(bus.wdata[:16]),
                         cw.en.eq(host_wr & (region == 3) & in_buf)]
        with m.If(busy):
            m.d.sync += [idx.eq(idx + 1), counters[Reg.CYCLES].eq(counters[Reg.CYCLES] + 1),
                         counters[Reg.BUSY].eq(counters[Reg.BUSY] + 1)]
            with m.If(idx < n):
                m.d.sync += counters[Reg.MAC_ACTIVE].eq(counters[Reg.MAC_ACTIVE] + 1)
            with m.If(idx + 1 >= n):
                m.d.sync += [busy.eq(0), done.eq(1)]

        with m.If(bus.write & is_reg & (offset == Reg.CTRL)):
            with m.If(bus.wdata[1]):                       # Ctrl.CLEAR
                m.d.sync += [done.eq(0), err_code.eq(0)]
                m.d.sync += [c.eq(0) for c in counters.values()]
            with m.If(bus.wdata[0] & ~busy):               # Ctrl.START
                m.d.sync += [busy.eq(1), done.eq(0), idx.eq(0), n.eq(prog_n.data),
                             counters[Reg.INSTRUCTIONS].eq(counters[Reg.INSTRUCTIONS] + 1)]
        assert Ctrl.START == 1 and Ctrl.CLEAR == 2

        # Host reads: stage 1 reads memories and the register file, stage 2 muxes.
        rports = [mem.read_port() for mem in bufs]
        prp = prog.read_port()
        for rp in rports:
            m.d.comb += [rp.addr.eq(offset), rp.en.eq(bus.read)]
        m.d.comb += [prp.addr.eq(prog_offset), prp.en.eq(bus.read)]
        status = Cat(busy, done, err_code != 0, C(0, 5), err_code)
        reg_val = Signal(32)
        with m.Switch(offset[:8]):
            with m.Case(Reg.ID):
                m.d.comb += reg_val.eq(MAGIC)
            with m.Case(Reg.STATUS):
                m.d.comb += reg_val.eq(status)
            for reg, cnt in counters.items():
                with m.Case(reg):
                    m.d.comb += reg_val.eq(cnt[:32])
                with m.Case(reg + 1):
                    m.d.comb += reg_val.eq(cnt[32:])
        sel = Signal(3)     # 0 zero, 1 reg, 2 prog, 3..5 buffers
        reg_q = Signal(32)
        read_q = Signal()
        m.d.sync += [read_q.eq(bus.read), reg_q.eq(reg_val)]
        m.d.sync += sel.eq(Mux(is_reg & (bus.addr[8:16] == 0), 1,
                           Mux(is_prog & in_prog, 2,
                           Mux((region >= 1) & (region <= 3) & in_buf, region + 2, 0))))
        rdata = Signal(32)
        with m.Switch(sel):
            with m.Case(1):
                m.d.comb += rdata.eq(reg_q)
            with m.Case(2):
                m.d.comb += rdata.eq(prp.data)
            for i, rp in enumerate(rports):
                with m.Case(3 + i):
                    m.d.comb += rdata.eq(rp.data.as_signed())
        m.d.sync += [bus.rvalid.eq(read_q), bus.rdata.eq(rdata)]
        assert READ_LATENCY == 2
        return m

    @staticmethod
    def expected(a, b, n):
        """What the fake run leaves in C[:n] (NumPy, int64 of the sign-extended word)."""
        import numpy as np

        from fetta.sw_model.arith.fixedpoint import wrap
        a = np.asarray(a, dtype=np.int64)[:n]
        b = np.asarray(b, dtype=np.int64)[:n]
        return wrap(((a * b) >> 3) + np.arange(n), BUFFER_WORD_BITS)
