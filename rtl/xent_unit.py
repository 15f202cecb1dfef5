"""The softmax cross-entropy gradient of one row of logits, bit-exact with the recipe's
``sw_model.train.quant_train.softmax_xent_grad`` (REFERENCES.md §2)."""

from amaranth import *
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from fetta.sw_model.arith.fixedpoint import EXP2_Q15, LOG2E_Q14

from .divider import SeqDivider

__all__ = ["XentRow", "xent_row_cycles", "N_MAX", "S_MIN", "S_MAX", "C1_MAX"]

N_MAX = 16            # classes per row
S_MIN, S_MAX = -7, 31  # the log2-domain shift s = frac - 2 of the logits' frac
C1_MAX = 12           # c - 1, c = ceil(log2 batch): batches up to 8,192
D1_BITS, D1_DIV = 31, 21      # (e << 15) // sum: e < 2**16, sum < 16 * 2**16
D2_BITS, D2_DIV = 30, 14      # (|num| + B // 2) // B: |num| <= 2**15 << 12, B < 2**14
EMIT = 1


def xent_row_cycles(n: int) -> int:
    """Cycles from ``start`` to ``done`` of a row of ``n`` classes whose logits arrive
    one per cycle: ``n`` loading, ``n`` exponentials, then per class the two divisions
    (``SeqDivider.LATENCY`` each, started the cycle before) and the emit cycle."""
    per = 1 + SeqDivider.LATENCY(D1_BITS) + 1 + SeqDivider.LATENCY(D2_BITS) + EMIT
    return 1 + n + n + n * per


class XentRow(wiring.Component):
    """``g[j]`` of one row of logits ``z[0..n-1]`` (codes with frac ``f``; ``s = f - 2``)
    with label ``label`` in a batch of ``bsz`` rows (``c1 = ceil(log2 bsz) - 1``)::

        m  = max_j z[j]                         (argmax: the first maximum)
        t  = ((z[j] - m) * LOG2E_Q14) >> s      (<< -s when s < 0; log2 domain, Q16)
        e  = EXP2_Q15[(t & 0xFFFF) >> 8] >> -(t >> 16)
        p  = (e << 15) // sum_j e               (Q15 probability)
        num = (p - (j == label) * 2**15) << c1
        g  = saturate(out_bits, sign(num) * ((|num| + bsz // 2) // bsz))

    Timing: ``start`` latches the parameters; the unit takes ``z`` while ``in_ready``
    (one per cycle with ``in_valid``, ``n`` of them), computes the ``n``
    exponentials one per cycle, then per class two sequential divisions
    (``rtl/divider.py``) and emits ``g`` with ``out_valid`` and ``out_index``;
    ``done`` with ``correct`` (argmax == label) with the last ``out_valid``
    (``out_g``, ``out_index`` and ``correct`` are registered and hold until replaced). With the logits
    arriving every cycle, ``start`` to ``done`` is ``xent_row_cycles(n)``.

    Members: ``start``, ``n`` (2..16), ``s`` (-7..31), ``label``, ``c1`` (0..12),
    ``bsz`` (2..8191), ``out_bits`` (2..16), ``in_ready``, ``in_valid``, ``in_z``,
    ``out_valid``, ``out_g``, ``out_index``, ``busy``, ``done``, ``correct``.
    """

    def __init__(self):
        super().__init__({
            "start": In(1), "n": In(range(N_MAX + 1)), "s": In(signed(6)),
            "label": In(range(N_MAX)), "c1": In(range(C1_MAX + 1)),
            "bsz": In(D2_DIV), "out_bits": In(5),
            "in_ready": Out(1), "in_valid": In(1), "in_z": In(signed(16)),
            "out_valid": Out(1), "out_g": Out(signed(16)), "out_index": Out(range(N_MAX)),
            "busy": Out(1), "done": Out(1), "correct": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.div1 = d1 = SeqDivider(D1_BITS, D1_DIV)
        m.submodules.div2 = d2 = SeqDivider(D2_BITS, D2_DIV)
        n, s, label = Signal.like(self.n), Signal.like(self.s), Signal.like(self.label)
        c1, bsz, out_bits = Signal.like(self.c1), Signal.like(self.bsz), Signal.like(self.out_bits)
        zr = Array(Signal(signed(16), name=f"z{j}") for j in range(N_MAX))
        er = Array(Signal(17, name=f"e{j}") for j in range(N_MAX))
        mx = Signal(signed(16))
        amax = Signal(range(N_MAX))
        total = Signal(21)
        k = Signal(range(N_MAX + 1))
        last = k == n - 1

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
        p = d1.q[:17]
        pl = Signal(signed(18))
        m.d.comb += pl.eq(p - Mux(k == label, 1 << 15, 0))
        num = Signal(signed(31))
        m.d.comb += num.eq(pl << c1)
        mag = Signal(30)
        m.d.comb += mag.eq(Mux(num < 0, -num, num))
        g = Signal(signed(31))
        m.d.comb += g.eq(Mux(num < 0, -d2.q.as_signed(), d2.q))
        hi = Signal(signed(17))
        m.d.comb += hi.eq((C(1, 17) << (out_bits - 1)[:4]) - 1)
        sat = Mux(g > hi, hi, Mux(g < -hi - 1, -hi - 1, g))

        m.d.comb += [d1.a.eq(er[k] << 15), d1.d.eq(total),
                     d2.a.eq(mag + (bsz >> 1)), d2.d.eq(bsz)]
        m.d.sync += [self.done.eq(0), self.out_valid.eq(0)]

        with m.FSM(name="xent"):
            m.d.comb += self.busy.eq(1)
            with m.State("IDLE"):
                m.d.comb += self.busy.eq(0)
                with m.If(self.start):
                    m.d.sync += [n.eq(self.n), s.eq(self.s), label.eq(self.label),
                                 c1.eq(self.c1), bsz.eq(self.bsz),
                                 out_bits.eq(self.out_bits), k.eq(0), total.eq(0)]
                    m.next = "LOAD"
            with m.State("LOAD"):
                m.d.comb += self.in_ready.eq(1)
                with m.If(self.in_valid):
                    m.d.sync += [zr[k].eq(self.in_z), k.eq(k + 1)]
                    with m.If((k == 0) | (self.in_z > mx)):
                        m.d.sync += [mx.eq(self.in_z), amax.eq(k)]
                    with m.If(last):
                        m.d.sync += k.eq(0)
                        m.next = "EXP"
            with m.State("EXP"):
                m.d.sync += [er[k].eq(e), total.eq(total + e), k.eq(k + 1)]
                with m.If(last):
                    m.d.sync += k.eq(0)
                    m.next = "DIV1"
            with m.State("DIV1"):
                m.d.comb += d1.start.eq(1)
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
                    m.d.sync += [self.done.eq(1), self.correct.eq(amax == label)]
                    m.next = "IDLE"
                with m.Else():
                    m.next = "DIV1"
        return m
