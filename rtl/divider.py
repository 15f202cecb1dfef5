"""A sequential unsigned divider: ``per_cycle`` quotient bits per cycle (restoring
division, ``per_cycle`` conditional subtractions chained in each cycle)."""

from amaranth import *
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["SeqDivider"]


class SeqDivider(wiring.Component):
    """``q = a // d`` and ``r = a % d`` for unsigned ``a`` (``n_bits``) and ``d``
    (``d_bits``, ``d >= 1``; the caller never divides by 0); with a partial remainder
    ``r0 < d`` (default 0) the dividend is ``r0 * 2**n_bits + a`` (the low ``n_bits``
    quotient bits of a longer division whose high part is already known; only when
    ``n_bits`` is a multiple of ``per_cycle``, so that no leading zero is shifted in
    after ``r0``).

    ``start`` (one cycle) loads ``a``, ``r0`` and ``d``; the quotient is found from its top bit
    down, ``per_cycle`` bits per cycle (``a`` is widened with leading zeros to a
    multiple of ``per_cycle`` bits) in the ``ceil(n_bits / per_cycle)`` cycles after
    ``start``, and ``done`` pulses in the next, ``LATENCY(n_bits, per_cycle) =
    ceil(n_bits / per_cycle) + 1`` cycles after ``start``'s, when ``q`` and ``r`` are
    valid; they hold until the next ``start``. ``busy`` while the bits are found.

    Members: ``start``, ``a``, ``r0``, ``d``, ``busy``, ``done``, ``q``, ``r``.
    """

    @staticmethod
    def LATENCY(n_bits: int, per_cycle: int = 1) -> int:
        return -(-n_bits // per_cycle) + 1

    def __init__(self, n_bits: int, d_bits: int, per_cycle: int = 1):
        if per_cycle < 1:
            raise ValueError(f"per_cycle={per_cycle}; allowed >= 1")
        self.n_bits, self.d_bits, self.per_cycle = n_bits, d_bits, per_cycle
        super().__init__({"start": In(1), "a": In(n_bits), "r0": In(d_bits),
                          "d": In(d_bits),
                          "busy": Out(1), "done": Out(1), "q": Out(n_bits),
                          "r": Out(d_bits)})

    def elaborate(self, platform):
        m = Module()
        K = self.per_cycle
        cycles = -(-self.n_bits // K)
        N, M = cycles * K, self.d_bits          # the dividend widened to K-bit digits
        rem = Signal(M + 1)
        quo = Signal(N)
        dd = Signal(M)
        cnt = Signal(range(cycles + 1))
        m.d.comb += [self.q.eq(quo[:self.n_bits]), self.r.eq(rem[:M])]
        # K restoring steps in one cycle: each shifts the next dividend bit into the
        # remainder and subtracts the divisor when it fits (one quotient bit)
        r, q = rem, quo
        for i in range(K):
            shifted = Signal(M + 1, name=f"shifted{i}")
            m.d.comb += shifted.eq(Cat(q[N - 1], r[:M]))
            ge = shifted >= dd
            r_next = Signal(M + 1, name=f"rem{i}")
            q_next = Signal(N, name=f"quo{i}")
            m.d.comb += [r_next.eq(Mux(ge, shifted - dd, shifted)),
                         q_next.eq(Cat(ge, q[:N - 1]))]
            r, q = r_next, q_next
        m.d.sync += self.done.eq(0)
        with m.If(self.start):
            m.d.sync += [rem.eq(self.r0), quo.eq(self.a), dd.eq(self.d), cnt.eq(cycles),
                         self.busy.eq(1)]
        with m.Elif(self.busy):
            m.d.sync += [rem.eq(r), quo.eq(q), cnt.eq(cnt - 1)]
            with m.If(cnt == 1):
                m.d.sync += [self.busy.eq(0), self.done.eq(1)]
        return m
