"""The power-of-two (shift) multiply-accumulate unit: no multiplier."""

from amaranth import Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from fetta.sw_model.arith.fixedpoint import Pow2Code, check_acc_bits, check_width

__all__ = ["ShiftMAC"]


class ShiftMAC(wiring.Component):
    """Multiply-accumulate of a signed activation by a power-of-two weight code.

    The weight ``b`` is a ``sw_model.arith.fixedpoint.Pow2Code`` of ``pow2_bits`` bits, LSB
    first ``[exp : pow2_bits-1][sign : 1]``: ``exp == 0`` is the weight 0, ``exp = k > 0``
    is ``(-1)**sign * 2**(k-1)``. The product is ``±(a << (k-1))``, built from a barrel
    shifter and a conditional negation; there is no multiplier.

    A malformed "negative zero" code (``sign = 1``, ``exp = 0``), which the software
    ``Pow2Code`` rejects, is treated as the weight 0 in hardware.

    Accumulation, clear/enable table, wrap-around to ``acc_bits`` and latency are those
    of ``rtl.mac.MAC``::

        en & clear: acc <= p    en & ~clear: acc <= acc + p    ~en: acc holds

    Latency: 1 cycle.

    Parameters:
        operand_bits: width of the activation ``a``, 1..32 (default 16).
        pow2_bits:    width of the weight code ``b``, 2..6 (default 4).
        acc_bits:     accumulator width W_acc, 8..48 (default 32).

    Members:
        a:     In(signed(operand_bits)), activation.
        b:     In(unsigned(pow2_bits)), power-of-two weight code.
        en:    In(1), add the product at this edge.
        clear: In(1), discard the old sum at this edge.
        acc:   Out(signed(acc_bits)), the registered accumulator (init 0).
        sum:   Out(signed(acc_bits)), combinational ``wrap((0 if clear else acc) + p)``.
    """

    def __init__(self, operand_bits: int = 16, pow2_bits: int = 4, acc_bits: int = 32):
        self.operand_bits = check_width(operand_bits, "operand_bits")
        self.code = Pow2Code(check_width(pow2_bits, "pow2_bits", 2, 6))
        self.pow2_bits = self.code.bits
        self.acc_bits = check_acc_bits(acc_bits)
        super().__init__({
            "a": In(signed(self.operand_bits)),
            "b": In(self.pow2_bits),
            "en": In(1),
            "clear": In(1),
            "acc": Out(signed(self.acc_bits)),
            "sum": Out(signed(self.acc_bits)),
        })

    def elaborate(self, platform):
        m = Module()
        exp_bits = self.code.exp_bits
        exp = self.b[:exp_bits]
        negative = self.b[exp_bits]
        # Only the low acc_bits bits of the product reach the wrapped sum, so the
        # shifter and the negation are acc_bits wide.
        shifted = Signal(signed(self.acc_bits))
        m.d.comb += shifted.eq(self.a << (exp - 1)[:exp_bits])
        product = Signal(signed(self.acc_bits))
        with m.If(exp == 0):
            m.d.comb += product.eq(0)
        with m.Elif(negative):
            m.d.comb += product.eq(-shifted)
        with m.Else():
            m.d.comb += product.eq(shifted)
        m.d.comb += self.sum.eq(Mux(self.clear, 0, self.acc) + product)
        with m.If(self.en):
            m.d.sync += self.acc.eq(self.sum)
        return m
