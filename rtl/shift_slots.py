"""The shift slots: adaptive output shifts kept on chip, moved by the votes of the
instructions that name them (``sw_model/accel/shift_slots.py``)."""

from amaranth import *
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from fetta.sw_model.accel.config import AccelConfig
from fetta.sw_model.accel.hostmap import BUFFER_WORD_BITS
from fetta.sw_model.accel.shift_slots import (PENDING_BITS, SLOT_BITS, SLOT_SHIFT_BITS,
                                              VOTE_BITS, Vote, vote_thresholds)

__all__ = ["ShiftSlots"]


class ShiftSlots(wiring.Component):
    """``cfg.shift_slots`` slots of ``(shift, pending, gmax)``.

    Reads (combinational): ``c_shift`` is the shift of slot ``c_slot`` (the CONTRACT
    being run), ``v_shift`` that of ``v_slot`` (the VEC); slot 0 reads 0.

    Votes: ``end`` (one cycle, the max log's close) with the ending instruction's
    ``end_slot``, ``end_vote`` (``Vote``), ``end_bits`` (its out_bits) and ``end_max``
    (its largest |result word|): ``gather`` keeps ``gmax = max(gmax, end_max)``;
    ``close`` votes on ``m = max(gmax, end_max)`` — up when ``m > hi(out_bits)``,
    down when ``m < lo(out_bits)`` (``vote_thresholds`` of ``cfg.vote_up`` and
    ``cfg.vote_down``, a table over out_bits 2..16) — advances ``(shift, pending)``
    (``vote_count`` in a row move the shift by one within 0..acc_bits-1) and clears
    ``gmax``. Registered at the ``end`` edge.

    Host port: ``wr_en``, ``wr_slot`` (0-based), ``wr_data`` (``slot_word`` layout)
    set a slot (the top allows it while idle only); ``word[k]`` reads slot ``k+1``.
    ``moved`` bit ``k``: slot ``k+1``'s shift moved by a vote since the bit was last
    cleared (``clr_en`` with ``clr_mask``: its 1 bits cleared; a host write to a slot
    leaves the bits), so the host reads one word per program, not every slot.
    A host write and a vote to the same slot in one cycle cannot happen (votes end
    before DONE; writes need idle).

    Members: ``c_slot``, ``c_shift``, ``v_slot``, ``v_shift``, ``end``, ``end_slot``,
    ``end_vote``, ``end_bits``, ``end_max``, ``wr_en``, ``wr_slot``, ``wr_data``,
    ``word[shift_slots]``, ``moved``, ``clr_en``, ``clr_mask``.
    """

    def __init__(self, config: AccelConfig):
        self.config = cfg = config
        n = cfg.shift_slots
        assert n >= 1
        super().__init__({
            "c_slot": In(SLOT_BITS), "c_shift": Out(SLOT_SHIFT_BITS),
            "v_slot": In(SLOT_BITS), "v_shift": Out(SLOT_SHIFT_BITS),
            "end": In(1), "end_slot": In(SLOT_BITS), "end_vote": In(VOTE_BITS),
            "end_bits": In(5), "end_max": In(BUFFER_WORD_BITS),
            "wr_en": In(1), "wr_slot": In(range(n)), "wr_data": In(32),
            "word": Out(32).array(n),
            "moved": Out(n), "clr_en": In(1), "clr_mask": In(n),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        n = cfg.shift_slots
        W = BUFFER_WORD_BITS
        shift = [Signal(SLOT_SHIFT_BITS, name=f"shift{k + 1}") for k in range(n)]
        pend = [Signal(signed(PENDING_BITS), name=f"pending{k + 1}") for k in range(n)]
        gmax = [Signal(W, name=f"gmax{k + 1}") for k in range(n)]
        for k in range(n):
            m.d.comb += self.word[k].eq(Cat(shift[k], C(0, 8 - SLOT_SHIFT_BITS),
                                            pend[k], C(0, 8 - PENDING_BITS), gmax[k]))
        shifts = Array([C(0, SLOT_SHIFT_BITS)] + shift)
        m.d.comb += [self.c_shift.eq(shifts[self.c_slot]), self.v_shift.eq(shifts[self.v_slot])]

        # the vote: thresholds by out_bits (out of range reads 0/0: never reached,
        # such an instruction was refused)
        his = Array(C(vote_thresholds(b, cfg.vote_up, cfg.vote_down)[0] if 2 <= b <= 16
                      else 0, W) for b in range(32))
        los = Array(C(vote_thresholds(b, cfg.vote_up, cfg.vote_down)[1] if 2 <= b <= 16
                      else 0, W) for b in range(32))
        sel = self.end_slot - 1
        g = Array(gmax)[sel]
        s = Array(shift)[sel]
        p = Array(pend)[sel]
        mx = Signal(W)
        m.d.comb += mx.eq(Mux(g > self.end_max, g, self.end_max))
        up = mx > his[self.end_bits]
        down = mx < los[self.end_bits]
        p1 = Signal(signed(PENDING_BITS + 1))
        with m.If(up):
            m.d.comb += p1.eq(Mux(p > 0, p + 1, 1))
        with m.Elif(down):
            m.d.comb += p1.eq(Mux(p < 0, p - 1, -1))
        with m.Else():
            m.d.comb += p1.eq(0)
        votes = cfg.vote_count
        new_s, new_p = Signal.like(s), Signal(signed(PENDING_BITS))
        with m.If(p1 >= votes):
            m.d.comb += [new_s.eq(Mux(s < cfg.acc_bits - 1, s + 1, s)), new_p.eq(0)]
        with m.Elif(p1 <= -votes):
            m.d.comb += [new_s.eq(Mux(s > 0, s - 1, 0)), new_p.eq(0)]
        with m.Else():
            m.d.comb += [new_s.eq(s), new_p.eq(p1)]

        # One update per cycle, computed once: the host's write or the vote's new
        # (shift, pending, gmax); each slot only decodes whether it is the one
        # (a flip-flop enable), so the slots cost no per-slot data multiplexers.
        u_s, u_p, u_g = Signal.like(s), Signal(signed(PENDING_BITS)), Signal(W)
        u_slot = Signal(range(max(n, 2)))
        u_en = Signal()
        with m.If(self.wr_en):
            m.d.comb += [u_s.eq(self.wr_data[0:SLOT_SHIFT_BITS]),
                         u_p.eq(self.wr_data[8:8 + PENDING_BITS]),
                         u_g.eq(self.wr_data[16:32]), u_slot.eq(self.wr_slot), u_en.eq(1)]
        with m.Elif(self.end & (self.end_slot != 0) & (self.end_slot <= n)):
            m.d.comb += [u_slot.eq(sel), u_en.eq((self.end_vote == Vote.GATHER) |
                                                 (self.end_vote == Vote.CLOSE))]
            with m.If(self.end_vote == Vote.GATHER):
                m.d.comb += [u_s.eq(s), u_p.eq(p), u_g.eq(mx)]
            with m.Else():
                m.d.comb += [u_s.eq(new_s), u_p.eq(new_p), u_g.eq(0)]
        for k in range(n):
            with m.If(u_en & (u_slot == k)):
                m.d.sync += [shift[k].eq(u_s), pend[k].eq(u_p), gmax[k].eq(u_g)]
        # moved: a closing vote that changed its slot's shift (never with a host write
        # or a clear: both need idle)
        moved = Signal(n)
        m.d.comb += self.moved.eq(moved)
        with m.If(self.clr_en):
            m.d.sync += moved.eq(moved & ~self.clr_mask)
        with m.Elif(~self.wr_en & u_en & (self.end_vote == Vote.CLOSE) & (new_s != s)):
            m.d.sync += moved.bit_select(u_slot, 1).eq(1)
        return m
