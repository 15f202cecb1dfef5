"""Range check of a strided loop nest before it runs (shift-add, no multiplier)."""

from amaranth import *
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["BoundCheck"]


class BoundCheck(wiring.Component):
    """Checks that every address ``base + sum_t c_t * stride_t`` (``0 <= c_t < count_t``)
    of a loop nest lies in ``[0, limit)``, before the nest runs, so a bad instruction is
    rejected before it touches any buffer.

    Computes ``lo = base + sum_t min(0, (count_t - 1) * stride_t)`` and
    ``hi = base + sum_t max(0, (count_t - 1) * stride_t)``: one shift-add multiplier per
    term, all terms in parallel, stepped over the ``count_bits`` bits of
    ``count_t - 1`` (no DSP: on iCE40 all 8 DSPs are MACs); then one cycle adds the
    terms and one compares: ``ok = lo >= 0 and hi < limit``.

    Latency: ``done`` is high ``CYCLES = count_bits + 3`` cycles after ``start``
    (fixed, so the cycle model counts it exactly).

    Members:
        start:               one-cycle strobe; inputs must be steady until ``done``.
        base, limit:         nest base address and buffer depth.
        count[t], stride[t]: loop counts (>= 1) and signed strides.
        done, ok:            result strobe and verdict (``ok`` holds until next start).
    """

    def __init__(self, terms: int, count_bits: int, stride_bits: int = 16,
                 addr_bits: int = 16):
        self.terms, self.count_bits, self.stride_bits = terms, count_bits, stride_bits
        self.CYCLES = self.cycles(terms, count_bits)
        self.prod_bits = stride_bits + count_bits + 1
        self.sum_bits = self.prod_bits + (terms - 1).bit_length() + 2
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
        return count_bits + 3

    def elaborate(self, platform):
        m = Module()
        P = self.prod_bits
        step = Signal(range(self.count_bits + 3))
        busy = Signal()
        mcand = [Signal(signed(P), name=f"mcand{t}") for t in range(self.terms)]
        mplier = [Signal(self.count_bits, name=f"mplier{t}") for t in range(self.terms)]
        prod = [Signal(signed(P), name=f"prod{t}") for t in range(self.terms)]
        lo = Signal(signed(self.sum_bits))
        hi = Signal(signed(self.sum_bits))

        m.d.sync += self.done.eq(0)
        with m.If(self.start):
            m.d.sync += [busy.eq(1), step.eq(0)]
            for t in range(self.terms):
                m.d.sync += [mcand[t].eq(self.stride[t]),
                             mplier[t].eq((self.count[t] - 1)[:self.count_bits]),
                             prod[t].eq(0)]
        with m.Elif(busy):
            m.d.sync += step.eq(step + 1)
            with m.If(step < self.count_bits):
                for t in range(self.terms):
                    with m.If(mplier[t][0]):
                        m.d.sync += prod[t].eq(prod[t] + mcand[t])
                    m.d.sync += [mcand[t].eq(mcand[t] << 1), mplier[t].eq(mplier[t] >> 1)]
            with m.Elif(step == self.count_bits):
                neg = sum(Mux(p < 0, p, 0) for p in prod)
                pos = sum(Mux(p < 0, 0, p) for p in prod)
                m.d.sync += [lo.eq(self.base + neg), hi.eq(self.base + pos)]
            with m.Else():
                m.d.sync += [busy.eq(0), self.done.eq(1),
                             self.ok.eq((lo >= 0) & (hi < self.limit))]
        return m
