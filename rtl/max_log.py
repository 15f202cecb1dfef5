"""The max log: the largest |result word| of each CONTRACT and VEC of a program, so the
host can run every contraction's adaptive-shift vote without reading its result."""

from amaranth import *
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from fetta.sw_model.accel.hostmap import BUFFER_WORD_BITS, MAXLOG_DEPTH

__all__ = ["MaxLog", "COUNT_BITS"]

COUNT_BITS = 8        # MAXLOG_COUNT saturates at 255


class MaxLog(wiring.Component):
    """Computes, per logged instruction ``k`` of a program (CONTRACT and VEC, in order),
    ``log[k] = max |word|`` over the result words it wrote::

        running = max(running, mag)    every cycle with ``valid``
        close:  log[count] = max(running, mag if valid), count += 1, running = 0

    ``mag`` is one magnitude per cycle (the lane maximum of a C row write, or a VEC's
    written word), ``close`` the end of the instruction (the top delays the
    controller's strobe by the magnitudes' latency, so every word the instruction wrote
    is in). Entries ``k >= depth`` are not kept; ``count`` goes on to 255 so the host
    sees how many there were. ``clear`` (a program's START) zeroes everything.

    Latency: ``log`` and ``count`` are registered at the ``close`` edge.

    Members:
        clear, close:   START; end of a logged instruction.
        valid, mag:     a magnitude this cycle (unsigned, ``BUFFER_WORD_BITS`` wide).
        log[depth]:     the entries; ``count``: entries closed since START.
        closing:        the value an entry closed this cycle takes (combinational;
                        the shift slots' vote input, ``rtl/shift_slots.py``).
    """

    def __init__(self, depth: int = MAXLOG_DEPTH):
        self.depth = depth
        W = BUFFER_WORD_BITS
        super().__init__({"clear": In(1), "close": In(1), "valid": In(1), "mag": In(W),
                          "log": Out(W).array(depth), "count": Out(COUNT_BITS),
                          "closing": Out(W)})

    def elaborate(self, platform):
        m = Module()
        running = Signal(BUFFER_WORD_BITS)
        now = Mux(self.valid & (self.mag > running), self.mag, running)
        m.d.comb += self.closing.eq(now)
        with m.If(self.clear):
            m.d.sync += [running.eq(0), self.count.eq(0)]
            m.d.sync += [e.eq(0) for e in self.log]
        with m.Elif(self.close):
            for k, e in enumerate(self.log):
                with m.If(self.count == k):
                    m.d.sync += e.eq(now)
            m.d.sync += running.eq(0)
            with m.If(self.count != (1 << COUNT_BITS) - 1):
                m.d.sync += self.count.eq(self.count + 1)
        with m.Else():
            m.d.sync += running.eq(now)
        return m
