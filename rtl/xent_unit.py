"""The XENT unit: the softmax cross-entropy gradient of rows of logits, bit-exact with
``sw_model.arith.fixedpoint.softmax_xent_rows`` (the recipe's arithmetic; the
instruction is ``sw_model/accel/xent.py``)."""

from amaranth import *
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from fetta.sw_model.accel.xent import (BSZ_MAX, DIV1_BITS, DIV2_BITS, DIV_PER_CYCLE, N_MAX,
                                       XENT_LOSS_BITS, div_cycles)
from fetta.sw_model.arith.fixedpoint import EXP2_Q15, LOG2_Q16, LOG2E_Q14

from .divider import SeqDivider

__all__ = ["XentRow"]

SUM_BITS = 21          # sum of up to 16 exponentials < 2**16 each
BSZ_BITS = 14


class XentRow(wiring.Component):
    """Rows of ``n`` logits ``z`` (frac ``s + 2``) with targets ``y`` (nonzero: the
    label), batch ``bsz`` (``c = ceil(log2 bsz)``)::

        m  = max_j z[j]                         (amax: the first maximum)
        t  = ((z[j] - m) * LOG2E_Q14) >> s      (<< -s when s < 0; log2 domain, Q16)
        e  = EXP2_Q15[(t & 0xFFFF) >> 8] >> -(t >> 16)
        p  = (e << 15) // sum_j e               (Q15 probability)
        num = (p - 2**15 [y[j] != 0]) << (c - 1)
        g  = saturate(out_bits, sign(num) * ((|num| + bsz // 2) // bsz))
        loss = sum over targets j of log2_q16(sum_j e) - t[j]   (bits, Q16)

    While ``go`` is high the unit runs row after row. A row: one start cycle (the
    parameters ``n``, ``s``, ``bsz``, ``out_bits`` are latched); ``n`` read requests
    (``step_req``, one per cycle: the caller issues the read that cycle), whose data
    comes back the next cycle with ``in_valid`` (``in_z``, ``in_y``; ``ld_index`` is
    the class it is stored as); ``n`` exponentials, one per cycle; per class the two
    divisions (``rtl/divider.py``, each started in a cycle of its own) and an emit
    cycle: ``out_valid`` with ``out_g`` and ``out_index`` the next cycle. ``done``
    (with ``correct``: ``y[amax] != 0``, and ``loss``: the row's cross-entropy,
    ``sw_model.arith.fixedpoint.xent_loss_rows``, summed while the row runs: ``-t`` of
    a target in its exponential's cycle, ``log2_q16`` of the sum in its division's
    start cycle) with the row's last ``out_valid``. Cycles per row:
    ``sw_model.accel.xent.xent_row_cycles(n)``.

    With ``labels`` the targets are a label index, the row's first ``in_y``
    (``y[j] = (j == label)``; an index outside 0..n-1 gives the row no target).

    Members: ``go``, ``n`` (2..16), ``s`` (-7..31), ``bsz`` (2..8192), ``out_bits``
    (2..16), ``labels``, ``step_req``, ``in_valid``, ``in_z``, ``in_y``, ``ld_index``,
    ``out_valid``, ``out_g``, ``out_index``, ``busy``, ``done``, ``correct``, ``loss``.
    """

    def __init__(self):
        super().__init__({
            "go": In(1), "n": In(range(N_MAX + 1)), "s": In(signed(6)),
            "bsz": In(BSZ_BITS), "out_bits": In(5), "labels": In(1),
            "step_req": Out(1), "in_valid": In(1), "in_z": In(signed(16)),
            "in_y": In(signed(16)), "ld_index": Out(range(N_MAX)),
            "out_valid": Out(1), "out_g": Out(signed(16)), "out_index": Out(range(N_MAX)),
            "busy": Out(1), "done": Out(1), "correct": Out(1),
            "loss": Out(XENT_LOSS_BITS),
        })

    def elaborate(self, platform):
        m = Module()
        assert BSZ_MAX < 1 << BSZ_BITS
        m.submodules.div1 = d1 = SeqDivider(DIV1_BITS, SUM_BITS, DIV_PER_CYCLE)
        m.submodules.div2 = d2 = SeqDivider(DIV2_BITS, BSZ_BITS, DIV_PER_CYCLE)
        assert SeqDivider.LATENCY(DIV1_BITS, DIV_PER_CYCLE) == div_cycles(DIV1_BITS)
        assert SeqDivider.LATENCY(DIV2_BITS, DIV_PER_CYCLE) == div_cycles(DIV2_BITS)
        n, s = Signal.like(self.n), Signal.like(self.s)
        bsz, out_bits = Signal.like(self.bsz), Signal.like(self.out_bits)
        labels = Signal()
        label = Signal(signed(16))          # the row's label index (``labels``)
        zr = Array(Signal(signed(16), name=f"z{j}") for j in range(N_MAX))
        er = Array(Signal(17, name=f"e{j}") for j in range(N_MAX))
        yb = Signal(N_MAX)
        mx = Signal(signed(16))
        amax = Signal(range(N_MAX))
        total = Signal(SUM_BITS)
        k = Signal(range(N_MAX + 1))          # class being loaded / computed / emitted
        req = Signal(range(N_MAX + 1))        # read requests made in this row
        last = k == n - 1
        m.d.comb += self.ld_index.eq(k)

        # c - 1 = bit_length(bsz - 1) - 1 (bsz >= 2)
        bm1 = Signal(BSZ_BITS)
        m.d.comb += bm1.eq(bsz - 1)
        c1 = Signal(range(BSZ_BITS))
        for b in range(BSZ_BITS):
            with m.If(bm1[b]):
                m.d.comb += c1.eq(b)

        # the exponential of class k (combinational)
        d = Signal(signed(17))
        m.d.comb += d.eq(zr[k] - mx)
        prod = Signal(signed(32))
        m.d.comb += prod.eq(d * LOG2E_Q14)
        t = Signal(signed(40))
        with m.If(s >= 0):
            m.d.comb += t.eq(prod >> s.as_unsigned()[:5])
        with m.Else():
            m.d.comb += t.eq(prod << (-s).as_unsigned()[:3])
        ip = t[16:].as_signed()                 # <= 0
        table = Array(Const(int(v), 17) for v in EXP2_Q15)
        e = Signal(17)
        with m.If(ip < -16):
            m.d.comb += e.eq(0)
        with m.Else():
            m.d.comb += e.eq(table[t[8:16]] >> (-ip).as_unsigned()[:5])

        # the gradient of class k from the first quotient p (combinational)
        pl = Signal(signed(18))
        m.d.comb += pl.eq(d1.q[:17] - Mux(yb.bit_select(k, 1), 1 << 15, 0))
        num = Signal(signed(32))
        m.d.comb += num.eq(pl << c1)
        mag = Signal(DIV2_BITS)
        m.d.comb += mag.eq(Mux(num < 0, -num, num))
        g = Signal(signed(DIV2_BITS + 2))
        m.d.comb += g.eq(Mux(num < 0, -d2.q.as_signed(), d2.q))
        hi = Signal(signed(17))
        m.d.comb += hi.eq((C(1, 17) << (out_bits - 1)[:4]) - 1)
        sat = Mux(g > hi, hi, Mux(g < -hi - 1, -hi - 1, g))

        m.d.comb += [d1.a.eq(er[k] << 15), d1.d.eq(total),
                     d2.a.eq(mag + (bsz >> 1)), d2.d.eq(bsz)]
        # log2_q16(total): the leading one's position p (15..20: total >= 2**15, the
        # row maximum's e) and the 8 bits below it looked up in LOG2_Q16
        lg_idx = Signal(8)
        lg_int = Signal(3)
        for p in range(15, SUM_BITS):
            with m.If(total[p]):
                m.d.comb += [lg_idx.eq(total[p - 8:p]), lg_int.eq(p - 15)]
        lg_table = Array(Const(int(v), 16) for v in LOG2_Q16)
        lg = Signal(19)
        m.d.comb += lg.eq(Cat(lg_table[lg_idx], lg_int))
        row_loss = Signal(XENT_LOSS_BITS)
        m.d.comb += self.loss.eq(row_loss)

        m.d.sync += [self.done.eq(0), self.out_valid.eq(0)]

        with m.FSM(name="xent"):
            m.d.comb += self.busy.eq(1)
            with m.State("IDLE"):
                m.d.comb += self.busy.eq(0)
                with m.If(self.go):
                    m.d.sync += [n.eq(self.n), s.eq(self.s), bsz.eq(self.bsz),
                                 out_bits.eq(self.out_bits), labels.eq(self.labels),
                                 k.eq(0), req.eq(0),
                                 total.eq(0), yb.eq(0), row_loss.eq(0)]
                    m.next = "LOAD"
            with m.State("LOAD"):
                m.d.comb += self.step_req.eq(req < n)
                with m.If(req < n):
                    m.d.sync += req.eq(req + 1)
                with m.If(self.in_valid):
                    m.d.sync += [zr[k].eq(self.in_z), k.eq(k + 1)]
                    lab = Mux(k == 0, self.in_y, label)
                    m.d.sync += yb.bit_select(k, 1).eq(
                        Mux(labels, lab == k, self.in_y != 0))
                    with m.If(k == 0):
                        m.d.sync += label.eq(self.in_y)
                    with m.If((k == 0) | (self.in_z > mx)):
                        m.d.sync += [mx.eq(self.in_z), amax.eq(k)]
                    with m.If(last):
                        m.d.sync += k.eq(0)
                        m.next = "EXP"
            with m.State("EXP"):
                m.d.sync += [er[k].eq(e), total.eq(total + e), k.eq(k + 1)]
                with m.If(yb.bit_select(k, 1)):
                    m.d.sync += row_loss.eq(row_loss - t)
                with m.If(last):
                    m.d.sync += k.eq(0)
                    m.next = "DIV1"
            with m.State("DIV1"):
                m.d.comb += d1.start.eq(1)
                with m.If(yb.bit_select(k, 1)):
                    m.d.sync += row_loss.eq(row_loss + lg)
                m.next = "WAIT1"
            with m.State("WAIT1"):
                with m.If(d1.done):
                    m.next = "DIV2"
            with m.State("DIV2"):
                m.d.comb += d2.start.eq(1)
                m.next = "WAIT2"
            with m.State("WAIT2"):
                with m.If(d2.done):
                    m.next = "EMIT"
            with m.State("EMIT"):
                m.d.sync += [self.out_valid.eq(1), self.out_g.eq(sat),
                             self.out_index.eq(k), k.eq(k + 1)]
                with m.If(last):
                    m.d.sync += [self.done.eq(1), self.correct.eq(yb.bit_select(amax, 1))]
                    m.next = "IDLE"
                with m.Else():
                    m.next = "DIV1"
        return m
