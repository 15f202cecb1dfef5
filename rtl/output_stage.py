"""The output stage: shift, round, saturate (shared by every output lane of the array)."""

from amaranth import Cat, Const, Module, Mux, Signal, signed
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

    with the rounding chosen at run time. Every mode is
    ``out = saturate(out_bits, (acc + addend) >> shift)`` with ``0 <= addend < 2**shift``
    (floor: 0; nearest-even: ``2**(shift-1) - 1 + bit shift of acc``; stochastic: the
    dither, the top ``shift`` bits of ``dither_hash(seed, index)``, shifted left when
    ``shift > 32``). The hardware splits the accumulator at the binary point instead of
    adding a shifted addend::

        q = acc >> shift                    (the floor; arithmetic shift)
        T = bits [shift-32, shift) of acc   (the fraction's top 32 bits, zeros below bit 0)
        (acc + addend) >> shift == q + c,   c = the carry out of the fraction

    * floor (code 0, and the reserved code 3): ``c = 0``;
    * nearest-even (code 1): ``c = g & (q[0] | sticky)``, ``g = acc[shift-1]`` (0 for
      shift 0) and ``sticky = (acc & (2**(shift-1) - 1)) != 0``;
    * stochastic (code 2): ``c = (hash + T) >> 32``, the carry of a 32-bit add. (The
      fraction ``f = acc mod 2**shift`` and the dither ``d`` carry iff
      ``f + d >= 2**shift``. For ``shift <= 32``, ``T = f << (32 - shift)`` has zeros
      where ``d = hash >> (32 - shift)`` dropped hash bits, so ``T + hash`` carries
      into ``2**32`` exactly when ``f + d`` does; for ``shift > 32``,
      ``d = hash << (shift - 32)`` has zeros under the bits of ``f`` below ``T``, which
      therefore cannot carry.)

    Saturation needs no wide comparator: both candidates are saturated in advance,
    ``R0 = saturate(q)`` and ``R1 = saturate(q + 1)``, from ``q``'s low 16 bits (where
    ``q + 1`` is a 16-bit increment), one flag "bits 16.. of ``q`` are copies of its
    sign", and masks decoded from ``out_bits``; the last stage picks ``R1`` if ``c``.

    Latency: ``LATENCY = 4`` cycles from ``valid`` to ``out_valid``; inputs are sampled
    every cycle (fully pipelined, one result per cycle; ``valid`` travels with the data).
    Every register-to-register path holds at most two carry chains:

    * stage 1: hash steps ``init`` (``(seed ^ golden) + index``) and the first
      ``x += x << 10`` [2 adders]; in parallel, the clamped controls and one barrel
      shift ``Cat(0 x 32, acc) >> shift`` giving ``T`` and ``q[0:16]``, the flag
      ``q[16:]`` all sign bits, and (``acc_bits > 33``) the sticky bits below ``T``.
    * stage 2: hash ``^= >> 6``, ``+= << 3``, ``^= >> 11``, ``+= << 15`` [2 adders];
      in parallel the flags "q fits", "q + 1 fits" (16-bit masked reductions), the
      saturation value and the nearest-even carry.
    * stage 3: hash ``^= seed``, ``+= << 10``, ``^= >> 6``, ``+= << 3`` [2 adders];
      in parallel ``q + 1`` (16 bits), ``R0`` and ``R1``.
    * stage 4: hash ``^= >> 11``, ``+= << 15``, then the carry of ``hash + T``
      [2 adders]; ``out = R1 if c else R0`` is the output register.

    Only ``valid``'s pipeline and the outputs have a reset; the datapath registers are
    reset-less (their initial value is 0).

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

    LATENCY = 4

    # Hash pipeline register, after this rtl.dither.HASH_STEPS index (the seed's second
    # use, so no seed register is needed); the finished hash is registered after stage 2.
    HASH_CUTS = (6,)

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

        # -- stage 1: hash up to the seed fold; controls ----------------------------------
        hash_x = add_dither_hash(m, self.seed, self.index, cuts=self.HASH_CUTS)
        shift = Signal(shift_shape)
        if (1 << shift_shape.width) - 1 > max_shift:
            m.d.comb += shift.eq(Mux(self.shift > max_shift, max_shift, self.shift))
        else:
            m.d.comb += shift.eq(self.shift)
        # out_bits - 1, clamped to 1..15: the position of the output's sign bit.
        sign_pos = Signal(range(OUT_WIDTH))
        m.d.comb += sign_pos.eq(Mux(self.out_bits < 2, 1,
                                    Mux(self.out_bits > OUT_WIDTH, OUT_WIDTH - 1,
                                        self.out_bits - 1)))
        s1_acc = Signal(signed(acc_bits), reset_less=True)
        s1_shift = Signal(shift_shape, reset_less=True)
        s1_sign_pos = Signal(range(OUT_WIDTH), reset_less=True)
        s1_ne = Signal(reset_less=True)
        s1_st = Signal(reset_less=True)
        s1_valid = Signal()
        m.d.sync += [
            s1_acc.eq(self.acc),
            s1_shift.eq(shift),
            s1_sign_pos.eq(sign_pos),
            s1_ne.eq(self.rounding == _NEAREST_EVEN),
            s1_st.eq(self.rounding == _STOCHASTIC),
            s1_valid.eq(self.valid),
        ]

        # -- stage 2: rest of the hash; barrel shift -------------------------------------
        shift = s1_shift
        acc = s1_acc
        # Cat(0 x 32, acc), acc sign-extended to 17 bits at least, shifted right
        # (arithmetic): bits [0:32] are T and bits [32:48] are q[0:16].
        ext_bits = max(acc_bits, OUT_WIDTH + 1)
        acc_ext = Signal(signed(ext_bits))
        m.d.comb += acc_ext.eq(acc)
        value = Signal(signed(32 + ext_bits))
        m.d.comb += value.eq(Cat(Const(0, 32), acc_ext))
        n = shift_shape.width
        for k in range(n):
            keep = min(32 + OUT_WIDTH + (1 << n) - (1 << (k + 1)), len(value))
            step = Signal(keep, name=f"shift_by_{1 << k}")
            m.d.comb += step.eq(Mux(shift[k], value >> (1 << k), value)[:keep])
            value = step.as_signed() if keep == len(value) else step
        shifted = Signal(32 + OUT_WIDTH)
        m.d.comb += shifted.eq(value[:32 + OUT_WIDTH])
        sign = acc[-1]
        # q[16:] all copies of the sign bit: acc's bits at and above shift + 16 are.
        if acc_bits > OUT_WIDTH:
            high = (acc.as_unsigned() ^ sign.replicate(acc_bits))[OUT_WIDTH:]
            high_mask = (Const(-1, len(high)) << shift)[:len(high)]
            high_ok = (high & high_mask) == 0
        else:
            high_ok = Const(1)
        # acc's bits below T (only when shift can exceed 32): nearest-even's sticky part.
        if max_shift > 32:
            low_w = max_shift - 32
            low_shift = Signal(range(low_w + 1))
            m.d.comb += low_shift.eq(Mux(shift > 32, shift - 32, 0))
            low_mask = ~(Const(-1, low_w) << low_shift)[:low_w]
            sticky_low = (acc[:low_w] & low_mask) != 0
        else:
            sticky_low = Const(0)
        t = shifted[:32]
        q = shifted[32:]
        guard = t[31]
        sticky = (t[:31] != 0) | sticky_low

        s2_hash = Signal(32, reset_less=True)
        s2_t = Signal(32, reset_less=True)
        s2_d = Signal(OUT_WIDTH, reset_less=True)
        s2_sign = Signal(reset_less=True)
        s2_high_ok = Signal(reset_less=True)
        s2_sign_pos = Signal(range(OUT_WIDTH), reset_less=True)
        s2_c = Signal(reset_less=True)  # the carry of the non-stochastic modes
        s2_st = Signal(reset_less=True)
        s2_valid = Signal()
        m.d.sync += [
            s2_hash.eq(hash_x),
            s2_t.eq(t),
            s2_d.eq(q ^ sign.replicate(OUT_WIDTH)),
            s2_sign.eq(sign),
            s2_high_ok.eq(high_ok),
            s2_sign_pos.eq(s1_sign_pos),
            s2_c.eq(s1_ne & guard & (q[0] | sticky)),
            s2_st.eq(s1_st),
            s2_valid.eq(s1_valid),
        ]

        # -- stage 3: stochastic carry; saturated candidates R0 = sat(q), R1 = sat(q + 1)
        # below: the bits under the output's sign bit p = sign_pos; at_p: bit p.
        below = Signal(OUT_WIDTH)
        at_p = Signal(OUT_WIDTH)
        m.d.comb += [
            below.eq(Cat(s2_sign_pos > i for i in range(OUT_WIDTH))),
            at_p.eq(Cat(s2_sign_pos == i for i in range(OUT_WIDTH))),
        ]
        # d = q ^ sign (non-negative): q fits iff d < 2**p (and q's bits 16.. are sign).
        d = s2_d
        s_rep = s2_sign.replicate(OUT_WIDTH)
        up_zero = (d & ~below) == 0                   # d < 2**p
        above_zero = (d & ~below & ~at_p) == 0        # d < 2**(p+1)
        low_ones = (~d & below) == 0                  # d mod 2**p == 2**p - 1
        low_zero = (d & below) == 0                   # d mod 2**p == 0
        d_p = (d & at_p) != 0
        fits = Signal()
        m.d.comb += fits.eq(s2_high_ok & up_zero)
        # q + 1 fits: for q >= 0 iff q fits and q != hi = 2**p - 1; for q < 0 iff
        # q >= lo - 1, i.e. d <= 2**p: d < 2**p or d == 2**p.
        fits_inc = Signal()
        m.d.comb += fits_inc.eq(s2_high_ok & Mux(s2_sign,
                                                 up_zero | (above_zero & d_p & low_zero),
                                                 up_zero & ~low_ones))
        # (q + 1) ^ sign = d + 1 (q >= 0) or d - 1 (q < 0).
        d_inc = Signal(OUT_WIDTH)
        m.d.comb += d_inc.eq(d + Cat(Const(1, 1), s2_sign.replicate(OUT_WIDTH - 1)))
        carry = Signal()
        m.d.comb += carry.eq((s2_hash + s2_t)[32])
        s3_r0 = Signal(OUT_WIDTH, reset_less=True)
        s3_r1 = Signal(OUT_WIDTH, reset_less=True)
        s3_c = Signal(reset_less=True)
        s3_valid = Signal()
        m.d.sync += [
            # saturate to hi = 2**p - 1 (= below) or lo = -2**p (= ~below, 16 bits)
            s3_r0.eq(Mux(fits, d, below) ^ s_rep),
            s3_r1.eq(Mux(fits_inc, d_inc, below) ^ s_rep),
            s3_c.eq(Mux(s2_st, carry, s2_c)),
            s3_valid.eq(s2_valid),
        ]

        # -- stage 4: pick -----------------------------------------------------------------
        m.d.sync += [
            self.out.eq(Mux(s3_c, s3_r1, s3_r0)),
            self.out_valid.eq(s3_valid),
        ]
        return m
