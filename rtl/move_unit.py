"""The MOVE unit: range check and address walk of a MOVE instruction
(``sw_model/accel/move.py``), the on-chip copy between buffers."""

from amaranth import *
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from fetta.sw_model.accel.adam import ADAM_WORDS
from fetta.sw_model.accel.config import AccelConfig
from fetta.sw_model.accel.isa import COUNT_BITS, COUNT_MAX, used_bits
from fetta.sw_model.accel.shift_slots import SLOT_BITS, VOTE_BITS
from fetta.sw_model.accel.xent import (BSZ_MAX, N_MAX, S_MAX, S_MIN, XENT_FIELD,
                                       XENT_FIELDS, XW)
from fetta.sw_model.accel.move import (BUFS, MOVE_CHECK_PASSES, MOVE_FIELD, MOVE_LEVELS,
                                       MOVE_TAIL, MOVE_WORDS, MW, move_check_cycles)
from fetta.sw_model.accel.vec import (READS_DEST, REQUANTS, VEC_FIELD, VEC_SHIFT_MAX, VW,
                                      VecOp, vec_tail)

from .horner_passes import pass_sequencer
from .loop_nest import LoopNest

__all__ = ["MoveUnit"]

_X = 50     # range-check arithmetic: |(count-1) * stride| < 2**44, 8 of them + a base


class MoveUnit(wiring.Component):
    """Range check and address generation of one MOVE at a time.

    The controller streams the payload in (``load``, ``load_word``, ``data``); then
    ``check_start`` runs the serial range check, which reads every stride word back
    through ``word``/``data`` (the controller puts the program memory's read port on
    ``word``) and, with ``n_t = count_t - 1``, computes::

        P[s][t]     = n_t * stride[s][t]           (Horner steps on one adder)
        lo_s, hi_s  = base_s + sum_t min(0, P) , base_s + sum_t max(0, P)
        delta[s][t] = stride[s][t] - sum_{j inner to t} P[s][j]

    for the source and destination streams (``sw_model.accel.move.MOVE_CHECK_PASSES``:
    source levels innermost first, then destination), one pass per (stream, level):
    one Horner step ``P <- 2 P + (bit of n_t ? stride : 0)`` per bit of ``n_t`` from
    its highest set bit down (none when ``n_t = 0``), then one accumulate cycle
    (``S += P``, ``P`` into ``lo`` or ``hi``, the delta out; the destination's first
    pass keeps the source's extremes and restarts from the destination base). The
    per-pass selections (level, Horner bit) are registered from the next state.
    ``check_done`` is high ``move_check_cycles(counts)`` = ``1 + sum over passes
    (bit_length(n_t) + 1)`` cycles after ``check_start`` (17 to 225), with
    ``check_ok``: the destination range inside its buffer and, unless ``fill``, the
    source range inside its buffer. The deltas go into the address walk's tables
    (``rtl.loop_nest``).

    ``run_start`` starts the walk; every cycle with ``step`` issues one element: a
    source word read (``rd_en``, ``rd_buf``, ``rd_addr``; the buffer's read data comes
    back the next cycle on ``rd_word``, selected by the top) and, one cycle later, the
    destination write (``wr_en``, ``wr_buf``, ``wr_addr``, ``wr_fill``: with ``fill``
    the whole destination row is cleared, nothing is read). ``last``: the element
    being issued is the final one. Latency: the write of an element is 1 cycle after
    its issue (``MOVE_TAIL``).

    ``bad``: the loaded payload has a buffer code 3, a copy whose source and
    destination are the same buffer, or a loop count of 0 or above ``COUNT_MAX``;
    for a VEC, an op code without an op, rounding code 3, ``out_bits`` outside 2..16
    or the fill bit, and the shift-slot fields' refusals (vote code 3, a vote
    without a slot, a slot above ``shift_slots``, a shift field beside a slot; the
    controller adds a slot shift above ``VEC_SHIFT_MAX``) (the controller halts with
    ``BAD_CONFIG``).

    VEC (``sw_model/accel/vec.py``): the payload's OP and SEED words (loaded after the
    MOVE's; loading MODE clears ``vec``) set ``vec`` and the ALU's fields (``op``,
    ``shift``, ``rounding``, ``out_bits``, ``seed``, ``slot``, ``vote``), which the top's vector ALU
    (``rtl.vector_alu``) reads. For the ops that read the destination's old word,
    every issue also reads the destination (``rd2_en``, ``rd2_addr``: the destination
    address); ``fwd`` (with the read data, one cycle after the issue) says the
    destination word is the one written in that cycle, whose new value the top takes
    instead of the stale read. ``index``: the number of the element whose read data
    arrives (counting from the payload's ``index_base`` at ``run_start``; 0 for a
    MOVE). ``tail``: cycles from the last
    issue to the last write (``vec.vec_tail`` of the op, ``MOVE_TAIL`` for a MOVE).

    Addresses are word addresses (``row * lanes + lane`` of the buffer), ``W`` bits:
    enough for the largest buffer.
    """

    def __init__(self, config: AccelConfig):
        self.config = cfg = config
        self.words = {"A": cfg.a_lanes * cfg.bank_depth, "B": cfg.b_lanes * cfg.bank_depth,
                      "C": cfg.c_lanes * cfg.bank_depth}
        self.W = W = (max(self.words.values()) - 1).bit_length()
        super().__init__({
            "load": In(1), "load_word": In(range(ADAM_WORDS)), "data": In(32),
            "word": Out(8), "check_start": In(1), "check_cancel": In(1),
            "check_done": Out(1), "check_ok": Out(1), "bad": Out(1),
            "run_start": In(1), "step": In(1), "last": Out(1),
            "rd_en": Out(1), "rd_buf": Out(2), "rd_addr": Out(W),
            "wr_en": Out(1), "wr_buf": Out(2), "wr_addr": Out(W), "wr_fill": Out(1),
            "rd2_en": Out(1), "rd2_addr": Out(W), "fwd": Out(1), "index": Out(32),
            "vec": Out(1), "op": Out(4), "shift": Out(range(VEC_SHIFT_MAX + 1)),
            "rounding": Out(2), "out_bits": Out(5), "seed": Out(32),
            "slot": Out(SLOT_BITS), "vote": Out(VOTE_BITS),
            # XENT (sw_model/accel/xent.py): set by the controller for an XENT; the
            # classes (innermost count) and the PARAM word (in ``seed``)
            "xent": In(1), "classes": Out(range(COUNT_MAX + 1)),
            # ADAM (sw_model/accel/adam.py): set by the controller for an ADAM, whose
            # payload words after the MOVE's the update unit decodes (not the VEC
            # fields); only its fill bit is refused here
            "adam": In(1),
            "tail": Out(range(vec_tail(VecOp.REQUANT) + 1)),
        })

    def elaborate(self, platform):
        m = Module()
        B, W, L = COUNT_BITS, self.W, MOVE_LEVELS
        fs = MOVE_FIELD

        # -- payload registers ------------------------------------------------------
        src = Signal(2)
        dst = Signal(2)
        fill = Signal()
        base = {"src": Signal(32, name="base_src"), "dst": Signal(32, name="base_dst")}
        n = [Signal(B, name=f"mn{i}") for i in range(L)]
        bad_count = Signal()
        index_base = Signal(32)
        op_extra, param_extra = Signal(), Signal()     # XENT: reserved bits set
        xent_used = used_bits(XENT_FIELDS, (XW.OP, XW.PARAM))
        d = self.data
        assert fs["src"].word == fs["dst"].word == fs["fill"].word == MW.MODE
        with m.If(self.load):
            with m.Switch(self.load_word):
                with m.Case(MW.MODE):
                    m.d.sync += [src.eq(d[fs["src"].lsb:][:2]), dst.eq(d[fs["dst"].lsb:][:2]),
                                 fill.eq(d[fs["fill"].lsb]), bad_count.eq(0),
                                 self.vec.eq(0), index_base.eq(0), self.slot.eq(0),
                                 self.vote.eq(0)]
                with m.Case(VW.OP):
                    m.d.sync += [self.vec.eq(1),
                                 op_extra.eq((d & ~xent_used[XW.OP]) != 0)]
                    for name in ("op", "shift", "rounding", "out_bits", "slot", "vote"):
                        f = VEC_FIELD[name]
                        m.d.sync += getattr(self, name).eq(d[f.lsb:f.lsb + f.width])
                with m.Case(VW.SEED):
                    m.d.sync += [self.seed.eq(d),
                                 param_extra.eq((d & ~xent_used[XW.PARAM]) != 0)]
                with m.Case(VW.INDEX):
                    m.d.sync += index_base.eq(d)
                with m.Case(MW.SRC_BASE):
                    m.d.sync += base["src"].eq(d)
                with m.Case(MW.DST_BASE):
                    m.d.sync += base["dst"].eq(d)
                for i in range(L):
                    f = fs[f"level{i}.count"]
                    with m.Case(f.word):
                        count = d[f.lsb:f.lsb + f.width]
                        m.d.sync += n[i].eq(count - 1)
                        with m.If((count == 0) | (count > COUNT_MAX)):
                            m.d.sync += bad_count.eq(1)
        vec_bad = self.vec & ~self.xent & ~self.adam & (
            (self.op >= len(VecOp)) | (self.rounding == 3) |
            (self.out_bits < 2) | (self.out_bits > 16) | fill |
            (self.vote == 3) | ((self.vote != 0) & (self.slot == 0)) |
            (self.slot > self.config.shift_slots) |
            ((self.slot != 0) & (self.shift != 0)))
        # XENT: classes 2..N_MAX, s >= S_MIN, 2 <= bsz <= BSZ_MAX, out_bits 2..16, the
        # reserved bits and word 0, no fill
        xs = self.seed[XENT_FIELD["s"].lsb:][:XENT_FIELD["s"].width].as_signed()
        xb = self.seed[XENT_FIELD["bsz"].lsb:][:XENT_FIELD["bsz"].width]
        m.d.comb += self.classes.eq(n[L - 1] + 1)
        xent_bad = self.xent & (
            (n[L - 1] < 1) | (n[L - 1] > N_MAX - 1) | (xs < S_MIN) | (xs > S_MAX) |
            (xb < 2) | (xb > BSZ_MAX) | (self.out_bits < 2) | (self.out_bits > 16) |
            op_extra | param_extra | (index_base != 0) | fill | ~self.vec)
        vec_bad = vec_bad | xent_bad | (self.adam & fill)
        m.d.comb += self.bad.eq((src == 3) | (dst == 3) | ((src == dst) & ~fill) | bad_count
                                | vec_bad)

        # -- range check + deltas (serial, one Horner adder) ----------------------------
        passes = MOVE_CHECK_PASSES
        NP = len(passes)
        assert [ps.stream for ps in passes] == ["src"] * L + ["dst"] * L

        def table(values, shape):
            return Array(Const(v, shape) for v in values)

        word_of = table([ps.word for ps in passes], 8)
        word_next = table([ps.word for ps in passes[1:]] + [passes[0].word], 8)
        level_of = table([ps.level for ps in passes], range(L))
        p = Signal(range(NP))
        hd = Signal(range(B))                 # Horner bit, counting down
        acc_phase = Signal()
        busy = Signal()
        P = Signal(signed(_X))
        S = Signal(signed(_X))
        lo, hi = Signal(signed(_X)), Signal(signed(_X))
        slo, shi = Signal(signed(_X)), Signal(signed(_X))     # the source's, kept
        m.d.comb += self.word.eq(Mux(acc_phase, word_next[p], word_of[p]))
        stride = Signal(signed(_X))
        m.d.comb += stride.eq(d.as_signed())
        dst_pass = p >= L

        # Next state: a pass starts at the highest set bit of its n (straight to the
        # accumulate cycle when n = 0); the Horner bit is registered from it.
        n_next = Signal(B)
        p_n, hd_n, acc_n = pass_sequencer(
            m, start=self.check_start, cancel=self.check_cancel, busy=busy,
            acc_phase=acc_phase, p=p, hd=hd, n_passes=NP, n_next=n_next)
        m.d.comb += n_next.eq(Array(n)[level_of[p_n]])
        bit = Signal()                  # bit hd of n[level_of[p]]
        m.d.sync += [p.eq(p_n), hd.eq(hd_n), acc_phase.eq(acc_n),
                     bit.eq(n_next.bit_select(hd_n, 1))]

        first_dst = p == L              # the destination's first pass
        s_in = Mux(first_dst, 0, S)
        lo_in = Mux(first_dst, base["dst"], lo)
        hi_in = Mux(first_dst, base["dst"], hi)
        m.d.sync += self.check_done.eq(0)
        with m.If(self.check_start):
            m.d.sync += [busy.eq(1), P.eq(0), S.eq(0), lo.eq(base["src"]),
                         hi.eq(base["src"])]
        with m.Elif(self.check_cancel):
            m.d.sync += busy.eq(0)
        with m.Elif(busy & ~acc_phase):
            m.d.sync += P.eq((P << 1) + Mux(bit, stride, 0))          # Horner step
        with m.Elif(busy):
            # accumulate: suffix sum, range sums (the destination's first pass keeps
            # the source's extremes and starts from the destination base)
            with m.If(first_dst):
                m.d.sync += [slo.eq(lo), shi.eq(hi)]
            m.d.sync += [S.eq(s_in + P), P.eq(0)]
            with m.If(P < 0):
                m.d.sync += [lo.eq(lo_in + P), hi.eq(hi_in)]
            with m.Else():
                m.d.sync += [lo.eq(lo_in), hi.eq(hi_in + P)]
            with m.If(p == NP - 1):
                m.d.sync += [busy.eq(0), self.check_done.eq(1)]

        limits = Array(Const(self.words[b], _X) for b in BUFS + ("A",))
        dst_ok = (lo >= 0) & (hi < limits[dst])
        src_ok = (slo >= 0) & (shi < limits[src])
        m.d.comb += self.check_ok.eq(dst_ok & (fill | src_ok))

        # -- the address walk -----------------------------------------------------------
        walk = LoopNest(L, {"src": W, "dst": W}, count_bits=B)
        m.submodules.walk = walk
        m.d.comb += [walk.wr_en.eq(busy & acc_phase), walk.wr_stream.eq(dst_pass),
                     walk.wr_level.eq(level_of[p]), walk.wr_data.eq((stride - s_in)[:32]),
                     walk.base_src.eq(base["src"][:W]), walk.base_dst.eq(base["dst"][:W]),
                     walk.start.eq(self.run_start), walk.step.eq(self.step),
                     self.last.eq(walk.last)]
        for i in range(L):
            m.d.comb += walk.n[i].eq(n[i])
        assert move_check_cycles([COUNT_MAX] * L) == NP * (B + 1) + 1

        # issue: the source read now, the destination write one cycle later
        pending = Signal()
        wr_addr = Signal(W)
        m.d.comb += [self.rd_en.eq(self.step & ~fill), self.rd_buf.eq(src),
                     self.rd_addr.eq(walk.addr_src),
                     self.wr_en.eq(pending), self.wr_buf.eq(dst), self.wr_addr.eq(wr_addr),
                     self.wr_fill.eq(fill)]
        m.d.sync += [pending.eq(self.step), wr_addr.eq(walk.addr_dst)]

        # VEC: the destination read of the ops that need it, the forward flag, the
        # element number, the tail
        reads_dest = Signal()
        m.d.comb += reads_dest.eq(self.vec & ~self.adam & (
            self.xent | Cat(*(self.op == int(o) for o in READS_DEST)).any()))
        m.d.comb += [self.rd2_en.eq(self.step & reads_dest),
                     self.rd2_addr.eq(walk.addr_dst)]
        m.d.sync += self.fwd.eq(self.step & pending & (walk.addr_dst == wr_addr))
        count = Signal(32)
        with m.If(self.run_start):
            m.d.sync += count.eq(index_base)
        with m.Elif(self.step):
            m.d.sync += [count.eq(count + 1), self.index.eq(count)]
        is_rq = Cat(*(self.op == int(o) for o in REQUANTS)).any()
        m.d.comb += self.tail.eq(Mux(self.vec & is_rq & ~self.xent & ~self.adam,
                                     vec_tail(VecOp.REQUANT),
                                     MOVE_TAIL))
        return m
