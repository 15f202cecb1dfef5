"""Range check of strided loop-nest streams before they run (Horner shift-add, no
multiplier, no per-term product registers)."""

from amaranth import *
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["BoundCheck"]


def _tree_sum(values):
    """Balanced adder tree (shorter carry-chain path than a left-deep sum)."""
    values = list(values)
    while len(values) > 1:
        values = [values[i] + values[i + 1] if i + 1 < len(values) else values[i]
                  for i in range(0, len(values), 2)]
    return values[0]


class BoundCheck(wiring.Component):
    """Checks that every address of ``streams`` strided streams walking one loop nest
    lies in ``[0, limit)``, before the nest runs, so a bad instruction is rejected
    before it touches any buffer. Stream ``s`` visits::

        addr_s = base_s + sum_t c_t * stride[s][t] + e,   0 <= c_t < count_t,
                                                          0 <= e <= span_s

    (the loop counts are shared by all streams; ``span_s`` covers rows a stream
    writes per element, e.g. the ``pe_rows - 1`` extra C rows of a drained tile).

    Computes, with ``n_t = count_t - 1``::

        lo_s = base_s + sum_t min(0, n_t * stride[s][t])
        hi_s = base_s + span_s + sum_t max(0, n_t * stride[s][t])
        ok   = all(lo_s >= 0 and hi_s < limit for every stream)

    by Horner's rule over the ``count_bits`` bits of every ``n_t``, most significant
    first, for all terms and streams at once: each step does
    ``L_s <- 2*L_s + sum(stride[s][t] for the terms whose bit is 1 and stride < 0)``
    and the same for ``H_s`` with the non-negative strides (a balanced tree of
    ``terms`` stride-wide adders plus one accumulate adder per sum). Registers:
    one ``count_bits`` shift register per term (shared by the streams) and the two
    sums per stream; the strides and bases are read from the (steady) inputs.

    Latency: ``done`` is high ``CYCLES = count_bits + 3`` cycles after ``start``
    (``count_bits`` Horner steps, one cycle adding base and span, one comparing;
    fixed, so the cycle model counts it exactly).

    Members:
        start:              one-cycle strobe; inputs must be steady until ``done``.
        limit:              buffer depth (addresses must be below it).
        count[t]:           loop counts, 1 .. 2**count_bits (shared by the streams).
        base[s], span[s]:   stream base address and extra non-negative span.
        stride[s][t]:       signed stride of stream ``s`` at level ``t``.
        done, ok:           result strobe and verdict (``ok`` holds until next start).
    """

    def __init__(self, terms: int, count_bits: int, streams: int = 1,
                 stride_bits: int = 16, addr_bits: int = 16):
        self.terms, self.count_bits, self.streams = terms, count_bits, streams
        self.stride_bits = stride_bits
        self.CYCLES = self.cycles(terms, count_bits)
        # |sum_t n_t * stride_t| < terms * 2**count_bits * 2**(stride_bits - 1)
        self.sum_bits = stride_bits + count_bits + (terms - 1).bit_length() + 1
        super().__init__({
            "start": In(1),
            "limit": In(addr_bits + 1),
            "count": In(16).array(terms),
            "base": In(addr_bits).array(streams),
            "span": In(addr_bits).array(streams),
            "stride": In(signed(stride_bits)).array(streams, terms),
            "done": Out(1), "ok": Out(1),
        })

    @staticmethod
    def cycles(terms: int, count_bits: int) -> int:
        """Cycles from ``start`` to ``done``."""
        return count_bits + 3

    def elaborate(self, platform):
        m = Module()
        T, S, B = self.terms, self.streams, self.count_bits
        step = Signal(range(B + 3))
        busy = Signal()
        # n_t = count_t - 1, shifted out most significant bit first.
        nbits = [Signal(B, name=f"n{t}") for t in range(T)]
        lo_acc = [Signal(signed(self.sum_bits), name=f"lo_acc{s}") for s in range(S)]
        hi_acc = [Signal(signed(self.sum_bits), name=f"hi_acc{s}") for s in range(S)]
        lo = [Signal(signed(self.sum_bits + 2), name=f"lo{s}") for s in range(S)]
        hi = [Signal(signed(self.sum_bits + 2), name=f"hi{s}") for s in range(S)]

        m.d.sync += self.done.eq(0)
        with m.If(self.start):
            m.d.sync += [busy.eq(1), step.eq(0)]
            m.d.sync += [nbits[t].eq((self.count[t] - 1)[:B]) for t in range(T)]
            m.d.sync += [a.eq(0) for a in lo_acc + hi_acc]
        with m.Elif(busy):
            m.d.sync += step.eq(step + 1)
            with m.If(step < B):
                for t in range(T):
                    m.d.sync += nbits[t].eq(nbits[t] << 1)
                for s in range(S):
                    neg, pos = [], []
                    for t in range(T):
                        stride = self.stride[s][t]
                        take = nbits[t][-1]
                        negative = stride[-1]
                        neg.append(Mux(take & negative, stride, 0))
                        pos.append(Mux(take & ~negative, stride, 0))
                    m.d.sync += [lo_acc[s].eq((lo_acc[s] << 1) + _tree_sum(neg)),
                                 hi_acc[s].eq((hi_acc[s] << 1) + _tree_sum(pos))]
            with m.Elif(step == B):
                for s in range(S):
                    m.d.sync += [lo[s].eq(self.base[s] + lo_acc[s]),
                                 hi[s].eq(self.base[s] + self.span[s] + hi_acc[s])]
            with m.Else():
                verdict = Const(1)
                for s in range(S):
                    verdict = verdict & (lo[s] >= 0) & (hi[s] < self.limit)
                m.d.sync += [busy.eq(0), self.done.eq(1), self.ok.eq(verdict)]
        return m
