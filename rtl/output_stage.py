"""The output stage: shift, round, saturate (shared by every output lane of the array)."""

from amaranth import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from fetta.sw_model.accel.hostmap import BUFFER_WORD_BITS
from fetta.sw_model.arith.fixedpoint import ROUNDING_MODES, check_acc_bits

from .dither import add_dither_hash

__all__ = ["OutputStage", "ROUNDING_CODES"]

# Run-time rounding code of each mode: the index in ROUNDING_MODES.
ROUNDING_CODES = {mode: code for code, mode in enumerate(ROUNDING_MODES)}
_FLOOR = ROUNDING_CODES["floor"]
_NEAREST_EVEN = ROUNDING_CODES["nearest-even"]
_STOCHASTIC = ROUNDING_CODES["stochastic"]

OUT_WIDTH = BUFFER_WORD_BITS  # one buffer word


class OutputStage(wiring.Component):
    """Computes ``sw_model.arith.fixedpoint.output_stage`` on an already-wrapped accumulator::

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
      fraction ``f = acc mod 2**shift`` and the dither ``r`` carry iff
      ``f + r >= 2**shift``. For ``shift <= 32``, ``T = f << (32 - shift)`` has zeros
      where ``r = hash >> (32 - shift)`` dropped hash bits, so ``T + hash`` carries
      into ``2**32`` exactly when ``f + r`` does; for ``shift > 32``,
      ``r = hash << (shift - 32)`` has zeros under the bits of ``f`` below ``T``, which
      therefore cannot carry.)

    Saturation needs no wide comparator: with ``d = q ^ sign`` (non-negative, 16 bits),
    ``q`` fits iff ``d < 2**p`` (``p = out_bits - 1``) and the flag "bits 16.. of ``q``
    are copies of its sign" holds; ``q + 1`` fits by two more masked 16-bit reductions.
    Both candidates are saturated in advance, ``R0 = saturate(q)`` and
    ``R1 = saturate(q + 1)`` (``(q + 1) ^ sign = d + 1`` or ``d - 1``, one 16-bit adder;
    the saturation values ``2**p - 1`` and ``-2**p`` are the mask "bits below ``p``",
    xored with the sign), and the last stage picks ``R1`` if ``c``.

    Latency: ``LATENCY = 4`` cycles from ``valid`` to ``out_valid``; inputs are sampled
    every cycle (fully pipelined, one result per cycle; ``valid`` travels with the data).
    Every register-to-register path holds at most three carry chains. The registers sit
    where the data is narrow or where they pack with the LUT that feeds them (an iCE40
    logic cell holds a LUT and a flop; a flop whose input is another flop, or a LUT that
    also feeds other logic, takes a cell of its own):

    * stage 1: hash steps ``init`` (``(seed ^ golden) + index``), ``x += x << 10``,
      ``^= >> 6``, ``+= << 3`` [3 adders; the value and the seed are registered]; in
      parallel the clamped controls, the flag ``q[16:]`` all sign bits, (``acc_bits >
      33``) the sticky bits below ``T``, and the first levels (steps 1, 2, 4; 1, 2 for
      ``acc_bits = 8``) of the log shifter ``Cat(0 x 32, acc) >> shift``.
    * stage 2: hash ``^= >> 11``, ``+= << 15``, ``^= seed``, ``+= << 10``, ``^= >> 6``,
      ``+= << 3`` [3 adders]; in parallel the shifter's remaining levels, giving ``T``
      and ``d = q[0:16] ^ sign``.
    * stage 3: hash ``^= >> 11``, ``+= << 15``, then the carry of ``hash + T``
      [2 carry chains], ``c`` for the mode; in parallel the fit flags, ``d +- 1``
      [1 adder], ``R0`` and ``R1``.
    * stage 4: ``out = R1 if c else R0`` is the output register.

    Only ``valid``'s pipeline and the outputs have a reset; the datapath registers are
    reset-less (their initial value is 0).

    Out-of-contract control codes get a defined, documented behaviour (the golden model
    rejects them): rounding code 3 acts as floor; ``out_bits`` below 2 acts as 2 and
    above 16 as 16; ``shift`` above ``acc_bits - 1`` (only representable when
    ``acc_bits`` is not a power of two) acts as ``acc_bits - 1``.

    Parameters:
        acc_bits:    accumulator width W_acc, 8..48 (default 32).
        steady_seed: the seed is held constant while elements are in flight (as in the
                     CE array: one seed per instruction), so it is not pipelined
                     along with the hash (32 flip-flops fewer). Default False: ``seed``
                     is sampled with each element like the other inputs.

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

    # Hash pipeline registers, after these rtl.dither.HASH_STEPS: three adders in stages 1
    # and 2, the last add plus the carry of hash + T in stage 3. LATENCY - 2 cuts.
    # (6, 9) -- no seed register, four adders in stage 1 -- saves ~40 iCE40 logic cells
    # but costs about a quarter of the clock rate on both FPGA families.
    HASH_CUTS = (3, 9)

    def __init__(self, acc_bits: int = 32, steady_seed: bool = False):
        self.acc_bits = check_acc_bits(acc_bits)
        self.steady_seed = bool(steady_seed)
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

        assert len(self.HASH_CUTS) == self.LATENCY - 2

        # -- stage 1: hash steps 0..3; controls; first shifter levels -------------------
        hash_x = add_dither_hash(m, self.seed, self.index, cuts=self.HASH_CUTS,
                                 steady_seed=self.steady_seed)
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
        sign = self.acc[-1]
        # q[16:] all copies of the sign bit: acc's bits at and above shift + 16 are.
        if acc_bits > OUT_WIDTH:
            high = (self.acc.as_unsigned() ^ sign.replicate(acc_bits))[OUT_WIDTH:]
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
            sticky_low = (self.acc[:low_w] & low_mask) != 0
        else:
            sticky_low = Const(0)

        s1_shift = Signal(shift_shape, reset_less=True)
        s1_sign = Signal(reset_less=True)
        s1_high_ok = Signal(reset_less=True)
        s1_sticky_low = Signal(reset_less=True)
        s1_sign_pos = Signal(range(OUT_WIDTH), reset_less=True)
        s1_ne = Signal(reset_less=True)
        s1_st = Signal(reset_less=True)
        s1_valid = Signal()
        m.d.sync += [
            s1_shift.eq(shift),
            s1_sign.eq(sign),
            s1_high_ok.eq(high_ok),
            s1_sticky_low.eq(sticky_low),
            s1_sign_pos.eq(sign_pos),
            s1_ne.eq(self.rounding == _NEAREST_EVEN),
            s1_st.eq(self.rounding == _STOCHASTIC),
            s1_valid.eq(self.valid),
        ]

        # Cat(0 x 32, acc), acc sign-extended to 17 bits at least, shifted right
        # (arithmetic): bits [0:32] are T and bits [32:48] are q[0:16].
        ext_bits = max(acc_bits, OUT_WIDTH + 1)
        acc_ext = Signal(signed(ext_bits))
        m.d.comb += acc_ext.eq(self.acc)
        value = Signal(signed(32 + ext_bits))
        m.d.comb += value.eq(Cat(Const(0, 32), acc_ext))
        # A log shifter, smallest step first, each level only as wide as the bits the
        # remaining steps can still bring into the 48 kept ones (measured smaller than
        # Yosys' own $sshr mapping, and than largest-step-first, at 32 and 48 bits).
        # Levels 0..split-1 run in stage 1; the partial result is registered there (its
        # flops pack with the level's LUTs; the raw acc would need flops of their own).
        n = shift_shape.width
        split = min(3, n - 1)
        for k in range(n):
            if k == split:
                # -- stage 2: hash steps 4..9; the shifter's last levels --------------
                s1_value = Signal(value.shape(), reset_less=True)
                m.d.sync += s1_value.eq(value)
                value = s1_value
            keep = min(32 + OUT_WIDTH + (1 << n) - (1 << (k + 1)), len(value))
            step = Signal(keep, name=f"shift_by_{1 << k}")
            m.d.comb += step.eq(Mux(s1_shift[k] if k >= split else shift[k],
                                    value >> (1 << k), value)[:keep])
            value = step.as_signed() if keep == len(value) else step
        shifted = Signal(32 + OUT_WIDTH)
        m.d.comb += shifted.eq(value[:32 + OUT_WIDTH])
        sign = s1_sign
        high_ok = s1_high_ok
        t = shifted[:32]
        q = shifted[32:]

        s2_t = Signal(32, reset_less=True)
        s2_d = Signal(OUT_WIDTH, reset_less=True)
        s2_sign = Signal(reset_less=True)
        s2_high_ok = Signal(reset_less=True)
        s2_sign_pos = Signal(range(OUT_WIDTH), reset_less=True)
        s2_sticky_low = Signal(reset_less=True)
        s2_ne = Signal(reset_less=True)
        s2_st = Signal(reset_less=True)
        s2_valid = Signal()
        m.d.sync += [
            s2_t.eq(t),
            s2_d.eq(q ^ sign.replicate(OUT_WIDTH)),
            s2_sign.eq(sign),
            s2_high_ok.eq(high_ok),
            s2_sign_pos.eq(s1_sign_pos),
            s2_sticky_low.eq(s1_sticky_low),
            s2_ne.eq(s1_ne),
            s2_st.eq(s1_st),
            s2_valid.eq(s1_valid),
        ]

        # -- stage 3: hash steps 10, 11; carry c; R0 = sat(q), R1 = sat(q + 1) ----------
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
        m.d.comb += carry.eq((hash_x + s2_t)[32])
        # nearest-even: g = T[31], sticky = the bits below it
        guard = s2_t[31]
        sticky = (s2_t[:31] != 0) | s2_sticky_low
        c_ne = s2_ne & guard & ((d[0] ^ s2_sign) | sticky)
        s3_r0 = Signal(OUT_WIDTH, reset_less=True)
        s3_r1 = Signal(OUT_WIDTH, reset_less=True)
        s3_c = Signal(reset_less=True)
        s3_valid = Signal()
        m.d.sync += [
            # saturate to hi = 2**p - 1 (= below) or lo = -2**p (= ~below, 16 bits)
            s3_r0.eq(Mux(fits, d, below) ^ s_rep),
            s3_r1.eq(Mux(fits_inc, d_inc, below) ^ s_rep),
            s3_c.eq(Mux(s2_st, carry, c_ne)),
            s3_valid.eq(s2_valid),
        ]

        # -- stage 4: pick -----------------------------------------------------------------
        m.d.sync += [
            self.out.eq(Mux(s3_c, s3_r1, s3_r0)),
            self.out_valid.eq(s3_valid),
        ]
        return m
