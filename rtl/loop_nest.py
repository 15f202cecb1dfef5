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

    Timing: ``start`` (one cycle) loads the bases and the loop counts; the first
    element is presented the next cycle. Each cycle with ``step`` advances to the next
    element (``addr`` updates the following cycle). Latency 0 from state to outputs.

    Structure (for clock rate): each level counts *down* the iterations it has left
    (``rem``), and its "on the last iteration" flag ``at_max`` is a register kept in
    step with it, so the decision which level advances is a few gates from flip-flops
    (no comparator or subtractor on the stepping path); the restart values
    (``count - 1``) are latched at ``start``. The advancing level is one-hot, and each
    running value takes its new value through an AND-OR selector.

    Members:
        start, step:          control strobes.
        count[i]:             iterations of level i (>= 1), sampled at ``start``.
        base_<s>, stride_<s>: per stream base and per-level strides (two's complement,
                              arithmetic wraps at the stream width); strides are read
                              while running and must be held steady.
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
        n, B = self.levels, self.count_bits
        rem = [Signal(B, name=f"rem{i}") for i in range(n)]          # iterations left
        restart = [Signal(B, name=f"restart{i}") for i in range(n)]  # count - 1
        restart_zero = [Signal(name=f"restart_zero{i}") for i in range(n)]
        at_max = [Signal(name=f"at_max{i}") for i in range(n)]
        run = {s: [Signal(w, name=f"run_{s}{i}") for i in range(n)]
               for s, w in self.streams.items()}
        m.d.comb += [self.at_max.eq(Cat(*at_max)), self.last.eq(Cat(*at_max).all())]
        for s in self.streams:
            m.d.comb += getattr(self, f"addr_{s}").eq(run[s][n - 1])

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
                first = (self.count[i] - 1)[:B]
                m.d.sync += [rem[i].eq(first), restart[i].eq(first),
                             restart_zero[i].eq(first == 0), at_max[i].eq(first == 0)]
                for s in self.streams:
                    m.d.sync += run[s][i].eq(getattr(self, f"base_{s}"))
        with m.Else():
            for i in range(n):
                with m.If(adv[i]):
                    m.d.sync += [rem[i].eq(rem[i] - 1), at_max[i].eq(rem[i] == 1)]
                # an outer level advanced: restart this one
                outer = Cat(*adv[:i]).any() if i else Const(0)
                with m.If(outer):
                    m.d.sync += [rem[i].eq(restart[i]), at_max[i].eq(restart_zero[i])]
            for s, width in self.streams.items():
                stride = getattr(self, f"stride_{s}")
                new = [Signal(width, name=f"new_{s}{i}") for i in range(n)]
                m.d.comb += [new[i].eq(run[s][i] + stride[i]) for i in range(n)]
                for j in range(n):
                    # level j takes new[i] when some level i <= j advances
                    value = 0
                    for i in range(j + 1):
                        value = value | (adv[i].replicate(width) & new[i])
                    with m.If(Cat(*adv[:j + 1]).any()):
                        m.d.sync += run[s][j].eq(value)
        return m
