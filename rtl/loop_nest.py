"""Multi-level strided loop address generator (one adder per stream)."""

from amaranth import *
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["LoopNest"]


class LoopNest(wiring.Component):
    """An address-generation unit: ``levels`` nested loops (level 0 outermost) that
    produce, for every stream ``s``, ``addr_s = base_s + sum_i counter_i * stride_s[i]``.

    It walks the nest with *deltas* rather than strides: when level ``i`` advances
    (every inner level restarts), the address changes by::

        delta_s[i] = stride_s[i] - sum_{j > i} n_j * stride_s[j],   n_j = count_j - 1

    so each stream is one running register and one adder, fed by an AND-OR selector of
    the advancing level's delta (``sw_model.isa.loop_deltas`` computes them; in the
    accelerator ``rtl.bound_check.BoundCheck`` derives them from the instruction while
    it proves the addresses in range). Arithmetic wraps at the stream width, so
    deltas may be given modulo ``2**width``. A stream that does not move at some
    level (the C row during the reduction steps) gets delta 0 there.

    Timing: ``start`` (one cycle) loads the bases; the first element is presented the
    next cycle. Each cycle with ``step`` advances to the next element (``addr``
    updates the following cycle). Latency 0 from state to outputs.

    Structure: each level counts *down* the iterations it has left (``rem``), and its
    "on the last iteration" flag ``at_max`` is a register kept in step with it, so the
    decision which level advances (one-hot ``adv``) is a few gates from flip-flops.

    Members:
        start, step:          control strobes.
        n[i]:                 iterations of level i minus one (count - 1), held steady
                              from ``start`` to the end of the walk.
        base_<s>:             per stream start address, sampled at ``start``.
        delta_<s>[i]:         per stream and level delta (two's complement), steady.
        addr_<s>:             the current element's value of stream ``s``.
        at_max[i]:            level i is on its last iteration.
        last:                 the current element is the final one of the whole nest.
    """

    def __init__(self, levels: int, streams: dict, count_bits: int = 16):
        self.levels, self.streams, self.count_bits = levels, dict(streams), count_bits
        members = {
            "start": In(1), "step": In(1),
            "n": In(count_bits).array(levels),
            "at_max": Out(levels), "last": Out(1),
        }
        for s, width in self.streams.items():
            members[f"base_{s}"] = In(width)
            members[f"delta_{s}"] = In(width).array(levels)
            members[f"addr_{s}"] = Out(width)
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        n, B = self.levels, self.count_bits
        rem = [Signal(B, name=f"rem{i}") for i in range(n)]          # iterations left
        at_max = [Signal(name=f"at_max{i}") for i in range(n)]
        run = {s: Signal(w, name=f"run_{s}") for s, w in self.streams.items()}
        m.d.comb += [self.at_max.eq(Cat(*at_max)), self.last.eq(Cat(*at_max).all())]
        for s in self.streams:
            m.d.comb += getattr(self, f"addr_{s}").eq(run[s])

        # adv[i]: level i advances (one-hot): it is not on its last iteration and
        # every inner level is.
        adv = []
        for i in range(n):
            inner_all_max = Cat(*at_max[i + 1:]).all() if i < n - 1 else Const(1)
            a = Signal(name=f"adv{i}")
            m.d.comb += a.eq(self.step & ~at_max[i] & inner_all_max)
            adv.append(a)

        with m.If(self.start):
            for i in range(n):
                m.d.sync += [rem[i].eq(self.n[i]), at_max[i].eq(self.n[i] == 0)]
            for s in self.streams:
                m.d.sync += run[s].eq(getattr(self, f"base_{s}"))
        with m.Else():
            for i in range(n):
                with m.If(adv[i]):
                    m.d.sync += [rem[i].eq(rem[i] - 1), at_max[i].eq(rem[i] == 1)]
                # an outer level advanced: restart this one
                outer = Cat(*adv[:i]).any() if i else Const(0)
                with m.If(outer):
                    m.d.sync += [rem[i].eq(self.n[i]), at_max[i].eq(self.n[i] == 0)]
            for s, width in self.streams.items():
                delta = getattr(self, f"delta_{s}")
                sel = 0
                for i in range(n):
                    sel = sel | (adv[i].replicate(width) & delta[i])
                with m.If(Cat(*adv).any()):
                    m.d.sync += run[s].eq(run[s] + sel)
        return m
