"""Fixed-point training arithmetic: the seed paper's low-precision recipe
(REFERENCES.md §2) and power-of-two weights (§3), as exact int64 NumPy.

Every tensor in ``fixed``/``pow2`` training is an integer code array plus a power-of-two
exponent tracked on the host: real value = ``code * 2**-frac``. A contraction of A
(frac fa) and B (frac fb) with output shift s yields frac ``fa + fb - s``; elementwise
ops align fracs with shifts. Formats (``FixedRecipe`` defaults)::

    tensor                          bits  frac                     rounding
    contraction weights (fixed)       4   3        (<4,1>)         nearest-even from master
    contraction weights (pow2)        4   7  code: sign+3-bit exp  log-domain nearest
    master weights                    8   7        (<8,1>)         stochastic (optimizer)
    input pixels                      8   7        (<8,1>)         nearest-even
    activations (layer inputs)        8   dynamic (adaptive shift) stochastic
    forward contraction outputs      16   dynamic (adaptive shift) stochastic
    backward contraction outputs     16   dynamic (adaptive shift) stochastic
    accumulators                     32   (wrap-around, the arithmetic contract)
    biases (master)                  16   12                       stochastic (optimizer)
    logit gradient dz                16   14 + ceil(log2 B)        nearest (integer divide)
    Adam first moment m              32   per tensor, fixed at the first update
    Adam second moment v             32   2*frac_m - 16            stochastic
    softmax probabilities            16   15 (Q15, exp2 via a 256-entry Q15 table)

Adaptive shifts (one per contraction of the plan, per layer, and one per activation
requantization): on first use the shift is calibrated from the exact accumulator of that
first batch (smallest shift with max|out| <= 0.9 full scale); afterwards, each training
execution votes *up* when max|out| > 0.9 full scale and *down* when < 0.3 full scale;
``votes`` consecutive equal votes move the shift by one (REFERENCES.md §2). Evaluation
uses the shifts without voting and nearest-even rounding.

Seeds: every stochastic rounding of training step ``t`` gets
``derive_seed(seed, t, i) = dither_hash(dither_hash(seed, t), i)`` where ``i`` counts
the step's stochastic operations in execution order (contractions and elementwise), so
all seeds are in 0..2**32-1 and a function of (global seed, step, index) only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ..accel.shift_slots import advance, vote
from ..arith.adam import LR_FRAC, R_FRAC, adam_update, isqrt
from ..arith.fixedpoint import (EXP2_Q15, LOG2E_Q14, Pow2Code, align, dither_hash,
                               LOSS_FRAC, output_stage, round_shift, saturate,
                               softmax_xent_rows, xent_loss_rows)
from ..arith.fixedpoint import softmax_q15 as fp_softmax_q15

__all__ = ["FixedRecipe", "ShiftController", "derive_seed", "shift_codes", "align",
           "softmax_xent_grad", "xent_frac", "FixedAdam", "isqrt", "weights_for_contraction",
           "EXP2_Q15", "calibrate_shift", "xent_loss_sum", "loss_from_sum"]


@dataclass(frozen=True)
class FixedRecipe:
    weight_bits: int = 4
    weight_frac: int = 3
    master_bits: int = 8
    master_frac: int = 7
    input_bits: int = 8
    input_frac: int = 7
    act_bits: int = 8
    inter_bits: int = 16
    grad_bits: int = 16
    acc_bits: int = 32
    bias_bits: int = 16
    bias_frac: int = 12
    moment_bits: int = 32
    pow2_bits: int = 4
    shift_up: float = 0.9
    shift_down: float = 0.3
    votes: int = 3
    rounding: str = "stochastic"
    eval_rounding: str = "nearest-even"

    def to_dict(self) -> dict:
        return asdict(self)


def derive_seed(seed: int, step: int, index: int) -> int:
    """Seed of the ``index``-th stochastic operation of training step ``step``."""
    return int(dither_hash(dither_hash(int(seed) & 0xFFFFFFFF, int(step)), int(index)))


def shift_codes(x, s: int) -> np.ndarray:
    """Arithmetic shift: right (floor) by ``s`` > 0, left by ``-s``."""
    x = np.asarray(x, dtype=np.int64)
    if s >= 0:
        return x >> np.int64(min(s, 63))
    return x << np.int64(-s)


def calibrate_shift(acc_max: int, out_bits: int, up: float, acc_bits: int) -> int:
    """Smallest shift s with ``acc_max / 2**s <= up * full scale``."""
    full = (1 << (out_bits - 1)) - 1
    s = 0
    while s < acc_bits - 1 and (int(acc_max) >> s) > up * full:
        s += 1
    return s


class ShiftController:
    """The per-contraction power-of-two output shift with max-magnitude voting."""

    def __init__(self, out_bits: int, recipe: FixedRecipe, shift: int | None = None,
                 votes: int = 0):
        self.out_bits = out_bits
        self.recipe = recipe
        self.shift = shift
        self.pending = votes   # >0: consecutive up votes, <0: consecutive down votes

    @property
    def ready(self) -> bool:
        return self.shift is not None

    def calibrate(self, acc_max: int) -> None:
        self.shift = calibrate_shift(acc_max, self.out_bits, self.recipe.shift_up,
                                     self.recipe.acc_bits)

    def observe(self, out_max: int) -> None:
        """One vote on the largest |output| (the rule of ``sw_model.accel.shift_slots``,
        which the accelerator's shift slots run too)."""
        rc = self.recipe
        v = vote(out_max, self.out_bits, rc.shift_up, rc.shift_down)
        self.shift, self.pending = advance(self.shift, self.pending, v, rc.votes,
                                           rc.acc_bits - 1)

    def state(self) -> list[int]:
        return [self.out_bits, -1 if self.shift is None else self.shift, self.pending]

    @classmethod
    def from_state(cls, st, recipe: FixedRecipe) -> "ShiftController":
        return cls(int(st[0]), recipe, None if st[1] < 0 else int(st[1]), int(st[2]))




def softmax_q15(z, frac: int, n_classes: int) -> np.ndarray:
    """Integer softmax over the first ``n_classes`` columns of codes ``z`` (frac
    ``frac``): Q15 probabilities (``fixedpoint.softmax_q15``, the hardware's)."""
    return fp_softmax_q15(np.asarray(z, dtype=np.int64)[:, :n_classes], frac)


def softmax_xent_grad(z, frac: int, labels, n_classes: int, grad_bits: int = 16):
    """d(mean cross-entropy)/dz as codes, over all columns of ``z`` (unused logits get
    0). Returns ``(codes, frac_dz)`` with ``frac_dz = 14 + ceil(log2 B)`` so that
    ``|p - y| * 2**c / B < 2**15``; the division rounds to nearest (ties away from 0).
    The rows' arithmetic is ``fixedpoint.softmax_xent_rows`` (the XENT instruction's)."""
    z = np.asarray(z, dtype=np.int64)
    bsz = z.shape[0]
    y = np.zeros((bsz, n_classes), dtype=np.int64)
    y[np.arange(bsz), labels] = 1
    g = np.zeros_like(z)
    g[:, :n_classes] = softmax_xent_rows(z[:, :n_classes], y, frac, bsz, grad_bits)[0]
    return saturate(g, grad_bits), xent_frac(bsz)


def xent_loss_sum(z, frac: int, labels, n_classes: int) -> int:
    """The batch's cross-entropy over the first ``n_classes`` columns of logit codes
    ``z`` (frac ``frac``), summed over the rows in bits, Q16
    (``fixedpoint.xent_loss_rows``: what the XENT instruction sums on chip,
    ``Reg.XENT_LOSS``)."""
    z = np.asarray(z, dtype=np.int64)
    y = np.zeros((z.shape[0], n_classes), dtype=np.int64)
    y[np.arange(z.shape[0]), labels] = 1
    return int(xent_loss_rows(z[:, :n_classes], y, frac).sum())


def loss_from_sum(total: int, rows: int) -> float:
    """The mean loss in nats of a ``xent_loss_sum`` over ``rows`` rows (the fixed-point
    recipe's reported training loss)."""
    return float(total) * float(np.log(2.0)) / float(1 << LOSS_FRAC) / rows


def xent_frac(bsz: int) -> int:
    """The binary point of ``softmax_xent_grad``'s codes for a batch of ``bsz`` rows:
    ``14 + ceil(log2 bsz)``."""
    return 14 + (int(bsz) - 1).bit_length()


class FixedAdam:
    """Adam on integer codes (moments 32-bit). Per parameter tensor:

    * the gradient (codes, frac f_g) plus an optional prior term is aligned to the
      tensor's moment frac ``f_m`` (chosen at the first update so the largest gradient
      is 2**20 codes, then fixed);
    * ``m += round((g - m) * (1 - beta1))`` with the factor in Q24,
      ``v += round((g*g >> 16 - v) * (1 - beta2))`` (v frac ``2 f_m - 16``), stochastic;
    * ``r = m * 2**8 / (isqrt(v) + 1)`` in Q16 (clipped to |r| <= 2**20), the update
      ``lr_t * r`` scaled to the master frac and stochastically rounded;
      ``lr_t = lr * sqrt(1 - beta2**t) / (1 - beta1**t)`` is a host scalar in Q30.
    """

    R = R_FRAC
    L = LR_FRAC

    def __init__(self, lr: float, beta1: float = 0.9, beta2: float = 0.999):
        self.lr, self.beta1, self.beta2 = lr, beta1, beta2
        self.b1q = int(round((1 - beta1) * 2 ** 24))
        self.b2q = int(round((1 - beta2) * 2 ** 24))
        self.t = 0
        self.m: list[np.ndarray] = []
        self.v: list[np.ndarray] = []
        self.fm: list[int] = []

    def init(self, shapes) -> None:
        self.m = [np.zeros(s, np.int64) for s in shapes]
        self.v = [np.zeros(s, np.int64) for s in shapes]
        self.fm = [None] * len(shapes)

    def lr_q(self, t: int | None = None) -> int:
        """The bias-corrected learning rate of update ``t`` (default the current) in
        Q``L``."""
        t = self.t if t is None else int(t)
        lr_t = self.lr * np.sqrt(1 - self.beta2 ** t) / (1 - self.beta1 ** t)
        return int(round(lr_t * 2 ** self.L))

    def update(self, i: int, w, frac_w: int, bits_w: int, g, frac_g: int,
               seeds: tuple[int, int], prior=None) -> np.ndarray:
        """New master codes for parameter ``i`` (call ``tick()`` once per step first).
        ``prior`` (float, real units) is added to the gradient."""
        g = np.asarray(g, dtype=np.int64)
        mb = 1 << 31
        if self.fm[i] is None:
            gmax = int(np.abs(g).max()) if g.size else 0
            self.fm[i] = frac_g + (20 - gmax.bit_length()) if gmax else frac_g + 8
        fm = self.fm[i]
        gm = align(g, frac_g, fm, 40)
        if prior is not None:
            gm = gm + np.round(np.asarray(prior) * 2.0 ** fm).astype(np.int64)
        gm = np.clip(gm, -mb, mb - 1)
        self.m[i], self.v[i], w = adam_update(
            gm, self.m[i], self.v[i], w, b1q=self.b1q, b2q=self.b2q, lr_q=self.lr_q(),
            step_shift=self.R + self.L - frac_w, w_bits=bits_w, seeds=seeds)
        return w

    def tick(self) -> None:
        self.t += 1


def weights_for_contraction(master, recipe: FixedRecipe, precision: str) -> np.ndarray:
    """Master codes (frac ``master_frac``) -> the codes a contraction reads:
    ``fixed``: ``weight_bits`` linear codes (frac ``weight_frac``), nearest-even;
    ``pow2``: Pow2Code codes of the master code value rounded to a power of two in the
    log domain (frac ``master_frac``)."""
    if precision == "pow2":
        return Pow2Code(recipe.pow2_bits).quantize(np.asarray(master, np.int64))
    return align(master, recipe.master_frac, recipe.weight_frac, recipe.weight_bits)


def requantize(x, shift: int, bits: int, rounding: str, seed: int) -> np.ndarray:
    """Elementwise output stage (the same one contractions use)."""
    return output_stage(np.asarray(x, np.int64), shift=shift, rounding=rounding,
                        out_bits=bits, seed=seed)
