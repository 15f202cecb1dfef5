"""Serial range check of a CONTRACT's address streams, which also derives the address
generators' deltas (one 32-bit Horner datapath, strides read from program memory)."""

from amaranth import *
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from fetta.sw_model.accel.isa import CHECK_PASSES, CHECK_STREAMS, N_LEVELS, check_cycles

from .horner_passes import pass_sequencer

__all__ = ["BoundCheck"]

_FIELDS = {"lo": 0, "hi": 1, "full": 2}


class BoundCheck(wiring.Component):
    """Proves, before a CONTRACT runs, that every A and B row it reads and every C row
    it writes lies in ``[0, depth)``, and computes the deltas the address generator
    walks the loop nest with (``rtl.loop_nest.LoopNest``). With ``n_t = count_t - 1``
    for the outer levels ``t = 0..3`` and the reduction level ``K = 4``::

        P[s][t]   = n_t * stride[s][t]
        lo_s      = base_s + sum_t min(0, P[s][t])          must be >= 0
        hi_s      = base_s + sum_t max(0, P[s][t])          must be < depth - span_s
        delta[s][t] = stride[s][t] - sum_{j inner to t} P[s][j]

    for the streams ``a``, ``b`` (levels 0..K), ``c`` (levels 0..3; ``span_c =
    pe_rows - 1``: a drained tile writes ``pe_rows`` rows) and ``idx``, the flat output
    index (levels 0..3, deltas only, modulo ``2**32``).

    Schedule: ``sw_model.accel.isa.CHECK_PASSES``, stream by stream, innermost level first;
    one pass per (stream, level). A pass reads its stride field from the CONTRACT
    payload word ``word`` (the controller puts the program memory's read port on it:
    ``data`` is the word addressed the previous cycle), runs one Horner step
    ``P <- 2 P + (bit of n_t ? stride : 0)`` per bit of ``n_t`` from its highest set
    bit down (none when ``n_t = 0``; ``P`` starts at 0) on one 32-bit adder, then one
    accumulate cycle: ``delta = stride - S`` leaves on the ``delta_*`` write port,
    ``S += P`` (the stream's inner suffix sum) and ``P`` goes into ``lo`` or ``hi`` by
    its sign. A stream's first pass starts ``S`` at 0 and ``lo``/``hi`` at the
    stream's base, and in that accumulate cycle the previous stream's ``lo``/``hi``
    are compared. Four 32-bit adders in all; |P| < 2**28 and the sums stay below
    2**31, so the 32-bit signed arithmetic is exact for ``a``, ``b``, ``c``.

    Latency: ``done`` is high ``sw_model.accel.isa.check_cycles(counts)`` =
    ``1 + sum over passes (bit_length(n_t) + 1)`` cycles after ``start``, known to
    the compiler from the instruction's counts: ``len(CHECK_PASSES) + 1`` when every
    count is 1, at most ``CYCLES = len(CHECK_PASSES) * (count_bits + 1) + 1`` (every
    count ``COUNT_MAX``). The per-pass selections (stride field, Horner bit) are
    registered from the next state, so a Horner step's path is read data -> field
    multiplexer -> adder.

    Members:
        start:        one-cycle strobe; ``n`` and ``base`` must be steady until ``done``.
        cancel:       stop a check in progress (no ``done``; ``start`` wins).
        word:         payload word to read next (offset after the header); after the
                      last pass ``then_word`` (read in the ``done`` cycle: the
                      controller takes the address generator's start index from it).
        data:         program memory read data (the word of ``word`` one cycle ago).
        n[t]:         count - 1 of level t (t = N_LEVELS is the reduction).
        base_a, base_b, base_c: stream base rows (``addr_bits`` wide).
        delta_wr, delta_stream, delta_level, delta_data:
                      one delta per pass, in its accumulate cycle (stream index in
                      ``CHECK_STREAMS`` order), for the address generator's tables.
        done, ok:     result strobe and verdict (``ok`` holds until the next start).
    """

    def __init__(self, count_bits: int, addr_bits: int, depth: int, c_span: int,
                 then_word: int | None = None):
        self.count_bits, self.addr_bits = count_bits, addr_bits
        self.then_word = CHECK_PASSES[0].word if then_word is None else then_word
        self.depth, self.c_span = depth, c_span
        self.CYCLES = check_cycles()             # the longest (every count COUNT_MAX)
        assert self.CYCLES == len(CHECK_PASSES) * (count_bits + 1) + 1
        members = {
            "start": In(1), "cancel": In(1), "word": Out(8), "data": In(32),
            "n": In(count_bits).array(N_LEVELS + 1),
            "base_a": In(addr_bits), "base_b": In(addr_bits), "base_c": In(addr_bits),
            "delta_wr": Out(1), "delta_stream": Out(range(len(CHECK_STREAMS))),
            "delta_level": Out(range(N_LEVELS + 1)), "delta_data": Out(32),
            "done": Out(1), "ok": Out(1),
        }
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        B = self.count_bits
        passes = CHECK_PASSES
        NP = len(passes)
        checked = ("a", "b", "c")
        assert passes[-1].stream not in checked   # the last verdict is taken before it

        p = Signal(range(NP))                 # current pass
        hd = Signal(range(B))                 # Horner bit, counting down
        acc_phase = Signal()                  # the pass's accumulate cycle
        busy = Signal()
        P = Signal(signed(32))
        S = Signal(signed(32))
        lo = Signal(signed(32))
        hi = Signal(signed(32))
        ok = Signal()
        m.d.comb += self.ok.eq(ok)

        def table(values, shape):
            return Array(Const(v, shape) for v in values)

        word_of = table([ps.word for ps in passes], 8)
        word_next = table([ps.word for ps in passes[1:]] + [self.then_word], 8)
        field_of = table([_FIELDS[ps.field] for ps in passes], 2)
        level_of = table([ps.level for ps in passes], range(N_LEVELS + 1))
        first_of = [i == 0 or passes[i - 1].stream != ps.stream
                    for i, ps in enumerate(passes)]
        stream_first = table([int(f) for f in first_of], 1)
        # the stream whose verdict a stream's first pass takes (len(checked): none)
        prev_checked = []
        for i, ps in enumerate(passes):
            prev = passes[i - 1].stream if i else None
            prev_checked.append(checked.index(prev) if first_of[i] and prev in checked
                                else len(checked))
        verdict_of = table(prev_checked, range(len(checked) + 1))
        stream_idx = table([CHECK_STREAMS.index(ps.stream) for ps in passes],
                           range(len(CHECK_STREAMS)))
        is_checked = table([int(ps.stream in checked) for ps in passes], 1)

        m.d.comb += self.word.eq(Mux(acc_phase, word_next[p], word_of[p]))

        # Next state. A pass starts at the highest set bit of its n (straight to the
        # accumulate cycle when n = 0); the per-pass selections are registered from
        # the next state, so a Horner step's path is read data -> field mux -> adder.
        n_next = Signal(B)
        p_n, hd_n, acc_n = pass_sequencer(
            m, start=self.start, cancel=self.cancel, busy=busy, acc_phase=acc_phase, p=p,
            hd=hd, n_passes=NP, n_next=n_next)
        m.d.comb += n_next.eq(Array(self.n)[level_of[p_n]])
        field = Signal(2)               # field_of[p]
        bit = Signal()                  # bit hd of n[level_of[p]]
        m.d.sync += [p.eq(p_n), hd.eq(hd_n), acc_phase.eq(acc_n),
                     field.eq(field_of[p_n]), bit.eq(n_next.bit_select(hd_n, 1))]

        # The stride field of the word on the read port, sign-extended to 32 bits.
        d = self.data
        stride = Signal(signed(32))
        with m.Switch(field):
            with m.Case(0):
                m.d.comb += stride.eq(d[0:16].as_signed())
            with m.Case(1):
                m.d.comb += stride.eq(d[16:32].as_signed())
            with m.Default():
                m.d.comb += stride.eq(d.as_signed())
        bases = Array([self.base_a, self.base_b, self.base_c])
        limits = [self.depth, self.depth, self.depth - self.c_span]

        m.d.sync += self.done.eq(0)
        with m.If(self.start):
            m.d.sync += [busy.eq(1), ok.eq(1), P.eq(0)]
        with m.Elif(self.cancel):
            m.d.sync += busy.eq(0)
        with m.Elif(busy & ~acc_phase):
            m.d.sync += P.eq((P << 1) + Mux(bit, stride, 0))          # Horner step
        with m.Elif(busy):
            # accumulate: a stream's first pass starts S at 0 and lo/hi at its base
            # (after the previous stream's verdict); delta, suffix sum, range sums
            first = stream_first[p]
            with m.If(first):
                for k, lim in enumerate(limits):
                    with m.If(verdict_of[p] == k):
                        with m.If((lo < 0) | (hi >= lim)):
                            m.d.sync += ok.eq(0)
            s_in = Mux(first, 0, S)
            sbase = bases[Mux(stream_idx[p] < 3, stream_idx[p], 0)]
            lo_in = Mux(first, sbase, lo)
            hi_in = Mux(first, sbase, hi)
            m.d.sync += [S.eq(s_in + P), P.eq(0)]
            with m.If(is_checked[p]):
                with m.If(P < 0):
                    m.d.sync += [lo.eq(lo_in + P), hi.eq(hi_in)]
                with m.Else():
                    m.d.sync += [lo.eq(lo_in), hi.eq(hi_in + P)]
            m.d.comb += [self.delta_wr.eq(1), self.delta_stream.eq(stream_idx[p]),
                         self.delta_level.eq(level_of[p]),
                         self.delta_data.eq(stride - s_in)]
            with m.If(p == NP - 1):
                m.d.sync += [busy.eq(0), self.done.eq(1)]
        return m
