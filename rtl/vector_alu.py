"""The vector ALU: the elementwise op of a VEC instruction (``sw_model/accel/vec.py``)
on one buffer word per cycle, between the MOVE unit's read and its write."""

from amaranth import *
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from fetta.sw_model.accel.hostmap import BUFFER_WORD_BITS
from fetta.sw_model.accel.timing import OUTPUT_STAGE_LATENCY
from fetta.sw_model.accel.vec import REQUANT_LATENCY, REQUANTS, VEC_SHIFT_MAX, VecOp

from .output_stage import OutputStage

__all__ = ["VectorAlu"]

WB = BUFFER_WORD_BITS


class VectorAlu(wiring.Component):
    """Computes ``sw_model.accel.vec.vec_alu`` on one element per cycle::

        out = saturate(out_bits, f(a, b))      f by ``op`` (``VecOp``)

    ``RELU`` ``max(a, 0)``; ``SHL`` ``a << shift`` (47 bits wide, then saturated);
    ``ADD`` ``a + b``; ``MASK`` ``b if a > 0 else 0``: combinational, ``out_valid``
    is ``valid`` (latency 0). ``REQUANT`` and ``RELU_REQ``: the CONTRACT's output
    stage (``rtl.output_stage.OutputStage``, 32-bit input, ``steady_seed``: the seed
    is constant during a VEC) on ``a`` sign-extended (``max(a, 0)`` for
    ``RELU_REQ``), dither index ``index``: ``REQUANT_LATENCY`` = 4 cycles. The write
    address and buffer travel with the element (``addr``/``buf`` in, ``out_addr``/``out_buf`` out), delayed like the data.

    Saturation: ``out_bits`` 2..16 gives the limits ``2**(out_bits-1) - 1`` and
    ``-2**(out_bits-1)``, compared against the wide result.

    Members:
        valid, a, b:          an element this cycle; the source word, the
                              destination's old word (ops that read it).
        addr, buf:            where the element's result goes.
        op, shift, rounding,
        out_bits, seed:       the VEC's fields, constant during the VEC.
        index:                the element's number (REQUANT's dither input).
        out, out_valid,
        out_addr, out_buf:    the result and its write.
    """

    def __init__(self, addr_bits: int):
        assert REQUANT_LATENCY == OUTPUT_STAGE_LATENCY == OutputStage.LATENCY
        self.addr_bits = addr_bits
        super().__init__({
            "valid": In(1), "a": In(signed(WB)), "b": In(signed(WB)),
            "addr": In(addr_bits), "buf": In(2),
            "op": In(4), "shift": In(range(VEC_SHIFT_MAX + 1)), "rounding": In(2),
            "out_bits": In(5), "seed": In(32), "index": In(32),
            "out": Out(signed(WB)), "out_valid": Out(1), "out_addr": Out(addr_bits),
            "out_buf": Out(2),
        })

    def elaborate(self, platform):
        m = Module()
        a, b = self.a, self.b

        # saturation limits of out_bits (2..16)
        hi = Signal(signed(WB + 1))
        p = Signal(5)
        m.d.comb += [p.eq(self.out_bits - 1), hi.eq((Const(1, WB + 1) << p) - 1)]
        lo = -hi - 1

        wide = Signal(signed(WB + VEC_SHIFT_MAX + 1))
        with m.Switch(self.op):
            with m.Case(VecOp.RELU):
                m.d.comb += wide.eq(Mux(a < 0, 0, a))
            with m.Case(VecOp.SHL):
                m.d.comb += wide.eq(a << self.shift)
            with m.Case(VecOp.ADD):
                m.d.comb += wide.eq(a + b)
            with m.Case(VecOp.MASK):
                m.d.comb += wide.eq(Mux(a > 0, b, 0))
        sat = Mux(wide > hi, hi, Mux(wide < lo, lo, wide))

        m.submodules.requant = rq = OutputStage(acc_bits=32, steady_seed=True)
        is_rq = Cat(*(self.op == int(o) for o in REQUANTS)).any()
        relu_in = (self.op == VecOp.RELU_REQ) & (a < 0)
        m.d.comb += [rq.acc.eq(Mux(relu_in, 0, a)), rq.valid.eq(self.valid & is_rq),
                     rq.shift.eq(self.shift),
                     rq.rounding.eq(self.rounding), rq.out_bits.eq(self.out_bits),
                     rq.seed.eq(self.seed), rq.index.eq(self.index)]
        # the write address and buffer, delayed with REQUANT's data
        addr, buf = self.addr, self.buf
        for i in range(REQUANT_LATENCY):
            addr_q = Signal.like(addr, name=f"addr_q{i}")
            buf_q = Signal(2, name=f"buf_q{i}")
            m.d.sync += [addr_q.eq(addr), buf_q.eq(buf)]
            addr, buf = addr_q, buf_q
        m.d.comb += [
            self.out.eq(Mux(is_rq, rq.out, sat)),
            self.out_valid.eq(Mux(is_rq, rq.out_valid, self.valid & ~is_rq)),
            self.out_addr.eq(Mux(is_rq, addr, self.addr)),
            self.out_buf.eq(Mux(is_rq, buf, self.buf)),
        ]
        return m
