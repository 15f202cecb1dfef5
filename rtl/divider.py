"""A sequential unsigned divider: one quotient bit per cycle (restoring division)."""

from amaranth import *
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["SeqDivider"]


class SeqDivider(wiring.Component):
    """``q = a // d`` and ``r = a % d`` for unsigned ``a`` (``n_bits``) and ``d``
    (``d_bits``, ``d >= 1``; the caller never divides by 0).

    ``start`` (one cycle) loads ``a`` and ``d``; the quotient is found from its top bit
    down, one bit per cycle in the ``n_bits`` cycles after ``start``, and ``done``
    pulses in the next, ``LATENCY(n_bits) = n_bits + 1`` cycles after ``start``'s, when
    ``q`` and ``r`` are valid; they hold until the next ``start``. ``busy`` while
    the bits are found.

    Members: ``start``, ``a``, ``d``, ``busy``, ``done``, ``q``, ``r``.
    """

    @staticmethod
    def LATENCY(n_bits: int) -> int:
        return n_bits + 1

    def __init__(self, n_bits: int, d_bits: int):
        self.n_bits, self.d_bits = n_bits, d_bits
        super().__init__({"start": In(1), "a": In(n_bits), "d": In(d_bits),
                          "busy": Out(1), "done": Out(1), "q": Out(n_bits),
                          "r": Out(d_bits)})

    def elaborate(self, platform):
        m = Module()
        N, M = self.n_bits, self.d_bits
        rem = Signal(M + 1)
        quo = Signal(N)
        dd = Signal(M)
        cnt = Signal(range(N + 1))
        shifted = Signal(M + 1)
        m.d.comb += [shifted.eq(Cat(quo[N - 1], rem[:M])), self.q.eq(quo),
                     self.r.eq(rem[:M])]
        ge = shifted >= dd
        m.d.sync += self.done.eq(0)
        with m.If(self.start):
            m.d.sync += [rem.eq(0), quo.eq(self.a), dd.eq(self.d), cnt.eq(N),
                         self.busy.eq(1)]
        with m.Elif(self.busy):
            m.d.sync += [rem.eq(Mux(ge, shifted - dd, shifted)),
                         quo.eq(Cat(ge, quo[:N - 1])), cnt.eq(cnt - 1)]
            with m.If(cnt == 1):
                m.d.sync += [self.busy.eq(0), self.done.eq(1)]
        return m
