"""Multi-level strided loop address generator (one adder per stream)."""

from amaranth import *
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

__all__ = ["LoopNest"]


class LoopNest(wiring.Component):
    """An address-generation unit: ``levels`` nested loops (level 0 outermost) that
    produce, for every stream ``s``, ``addr_s = base_s + sum_i counter_i * stride_s[i]``.

    It walks the nest with *deltas* rather than strides: when level ``i`` advances
    (every inner level restarts), the address changes by::

        delta_s[i] = stride_s[i] - sum_{j > i} n_j * stride_s[j],   n_j = count_j - 1

    so each stream is one running register and one adder. The deltas live in a small
    table memory per stream (``levels`` entries, in block RAM), written through the
    ``wr_*`` port before ``start`` (in the accelerator by ``rtl.bound_check.BoundCheck``, which derives them while it proves the
    addresses in range; ``sw_model.accel.isa.loop_deltas`` is the software definition).
    Arithmetic wraps at the stream width, so deltas may be given modulo ``2**width``.
    A stream listed in ``still`` does not move when one of the given levels advances
    (the C row and flat index during the reduction steps); its table entry there is
    never read.

    Table read-ahead: the table is read one cycle early. ``next_level``, the level
    that will advance at the next step (the innermost level not on its last
    iteration), is computed from the *next* state of the ``at_max`` flags and
    addresses the tables, so the delta is on the read port's output when that step
    comes (a cycle without ``step`` reads the same entry again).

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
        wr_en, wr_stream, wr_level, wr_data: delta table write (stream index in the
                              order of ``streams``; the low bits of ``wr_data``).
        addr_<s>:             the current element's value of stream ``s``.
        at_max[i]:            level i is on its last iteration.
        last:                 the current element is the final one of the whole nest.
    """

    def __init__(self, levels: int, streams: dict, count_bits: int = 16,
                 still: dict | None = None):
        self.levels, self.streams, self.count_bits = levels, dict(streams), count_bits
        self.still = {s: set(v) for s, v in (still or {}).items()}
        members = {
            "start": In(1), "step": In(1),
            "n": In(count_bits).array(levels),
            "wr_en": In(1), "wr_stream": In(range(max(2, len(self.streams)))),
            "wr_level": In(range(max(2, levels))), "wr_data": In(32),
            "at_max": Out(levels), "last": Out(1),
        }
        for s, width in self.streams.items():
            members[f"base_{s}"] = In(width)
            members[f"addr_{s}"] = Out(width)
        super().__init__(members)
        # no read-write collision matters (the tables are written before start);
        # block RAM even for these few entries (yosys would spend flip-flops)
        self.tables = {s: Memory(shape=w, depth=levels, init=[],
                                 attrs={"no_rw_check": 1, "ram_style": "block"})
                       for s, w in self.streams.items()}

    def elaborate(self, platform):
        m = Module()
        n, B = self.levels, self.count_bits
        rem = [Signal(B, name=f"rem{i}") for i in range(n)]          # iterations left
        at_max = [Signal(name=f"at_max{i}") for i in range(n)]
        at_max_next = [Signal(name=f"at_max_next{i}") for i in range(n)]
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

        for i in range(n):
            outer = Cat(*adv[:i]).any() if i else Const(0)
            with m.If(self.start | outer):          # (re)start this level
                m.d.comb += at_max_next[i].eq(self.n[i] == 0)
                m.d.sync += rem[i].eq(self.n[i])
            with m.Elif(adv[i]):
                m.d.comb += at_max_next[i].eq(rem[i] == 1)
                m.d.sync += rem[i].eq(rem[i] - 1)
            with m.Else():
                m.d.comb += at_max_next[i].eq(at_max[i])
        m.d.sync += [at_max[i].eq(at_max_next[i]) for i in range(n)]

        # the level the next step advances: innermost not on its last iteration
        next_level = Signal(range(max(2, n)))
        for i in range(n):                            # later (inner) levels win
            with m.If(~at_max_next[i]):
                m.d.comb += next_level.eq(i)

        for k, (s, width) in enumerate(self.streams.items()):
            mem = self.tables[s]
            m.submodules[f"table_{s}"] = mem
            wr = mem.write_port()
            rd = mem.read_port()
            m.d.comb += [wr.addr.eq(self.wr_level), wr.data.eq(self.wr_data[:width]),
                         wr.en.eq(self.wr_en & (self.wr_stream == k)),
                         rd.addr.eq(next_level)]
            moves = Cat(*(adv[i] for i in range(n) if i not in self.still.get(s, ())))
            with m.If(self.start):
                m.d.sync += run[s].eq(getattr(self, f"base_{s}"))
            with m.Elif(moves.any()):
                m.d.sync += run[s].eq(run[s] + rd.data)
        return m
