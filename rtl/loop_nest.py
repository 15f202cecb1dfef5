"""Multi-level strided loop address generator."""

from amaranth import *
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["LoopNest"]


class LoopNest(wiring.Component):
    """An address-generation unit: ``levels`` nested loops (level 0 outermost) that
    produce, for every stream ``s``, ``addr_s = base_s + sum_i counter_i * stride_s[i]``.

    Only adders: level ``i`` keeps a running start value per stream; when level ``i``
    advances, its value grows by the stride and every inner level restarts from it.
    Operands are thereby read (and results written) in any permuted or reshaped order
    the strides describe.

    Timing: ``start`` (one cycle) loads the bases and zeroes the counters; the first
    element is presented the next cycle. Each cycle with ``step`` advances to the next
    element (``addr`` updates the following cycle). Latency 0 from state to outputs.

    Members:
        start, step:          control strobes.
        count[i]:             iterations of level i (>= 1), held steady while running.
        base_<s>, stride_<s>: per stream base and per-level strides (two's complement,
                              arithmetic wraps at the stream width).
        addr_<s>:             the current element's value of stream ``s``.
        at_max[i]:            level i is on its last iteration.
        last:                 the current element is the final one of the whole nest.
    """

    def __init__(self, levels: int, streams: dict, count_bits: int = 16):
        self.levels, self.streams, self.count_bits = levels, dict(streams), count_bits
        members = {
            "start": In(1), "step": In(1),
            "count": In(count_bits).array(levels),
            "at_max": Out(levels), "last": Out(1),
        }
        for s, width in self.streams.items():
            members[f"base_{s}"] = In(width)
            members[f"stride_{s}"] = In(width).array(levels)
            members[f"addr_{s}"] = Out(width)
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        n = self.levels
        ctr = [Signal(self.count_bits, name=f"ctr{i}") for i in range(n)]
        run = {s: [Signal(w, name=f"run_{s}{i}") for i in range(n)]
               for s, w in self.streams.items()}
        at_max = Cat(*[ctr[i] == self.count[i] - 1 for i in range(n)])
        m.d.comb += self.at_max.eq(at_max)
        m.d.comb += self.last.eq(at_max.all())
        for s in self.streams:
            m.d.comb += getattr(self, f"addr_{s}").eq(run[s][n - 1])

        with m.If(self.start):
            for i in range(n):
                m.d.sync += ctr[i].eq(0)
                for s in self.streams:
                    m.d.sync += run[s][i].eq(getattr(self, f"base_{s}"))
        with m.Elif(self.step):
            # Advance the innermost level that is not on its last iteration.
            for i in range(n):
                inner_all_max = Const(1) if i == n - 1 else at_max[i + 1:].all()
                with m.If(~at_max[i] & inner_all_max):
                    m.d.sync += ctr[i].eq(ctr[i] + 1)
                    for j in range(i + 1, n):
                        m.d.sync += ctr[j].eq(0)
                    for s in self.streams:
                        new = run[s][i] + getattr(self, f"stride_{s}")[i]
                        for j in range(i, n):
                            m.d.sync += run[s][j].eq(new)
        return m
