"""The multiply-accumulate unit (PE) of the contraction engines."""

from amaranth import Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from fetta.sw_model.arith.fixedpoint import check_acc_bits, check_width

__all__ = ["MAC"]


class MAC(wiring.Component):
    """Signed multiply-accumulate with a wrap-around accumulator.

    Computes, on every clock edge::

        en  clear   acc (next)
        1   1       a*b                  (start a new sum)
        1   0       acc + a*b            (accumulate)
        0   x       acc                  (hold; ``clear`` acts only with ``en``)

    all reduced to ``acc_bits``-bit two's complement (wrap-around, the arithmetic
    contract of ``sw_model.arith.fixedpoint``), so the sum does not depend on the order of
    addition. The product is the full ``2*operand_bits``-bit signed product of a plain
    ``a * b``, which yosys maps to a hard multiplier (DSP) where the device has one.

    Latency: 1 cycle (``acc`` shows the result of the edge at which ``en`` was sampled).
    With ``pipeline=1`` the product is registered first (the DSP's output register on
    FPGAs): ``a`` and ``b`` are sampled one cycle *before* the ``en``/``clear`` they
    go with, so the caller delays its controls by one cycle; ``sum`` then adds the
    registered product (shorter multiply -> accumulate path, same results).

    Parameters:
        operand_bits: width of ``a`` and ``b``, 1..32 (default 16).
        acc_bits:     accumulator width W_acc, 8..48 (default 32).
        pipeline:     0 (default) or 1: register the product before the accumulate.

    Members:
        a:     In(signed(operand_bits)), activation operand.
        b:     In(signed(operand_bits)), weight operand.
        en:    In(1), add the product at this edge.
        clear: In(1), discard the old sum at this edge (see table above).
        acc:   Out(signed(acc_bits)), the registered accumulator (init 0).
        sum:   Out(signed(acc_bits)), combinational ``wrap((0 if clear else acc) + a*b)``:
               the value ``acc`` takes at the next edge when ``en`` is high. A CE can
               forward it without waiting a cycle.
    """

    def __init__(self, operand_bits: int = 16, acc_bits: int = 32, pipeline: int = 0):
        self.operand_bits = check_width(operand_bits, "operand_bits")
        self.acc_bits = check_acc_bits(acc_bits)
        if pipeline not in (0, 1) or isinstance(pipeline, bool):
            raise ValueError(f"pipeline={pipeline!r} out of range; allowed 0 or 1")
        self.pipeline = pipeline
        super().__init__({
            "a": In(signed(self.operand_bits)),
            "b": In(signed(self.operand_bits)),
            "en": In(1),
            "clear": In(1),
            "acc": Out(signed(self.acc_bits)),
            "sum": Out(signed(self.acc_bits)),
        })

    def elaborate(self, platform):
        m = Module()
        product = Signal(signed(2 * self.operand_bits))
        if self.pipeline:
            m.d.sync += product.eq(self.a * self.b)
        else:
            m.d.comb += product.eq(self.a * self.b)
        # Assigning to the acc_bits-wide `sum` truncates: that truncation is the wrap.
        m.d.comb += self.sum.eq(Mux(self.clear, 0, self.acc) + product)
        with m.If(self.en):
            m.d.sync += self.acc.eq(self.sum)
        return m
