"""The multiply-accumulate unit (PE) of the contraction engines."""

from amaranth import ClockSignal, Instance, Module, Mux, ResetSignal, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from sw_model.fixedpoint import check_acc_bits, check_width

__all__ = ["MAC"]


class MAC(wiring.Component):
    """Signed multiply-accumulate with a wrap-around accumulator.

    Computes, on every clock edge::

        en  clear   acc (next)
        1   1       a*b                  (start a new sum)
        1   0       acc + a*b            (accumulate)
        0   x       acc                  (hold; ``clear`` acts only with ``en``)

    all reduced to ``acc_bits``-bit two's complement (wrap-around, the arithmetic
    contract of ``sw_model.fixedpoint``), so the sum does not depend on the order of
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

    def uses_sb_mac16(self, platform) -> bool:
        """On an iCE40 platform a 16x16 -> 32 MAC without the product register is one
        SB_MAC16 holding the accumulator (see ``elaborate``)."""
        return (getattr(platform, "family", None) == "iCE40" and self.pipeline == 0
                and self.acc_bits == 32 and self.operand_bits <= 16)

    def elaborate(self, platform):
        m = Module()
        if self.uses_sb_mac16(platform):
            return self._elaborate_sb_mac16(m)
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

    def _elaborate_sb_mac16(self, m):
        """The iCE40 mapping, instantiated because yosys' DSP inference keeps a
        clearable accumulator's register in logic cells (32 flip-flops per MAC). The
        SB_MAC16 multiplies ``a*b`` (signed 16x16), adds the 32-bit product to its C:D
        inputs in its two 16-bit adders (carry from the low into the high half) and
        registers the result in its output register, held while ``en`` is low
        (OHOLD) and cleared by the domain reset (ORST; the register has no power-up
        value of its own in the cell model); the output is that register, ``acc``. C:D carry the feedback
        ``0 if clear else acc`` (32 LUT4s), so the table above holds exactly. ``sum``
        stays the combinational expression (it would need a second multiplier; the
        accelerator does not use it). Checked against the golden cycle model in
        Icarus with yosys' SB_MAC16 simulation model (``tests/rtl/test_mac.py``)."""
        feedback = Signal(32)
        m.d.comb += feedback.eq(Mux(self.clear, 0, self.acc))
        out = Signal(32)
        a16 = Signal(signed(16))
        b16 = Signal(signed(16))
        m.d.comb += [a16.eq(self.a), b16.eq(self.b)]
        hold = ~self.en
        m.submodules.dsp = Instance(
            "SB_MAC16",
            p_NEG_TRIGGER=0, p_C_REG=0, p_A_REG=0, p_B_REG=0, p_D_REG=0,
            p_TOP_8x8_MULT_REG=0, p_BOT_8x8_MULT_REG=0,
            p_PIPELINE_16x16_MULT_REG1=0, p_PIPELINE_16x16_MULT_REG2=0,
            p_TOPOUTPUT_SELECT=1, p_TOPADDSUB_LOWERINPUT=2, p_TOPADDSUB_UPPERINPUT=1,
            p_TOPADDSUB_CARRYSELECT=2,
            p_BOTOUTPUT_SELECT=1, p_BOTADDSUB_LOWERINPUT=2, p_BOTADDSUB_UPPERINPUT=1,
            p_BOTADDSUB_CARRYSELECT=0,
            p_MODE_8x8=0, p_A_SIGNED=1, p_B_SIGNED=1,
            i_CLK=ClockSignal(), i_CE=1,
            i_A=a16, i_B=b16, i_C=feedback[16:32], i_D=feedback[0:16],
            i_AHOLD=0, i_BHOLD=0, i_CHOLD=0, i_DHOLD=0,
            i_IRSTTOP=0, i_IRSTBOT=0, i_ORSTTOP=ResetSignal(), i_ORSTBOT=ResetSignal(),
            i_OLOADTOP=0, i_OLOADBOT=0, i_ADDSUBTOP=0, i_ADDSUBBOT=0,
            i_OHOLDTOP=hold, i_OHOLDBOT=hold,
            i_CI=0, i_ACCUMCI=0, i_SIGNEXTIN=0,
            o_O=out)
        m.d.comb += [self.acc.eq(out), self.sum.eq(feedback + self.a * self.b)]
        return m
