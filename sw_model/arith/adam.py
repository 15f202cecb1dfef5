"""Fixed-point Adam on integer codes: the elementwise arithmetic of one update, shared
by the recipe's optimizer (``sw_model.train.quant_train.FixedAdam``) and the ADAM
instruction's model (``sw_model.accel.adam``), so the two cannot drift.

One update of element ``e`` of a parameter tensor, from its gradient ``gm`` already
aligned to the tensor's moment frac (32-bit signed), its moments ``m`` (32-bit
signed) and ``v`` (32-bit unsigned, frac ``2 f_m - 16``) and its master code ``w``
(``w_bits``-bit signed)::

    m' = sat32(m + round_s((gm - m) * b1q, 24; seed0, e))
    g2 = min((gm * gm) >> 16, 2**32 - 1)
    v' = clip(v + round_s((g2 - v) * b2q, 24; seed1, e), 0, 2**32 - 1)
    d  = isqrt(v') + 1                                  (17 bits)
    r  = clip(sign(m') * ((|m'| << 8 + d // 2) // d), -2**20, 2**20)     (Q16)
    w' = sat(w_bits, w - round_s(r * lr_q, step_shift; seed1 ^ STEP_SEED_XOR, e))

``round_s(x, k; seed, e)`` is ``fixedpoint.round_shift`` with stochastic rounding (the
dither of ``e``, the element's flat index in its tensor); ``b1q``, ``b2q`` are
``1 - beta`` in Q24 and ``lr_q`` the bias-corrected learning rate in Q30
(``step_shift = 16 + 30 - frac_w``).

Members: ``isqrt``, ``div_round``, ``adam_update``, ``align_gradient``, ``B_SHIFT``,
``R_FRAC``, ``LR_FRAC``, ``STEP_SEED_XOR``, ``R_MAX``, ``GM_BITS``.
"""

from __future__ import annotations

import numpy as np

from .fixedpoint import align, round_shift, saturate

__all__ = ["isqrt", "div_round", "adam_update", "align_gradient", "B_SHIFT", "R_FRAC",
           "LR_FRAC", "STEP_SEED_XOR", "R_MAX", "GM_BITS", "ALIGN_BITS"]

B_SHIFT = 24            # 1 - beta in Q24
R_FRAC = 16             # the ratio m / sqrt(v) in Q16
LR_FRAC = 30            # the learning rate in Q30
STEP_SEED_XOR = 0x5bd1e995
R_MAX = 1 << 20         # |ratio| clip
GM_BITS = 32            # the aligned gradient and the first moment
ALIGN_BITS = 40         # the gradient's alignment saturates here, then clips to GM_BITS


def isqrt(v) -> np.ndarray:
    """floor(sqrt(v)) for int64 v >= 0, exact (float estimate, integer correction)."""
    v = np.asarray(v, dtype=np.int64)
    s = np.floor(np.sqrt(v.astype(np.float64))).astype(np.int64)
    s = np.where(s * s > v, s - 1, s)
    s = np.where((s + 1) * (s + 1) <= v, s + 1, s)
    return s


def div_round(num, den) -> np.ndarray:
    """num / den rounded to nearest, ties away from zero; den > 0."""
    num = np.asarray(num, dtype=np.int64)
    return np.sign(num) * ((np.abs(num) + den // 2) // den)


def align_gradient(g, shift: int) -> np.ndarray:
    """A gradient's codes re-expressed ``shift`` fractional bits finer (coarser when
    negative: nearest-even), saturated to ``ALIGN_BITS`` and clipped to ``GM_BITS``
    bits: the moment frac's gradient ``gm``."""
    mb = 1 << (GM_BITS - 1)
    return np.clip(align(g, 0, int(shift), ALIGN_BITS), -mb, mb - 1)


def adam_update(gm, m, v, w, *, b1q: int, b2q: int, lr_q: int, step_shift: int,
                w_bits: int, seeds: tuple[int, int], index=None):
    """``(m', v', w')`` of one Adam update (module docstring), elementwise over equal
    shapes; ``index`` (default the flat row-major index) feeds the dither."""
    gm = np.asarray(gm, dtype=np.int64)
    m = np.asarray(m, dtype=np.int64)
    v = np.asarray(v, dtype=np.int64)
    mb = 1 << (GM_BITS - 1)
    vmax = (1 << 32) - 1
    m = np.clip(m + round_shift((gm - m) * int(b1q), B_SHIFT, "stochastic", seeds[0],
                                index), -mb, mb - 1)
    g2 = np.minimum((gm * gm) >> np.int64(16), vmax)
    v = np.clip(v + round_shift((g2 - v) * int(b2q), B_SHIFT, "stochastic", seeds[1],
                                index), 0, vmax)
    r = np.clip(div_round(m << np.int64(R_FRAC - 8), isqrt(v) + 1), -R_MAX, R_MAX)
    step = round_shift(r * int(lr_q), int(step_shift), "stochastic",
                       int(seeds[1]) ^ STEP_SEED_XOR, index)
    return m, v, saturate(np.asarray(w, np.int64) - step, w_bits)
