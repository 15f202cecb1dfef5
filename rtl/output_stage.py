"""The output stage: shift, round, saturate (shared by every output lane of the array)."""

from amaranth import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from sw_model.fixedpoint import ROUNDING_MODES, check_acc_bits

from .dither import add_dither_hash

__all__ = ["OutputStage", "ROUNDING_CODES"]

# Run-time rounding code of each mode: the index in ROUNDING_MODES.
ROUNDING_CODES = {mode: code for code, mode in enumerate(ROUNDING_MODES)}
_FLOOR = ROUNDING_CODES["floor"]
_NEAREST_EVEN = ROUNDING_CODES["nearest-even"]
_STOCHASTIC = ROUNDING_CODES["stochastic"]

OUT_WIDTH = 16  # one buffer word


class OutputStage(wiring.Component):
    """Computes ``sw_model.fixedpoint.output_stage`` on an already-wrapped accumulator::

        out = saturate(out_bits, round(acc / 2**shift))

    with the rounding chosen at run time. Every mode is one formula,
    ``out = saturate(out_bits, (acc + addend) >> shift)`` with ``0 <= addend < 2**shift``:

    * floor (code 0):        ``addend = 0`` (arithmetic shift);
    * nearest-even (code 1): ``addend = 2**(shift-1) - 1 + bit shift of acc`` (0 when
      ``shift == 0``), i.e. round half to even;
    * stochastic (code 2):   ``addend = dither(seed, index, shift)``, the top ``shift``
      bits of ``dither_hash(seed, index)`` (shifted left when ``shift > 32``).

    Latency: ``LATENCY = 2`` cycles from ``valid`` to ``out_valid``; inputs are sampled
    every cycle (fully pipelined, one result per cycle).

    * stage 1 (registered): dither hash (seven chained 32-bit adds), dither selection
      and the rounding addend; ``acc``, ``shift`` and ``out_bits`` are delayed with it.
    * stage 2 (registered): ``acc + addend``, arithmetic right shift, saturation.

    Out-of-contract control codes get a defined, documented behaviour (the golden model
    rejects them): rounding code 3 acts as floor; ``out_bits`` below 2 acts as 2 and
    above 16 as 16; ``shift`` above ``acc_bits - 1`` (only representable when
    ``acc_bits`` is not a power of two) acts as ``acc_bits - 1``.

    Parameters:
        acc_bits: accumulator width W_acc, 8..48 (default 32).

    Members:
        acc:       In(signed(acc_bits)), the accumulated sum (already wrapped).
        valid:     In(1), ``acc`` and the controls below carry an element this cycle.
        shift:     In(range(acc_bits)), right shift 0..acc_bits-1.
        rounding:  In(2), rounding code (``ROUNDING_CODES``: floor 0, nearest-even 1,
                   stochastic 2).
        out_bits:  In(5), output width 2..16 (saturation range).
        seed:      In(32), dither seed.
        index:     In(32), flat row-major output index of the element (dither input).
        out:       Out(signed(16)), the result, sign-extended from ``out_bits``.
        out_valid: Out(1), ``valid`` delayed by ``LATENCY`` cycles.
    """

    LATENCY = 2

    def __init__(self, acc_bits: int = 32):
        self.acc_bits = check_acc_bits(acc_bits)
        super().__init__({
            "acc": In(signed(self.acc_bits)),
            "valid": In(1),
            "shift": In(range(self.acc_bits)),
            "rounding": In(2),
            "out_bits": In(5),
            "seed": In(32),
            "index": In(32),
            "out": Out(signed(OUT_WIDTH)),
            "out_valid": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        acc_bits = self.acc_bits
        max_shift = acc_bits - 1
        shift_shape = self.shift.shape()

        # -- stage 1: rounding addend ------------------------------------------------
        shift = Signal(shift_shape)
        if (1 << shift_shape.width) - 1 > max_shift:
            m.d.comb += shift.eq(Mux(self.shift > max_shift, max_shift, self.shift))
        else:
            m.d.comb += shift.eq(self.shift)

        # The dither, the top `shift` bits of the hash: place the hash at the top of a
        # `wide`-bit word (zeros below) and shift right by `wide - shift`. This is
        # hash >> (32 - shift) for shift <= 32 and hash << (shift - 32) above.
        wide = max(32, max_shift)
        hash_word = add_dither_hash(m, self.seed, self.index)
        placed = Cat(Const(0, wide - 32), hash_word)
        drop = Signal(range(wide + 1))
        m.d.comb += drop.eq(wide - shift)
        dither = Signal(max_shift)
        m.d.comb += dither.eq(placed >> drop)

        # Round half to even: 2**(shift-1) - 1, plus 1 when the kept LSB is odd.
        half_minus_1 = Signal(max_shift)
        m.d.comb += half_minus_1.eq((Const(1, acc_bits) << shift)[1:] - 1)
        kept_lsb = self.acc.as_unsigned().bit_select(shift, 1)
        nearest = Signal(max_shift)
        m.d.comb += nearest.eq(Mux(shift == 0, 0, half_minus_1 + kept_lsb))

        addend = Signal(max_shift)
        with m.Switch(self.rounding):
            with m.Case(_NEAREST_EVEN):
                m.d.comb += addend.eq(nearest)
            with m.Case(_STOCHASTIC):
                m.d.comb += addend.eq(dither)
            with m.Default():  # floor, and the reserved code 3
                m.d.comb += addend.eq(0)

        out_bits = Signal(range(2, OUT_WIDTH + 1))
        m.d.comb += out_bits.eq(Mux(self.out_bits < 2, 2,
                                    Mux(self.out_bits > OUT_WIDTH, OUT_WIDTH,
                                        self.out_bits)))

        s1_acc = Signal(signed(acc_bits))
        s1_addend = Signal(max_shift)
        s1_shift = Signal(shift_shape)
        s1_out_bits = Signal(range(2, OUT_WIDTH + 1))
        s1_valid = Signal()
        m.d.sync += [
            s1_acc.eq(self.acc),
            s1_addend.eq(addend),
            s1_shift.eq(shift),
            s1_out_bits.eq(out_bits),
            s1_valid.eq(self.valid),
        ]

        # -- stage 2: add, shift, saturate -------------------------------------------
        # acc + addend < 2**(acc_bits-1) + 2**(acc_bits-1): one extra bit holds it.
        total = Signal(signed(acc_bits + 1))
        m.d.comb += total.eq(s1_acc + s1_addend)
        rounded = Signal(signed(acc_bits + 1))
        m.d.comb += rounded.eq(total >> s1_shift)
        # hi = 2**(out_bits-1) - 1, lo = -2**(out_bits-1) = ~hi.
        sign_pos = Signal(range(OUT_WIDTH))
        m.d.comb += sign_pos.eq(s1_out_bits - 1)
        hi = Signal(unsigned(OUT_WIDTH - 1))
        m.d.comb += hi.eq((Const(1, OUT_WIDTH) << sign_pos) - 1)
        lo = Signal(signed(OUT_WIDTH))
        m.d.comb += lo.eq(-hi - 1)
        with m.If(rounded > hi):
            m.d.sync += self.out.eq(hi)
        with m.Elif(rounded < lo):
            m.d.sync += self.out.eq(lo)
        with m.Else():
            m.d.sync += self.out.eq(rounded)
        m.d.sync += self.out_valid.eq(s1_valid)
        return m
