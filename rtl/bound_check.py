"""Sequential range check of a strided loop nest (no multiplier)."""

from amaranth import *
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["BoundCheck"]


class BoundCheck(wiring.Component):
    """Checks that every address ``base + sum_t c_t * stride_t`` (``0 <= c_t < count_t``)
    of a loop nest lies in ``[0, limit)``, before the nest runs, so a bad instruction is
    rejected before it touches any buffer.

    Computes ``lo = base + sum_t min(0, (count_t - 1) * stride_t)`` and
    ``hi = base + sum_t max(0, (count_t - 1) * stride_t)`` with one shift-add
    multiplier stepped over the ``count_bits`` bits of each ``count_t - 1`` (no DSP:
    iCE40 has its 8 DSPs in the MACs), then ``ok = lo >= 0 and hi < limit``.

    Latency: ``done`` is high ``CYCLES = terms * (count_bits + 1) + 2`` cycles after
    ``start``
    (fixed, so the cycle model can count it).

    Members:
        start:            one-cycle strobe; inputs must be steady until ``done``.
        base, limit:      nest base address and buffer depth.
        count[t], stride[t]: loop counts (>= 1) and signed strides.
        done, ok:         result strobe and verdict (``ok`` holds until next start).
    """

    def __init__(self, terms: int, count_bits: int, stride_bits: int = 16,
                 addr_bits: int = 16):
        self.terms, self.count_bits, self.stride_bits = terms, count_bits, stride_bits
        self.CYCLES = self.cycles(terms, count_bits)
        self.sum_bits = stride_bits + count_bits + (terms - 1).bit_length() + 2
        super().__init__({
            "start": In(1),
            "base": In(addr_bits), "limit": In(addr_bits + 1),
            "count": In(16).array(terms),
            "stride": In(signed(stride_bits)).array(terms),
            "done": Out(1), "ok": Out(1),
        })

    @staticmethod
    def cycles(terms: int, count_bits: int) -> int:
        """Cycles from ``start`` to ``done``."""
        return terms * (count_bits + 1) + 2

    def elaborate(self, platform):
        m = Module()
        W = self.sum_bits
        term = Signal(range(self.terms + 1))
        bit = Signal(range(self.count_bits + 1))
        mcand = Signal(signed(W))
        mplier = Signal(self.count_bits)
        prod = Signal(signed(W))
        lo = Signal(signed(W))
        hi = Signal(signed(W))
        busy = Signal()

        def load(t):
            return [mcand.eq(self.stride[t]),
                    mplier.eq((self.count[t] - 1)[:self.count_bits]),
                    prod.eq(0), bit.eq(0)]

        m.d.sync += self.done.eq(0)
        with m.If(self.start):
            m.d.sync += [busy.eq(1), term.eq(0), lo.eq(self.base), hi.eq(self.base)]
            m.d.sync += load(0)
        with m.Elif(busy):
            with m.If(bit < self.count_bits):
                with m.If(mplier[0]):
                    m.d.sync += prod.eq(prod + mcand)
                m.d.sync += [mcand.eq(mcand << 1), mplier.eq(mplier >> 1), bit.eq(bit + 1)]
            with m.Else():
                # Fold this term's product into lo/hi, then start the next term.
                with m.If(prod < 0):
                    m.d.sync += lo.eq(lo + prod)
                with m.Else():
                    m.d.sync += hi.eq(hi + prod)
                with m.If(term == self.terms - 1):
                    m.d.sync += [busy.eq(0), term.eq(term + 1)]
                with m.Else():
                    m.d.sync += term.eq(term + 1)
                    with m.Switch(term):
                        for t in range(self.terms - 1):
                            with m.Case(t):
                                m.d.sync += load(t + 1)
        finished = Signal()
        m.d.sync += finished.eq(busy & (bit == self.count_bits) & (term == self.terms - 1))
        with m.If(finished):
            m.d.sync += [self.done.eq(1),
                         self.ok.eq((lo >= 0) & (hi < self.limit))]
        return m
