"""Fixed-point arithmetic: the arithmetic contract shared by the golden model and the RTL.

Everything here is vectorized NumPy on int64 (uint64 for the dither hash). The RTL in
``rtl/`` implements exactly these functions; tests run one set of vectors through both.

The output stage of every contraction (DESIGN.md, "Arithmetic contract")::

    acc = wrap(sum a*b, acc_bits)                      # two's complement wrap-around
    out = saturate(out_bits, round(acc / 2**shift))    # floor | nearest-even | stochastic

Stochastic dither (the one definition, used by NumPy, the RTL and the quantizer)
-------------------------------------------------------------------------------
``dither_hash(seed, index)`` maps a 32-bit seed and the flat row-major index of an
element (taken mod 2**32) to a 32-bit word using only 32-bit adds, shifts and XORs::

    x = (seed ^ 0x9E3779B9) + index
    x = x + (x << 10);  x = x ^ (x >> 6)
    x = x + (x << 3);   x = x ^ (x >> 11)
    x = x + (x << 15);  x = x ^ seed
    x = x + (x << 10);  x = x ^ (x >> 6)
    x = x + (x << 3);   x = x ^ (x >> 11)
    x = x + (x << 15)                                  # all mod 2**32

(two rounds of Jenkins' one-at-a-time final mix, with the seed folded in twice).
The dither for a shift ``s`` is the top ``s`` bits of the hash: ``r = x >> (32 - s)``
for ``0 < s <= 32`` (``r = 0`` for ``s = 0``; ``r = x << (s - 32)`` above 32), so
``r`` lies in ``[0, 2**s)``. Stochastic rounding is ``floor((acc + r) / 2**s)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "ROUNDING_MODES", "Format", "check_width", "check_shift", "check_out_bits",
    "check_rounding", "check_acc_bits", "wrap", "saturate", "dither_hash", "dither",
    "round_shift", "output_stage", "align", "quantize", "dequantize", "Pow2Code",
    "EXP2_Q15", "LOG2E_Q14", "LOG2_Q16", "softmax_q15", "softmax_xent_rows", "log2_q16",
    "xent_loss_rows", "LOSS_FRAC",
]

# The softmax's exponential (``sw_model.train.quant_train.softmax_q15``, the vector
# unit's ``rtl/xent_unit.py``): 2**(i/256) in Q15 for i in 0..255 (values 32768..65447,
# 17 bits unsigned) and log2(e) in Q14.
EXP2_Q15 = np.round(2.0 ** (np.arange(256) / 256.0) * 32768).astype(np.int64)
LOG2E_Q14 = 23637   # round(log2(e) * 2**14)
# The cross-entropy loss's logarithm (``xent_loss_rows``, the XENT unit's loss sum):
# log2(1 + i/256) in Q16 for i in 0..255 (values 0..65281, 16 bits unsigned).
LOG2_Q16 = np.round(np.log2(1.0 + np.arange(256) / 256.0) * 65536).astype(np.int64)
LOSS_FRAC = 16      # xent_loss_rows: the loss in bits (log2 units), Q16

ROUNDING_MODES = ("floor", "nearest-even", "stochastic")
MASK32 = np.uint64(0xFFFFFFFF)


def _int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name}={value!r} is not an integer")
    return int(value)


def check_width(value, name: str = "width", lo: int = 1, hi: int = 32) -> int:
    """An operand width in bits, ``lo..hi``."""
    value = _int(name, value)
    if not lo <= value <= hi:
        raise ValueError(f"{name}={value} out of range; allowed {lo}..{hi}")
    return value


def check_acc_bits(value, name: str = "acc_bits") -> int:
    """Accumulator width W_acc, 8..48."""
    return check_width(value, name, 8, 48)


def check_out_bits(value, name: str = "out_bits") -> int:
    """Output width after the output stage, 2..16 (one buffer word)."""
    return check_width(value, name, 2, 16)


def check_shift(value, acc_bits: int = 32, name: str = "shift") -> int:
    """Output right shift, 0..acc_bits-1."""
    return check_width(value, name, 0, acc_bits - 1)


def check_rounding(value, name: str = "rounding") -> str:
    if value not in ROUNDING_MODES:
        raise ValueError(f"{name}={value!r} unknown; allowed {', '.join(ROUNDING_MODES)}")
    return value


@dataclass(frozen=True)
class Format:
    """A fixed-point number format: ``bits`` total (sign included when signed), ``frac``
    fractional bits. The real value of code ``q`` is ``q / 2**frac``."""

    bits: int
    frac: int = 0
    signed: bool = True

    def __post_init__(self):
        check_width(self.bits, "bits")
        _int("frac", self.frac)
        if not -64 <= self.frac <= 64:
            raise ValueError(f"frac={self.frac} out of range; allowed -64..64")

    @property
    def min_code(self) -> int:
        return -(1 << (self.bits - 1)) if self.signed else 0

    @property
    def max_code(self) -> int:
        return (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1

    @property
    def scale(self) -> float:
        return float(2.0 ** -self.frac)

    def __str__(self):
        return f"{'s' if self.signed else 'u'}{self.bits}.{self.frac}"


def wrap(x, bits: int) -> np.ndarray:
    """Reduce int64 values to ``bits``-bit two's complement (wrap-around)."""
    bits = check_width(bits, "bits", 1, 63)
    x = np.asarray(x, dtype=np.int64)
    half = np.int64(1 << (bits - 1))
    mask = np.int64((1 << bits) - 1)
    return ((x + half) & mask) - half


def saturate(x, bits: int, signed: bool = True) -> np.ndarray:
    """Clamp int64 values to the ``bits``-bit (signed or unsigned) range."""
    bits = check_width(bits, "bits", 1, 63)
    x = np.asarray(x, dtype=np.int64)
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    return np.clip(x, lo, hi)


def _u32(x):
    return np.asarray(x, dtype=np.uint64) & MASK32


def dither_hash(seed, index) -> np.ndarray:
    """The 32-bit counter-based hash of (seed, flat index); see the module docstring."""
    seed = _u32(np.asarray(seed, dtype=np.int64).astype(np.uint64))
    x = (_u32(np.asarray(index, dtype=np.int64).astype(np.uint64)) +
         (seed ^ np.uint64(0x9E3779B9))) & MASK32
    for fold in (True, False):
        x = (x + (x << np.uint64(10))) & MASK32
        x = x ^ (x >> np.uint64(6))
        x = (x + (x << np.uint64(3))) & MASK32
        x = x ^ (x >> np.uint64(11))
        x = (x + (x << np.uint64(15))) & MASK32
        if fold:
            x = x ^ seed
    return x


def dither(seed, index, shift: int) -> np.ndarray:
    """Stochastic-rounding dither in ``[0, 2**shift)`` for flat output ``index``."""
    shift = check_width(shift, "shift", 0, 63)
    x = dither_hash(seed, index).astype(np.int64)
    if shift == 0:
        return np.zeros_like(x)
    if shift <= 32:
        return x >> np.int64(32 - shift)
    return x << np.int64(shift - 32)


def round_shift(acc, shift: int, rounding: str, seed: int = 0, index=None) -> np.ndarray:
    """``round(acc / 2**shift)`` in the given mode, exact on int64.

    ``index`` (flat row-major output index, default ``arange``) feeds the dither."""
    check_rounding(rounding)
    shift = check_width(shift, "shift", 0, 62)
    acc = np.asarray(acc, dtype=np.int64)
    if shift == 0:
        return acc.copy()
    if rounding == "floor":
        return acc >> np.int64(shift)
    if rounding == "nearest-even":
        q_lsb = (acc >> np.int64(shift)) & np.int64(1)
        return (acc + np.int64((1 << (shift - 1)) - 1) + q_lsb) >> np.int64(shift)
    if index is None:
        index = np.arange(acc.size, dtype=np.int64).reshape(acc.shape)
    return (acc + dither(seed, index, shift)) >> np.int64(shift)


def output_stage(acc, *, shift: int = 0, rounding: str = "floor", out_bits: int = 16,
                 seed: int = 0, acc_bits: int = 32, index=None) -> np.ndarray:
    """The contract's output stage:
    ``saturate(out_bits, round(wrap(acc, acc_bits) / 2**shift))``.

    ``acc`` is the exact (int64) sum; ``index`` defaults to the row-major flat index of
    each element of ``acc`` (the dither input)."""
    acc_bits = check_acc_bits(acc_bits)
    shift = check_shift(shift, acc_bits)
    out_bits = check_out_bits(out_bits)
    check_rounding(rounding)
    seed = _int("seed", seed)
    if not 0 <= seed < (1 << 32):
        raise ValueError(f"seed={seed} out of range; allowed 0..{(1 << 32) - 1}")
    return saturate(round_shift(wrap(acc, acc_bits), shift, rounding, seed, index), out_bits)


def align(x, frac_from: int, frac_to: int, bits: int, rounding: str = "nearest-even",
          seed: int = 0) -> np.ndarray:
    """Re-express codes with ``frac_from`` fractional bits in ``frac_to``, saturated to
    ``bits``."""
    x = np.asarray(x, dtype=np.int64)
    s = frac_from - frac_to
    if s > 0:
        x = round_shift(x, min(s, 62), rounding, seed)
    elif s < 0:
        lim = 1 << 62
        x = np.clip(x, -(lim >> -s) if -s < 62 else -1, (lim >> -s) if -s < 62 else 1)
        x = x << np.int64(-s)
    return saturate(x, bits)


def quantize(x, fmt: Format, rounding: str = "nearest-even", seed: int = 0) -> np.ndarray:
    """Float array -> saturated integer codes of ``fmt`` (value = code / 2**frac).

    ``stochastic`` adds ``dither_hash(seed, flat index) / 2**32`` before flooring."""
    check_rounding(rounding)
    v = np.asarray(x, dtype=np.float64) * (2.0 ** fmt.frac)
    if rounding == "floor":
        q = np.floor(v)
    elif rounding == "nearest-even":
        q = np.round(v)  # NumPy rounds half to even
    else:
        u = dither_hash(seed, np.arange(v.size, dtype=np.int64)).reshape(v.shape)
        q = np.floor(v + u.astype(np.float64) / 4294967296.0)
    lo, hi = fmt.min_code, fmt.max_code
    return np.clip(q, lo, hi).astype(np.int64)


def dequantize(q, fmt: Format) -> np.ndarray:
    return np.asarray(q, dtype=np.float64) * fmt.scale


@dataclass(frozen=True)
class Pow2Code:
    """Power-of-two weight codes: ``bits`` = 1 sign bit + ``bits-1`` exponent bits.

    Code layout (LSB first): ``[exp : bits-1][sign : 1]``. ``exp == 0`` is the weight 0
    (and requires ``sign == 0``; a "negative zero" code is malformed); ``exp = k > 0`` is
    the weight ``(-1)**sign * 2**(k-1)``, so magnitudes are ``1 .. 2**(2**(bits-1)-2)``.
    The product with an activation ``a`` is ``±(a << (k-1))``: a shift and a negation."""

    bits: int = 4

    def __post_init__(self):
        check_width(self.bits, "pow2 bits", 2, 6)

    @property
    def exp_bits(self) -> int:
        return self.bits - 1

    @property
    def max_exp(self) -> int:
        """Largest exponent e (weight magnitude 2**e)."""
        return (1 << self.exp_bits) - 2

    def check(self, codes) -> np.ndarray:
        codes = np.asarray(codes, dtype=np.int64)
        bad = (codes < 0) | (codes >= (1 << self.bits))
        sign = (codes >> self.exp_bits) & 1
        bad |= (sign == 1) & ((codes & ((1 << self.exp_bits) - 1)) == 0)
        if bad.any():
            v = int(codes[bad].flat[0])
            raise ValueError(f"pow2 code {v} malformed; allowed 0..{(1 << self.bits) - 1} "
                             f"except {1 << self.exp_bits} (negative zero)")
        return codes

    def decode(self, codes) -> np.ndarray:
        """Codes -> integer weight values (0 or ±2**e)."""
        codes = self.check(codes)
        exp = codes & ((1 << self.exp_bits) - 1)
        mag = np.where(exp == 0, 0, np.left_shift(np.int64(1), np.maximum(exp - 1, 0)))
        return np.where((codes >> self.exp_bits) & 1, -mag, mag).astype(np.int64)

    def encode(self, values) -> np.ndarray:
        """Integer weights (each 0 or ±2**e, e <= max_exp) -> codes."""
        v = np.asarray(values, dtype=np.int64)
        mag = np.abs(v)
        exp = np.zeros_like(v)
        nz = mag != 0
        e = np.zeros_like(v)
        e[nz] = np.round(np.log2(mag[nz].astype(np.float64))).astype(np.int64)
        if (nz & ((np.left_shift(np.int64(1), e) != mag) | (e > self.max_exp))).any():
            bad = v[nz & ((np.left_shift(np.int64(1), e) != mag) | (e > self.max_exp))]
            raise ValueError(f"pow2 weight {int(bad.flat[0])} not 0 or ±2**e with "
                             f"e in 0..{self.max_exp}")
        exp[nz] = e[nz] + 1
        return (exp | (np.where(v < 0, 1, 0) << self.exp_bits)).astype(np.int64)

    def quantize(self, x) -> np.ndarray:
        """Nearest power of two in the log domain (0 below half the smallest magnitude)."""
        x = np.asarray(x, dtype=np.float64)
        mag = np.abs(x)
        e = np.clip(np.round(np.log2(np.maximum(mag, 1e-300))), 0, self.max_exp)
        vals = np.where(mag < 0.5, 0.0, np.sign(x) * 2.0 ** e)
        return self.encode(vals.astype(np.int64))

    def multiply(self, activation, codes) -> np.ndarray:
        """The shift-MAC product: activation times decoded weight, exact int64."""
        return np.asarray(activation, dtype=np.int64) * self.decode(codes)


def _exp2_terms(z, frac: int) -> tuple[np.ndarray, np.ndarray]:
    """``(t, e)`` of rows of logit codes ``z`` (frac ``frac``): ``t = (z - max(row)) *
    log2 e`` in Q16 (``d * LOG2E_Q14`` shifted right by ``frac - 2``, left when
    negative; <= 0) and ``e = 2**t`` in Q15 (the integer part a shift, the top 8
    fractional bits looked up in ``EXP2_Q15``; the row's maximum has ``e = 2**15``)."""
    z = np.asarray(z, dtype=np.int64)
    d = z - z.max(axis=1, keepdims=True)                 # <= 0
    s = frac + 14 - 16
    prod = d * LOG2E_Q14
    t = prod >> np.int64(min(s, 63)) if s >= 0 else prod << np.int64(-s)
    ip = t >> np.int64(16)                               # <= 0
    e = EXP2_Q15[(t & np.int64(0xFFFF)) >> np.int64(8)] >> np.minimum(-ip, 62)
    return t, e


def softmax_q15(z, frac: int) -> np.ndarray:
    """Integer softmax of each row of codes ``z`` (frac ``frac``): Q15 probabilities.
    exp(d) = 2**(d*log2 e), ``d = z - max(row)`` in the log2 domain with 16 fractional
    bits (``t = d * LOG2E_Q14`` shifted right by ``frac - 2``, left when negative), the
    integer part a shift and the top 8 fractional bits looked up in ``EXP2_Q15``;
    ``p = (e << 15) // sum(e)``."""
    _, e = _exp2_terms(z, frac)
    return (e << np.int64(15)) // e.sum(axis=1, keepdims=True)


def log2_q16(s) -> np.ndarray:
    """``log2(s / 2**15)`` in Q16 of sums of exponentials ``s >= 2**15`` (Q15): with
    ``p`` the position of the leading one, ``(p - 15) << 16`` plus
    ``LOG2_Q16[the 8 bits below the leading one]`` (the mantissa truncated)."""
    s = np.asarray(s, dtype=np.int64)
    if (s < 1 << 15).any():
        raise ValueError(f"log2_q16 of {int(s[s < 1 << 15].flat[0])}; allowed >= 2**15")
    p = np.floor(np.log2(s.astype(np.float64))).astype(np.int64)
    p += (s >> p) >= 2                                   # exact for any int64
    p -= (s >> p) == 0
    return ((p - 15) << np.int64(16)) + LOG2_Q16[(s >> (p - 8)) & np.int64(0xFF)]


def xent_loss_rows(z, y, frac: int) -> np.ndarray:
    """The cross-entropy of rows of logit codes ``z`` (frac ``frac``) with targets
    ``y`` (nonzero: the label), in bits (log2 units) in Q16 (``LOSS_FRAC``), from the
    softmax's own terms (``_exp2_terms``): per row ``sum over targets j of
    log2_q16(sum e) - t[j]`` (>= 0; a row without a target: 0). The loss in nats is
    ``value * ln 2 / 2**16`` (what the XENT unit sums in ``Reg.XENT_LOSS``)."""
    t, e = _exp2_terms(z, frac)
    y = np.asarray(y, dtype=np.int64)
    lg = log2_q16(e.sum(axis=1))
    return ((y != 0) * (lg[:, None] - t)).sum(axis=1)


def softmax_xent_rows(z, y, frac: int, bsz: int, out_bits: int = 16):
    """The mean cross-entropy's gradient of rows of logit codes ``z`` (frac ``frac``)
    with targets ``y`` (nonzero: the label) in a batch of ``bsz`` rows, as codes with
    frac ``14 + c``, ``c = ceil(log2 bsz)``: ``num = (p - 2**15 [y != 0]) << (c - 1)``,
    ``g = saturate(out_bits, sign(num) * ((|num| + bsz // 2) // bsz))`` (the division
    rounds to nearest, ties away from 0). Returns ``(g, correct)``, ``correct[r]`` =
    ``y[r, argmax z[r]] != 0`` (the first maximum)."""
    z = np.asarray(z, dtype=np.int64)
    y = np.asarray(y, dtype=np.int64)
    c = (int(bsz) - 1).bit_length()                      # ceil(log2 bsz)
    p = softmax_q15(z, frac) - (y != 0) * (1 << 15)
    num = p << np.int64(c - 1)                           # (p - y) * 2**(14 + c) / 2**15
    q = (np.abs(num) + int(bsz) // 2) // int(bsz)
    g = saturate(np.sign(num) * q, out_bits)
    rows = np.arange(z.shape[0])
    return g, y[rows, z.argmax(axis=1)] != 0
