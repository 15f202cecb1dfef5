"""The ADAM instruction: the fixed-point Adam update of a parameter tensor on chip, its
optimizer state kept in the update unit's state memory, the updated weights written
straight into the layout the next step's contractions read.

ADAM walks a MOVE's loop nest (``sw_model.accel.move``: source, destination, range
check). The source words are the gradient (16-bit codes); with ``reduce`` the
innermost level's points are summed into one element's gradient (a bias gradient: the
sum over the batch, exact in a 32-bit accumulator), otherwise every point is an
element. Element ``e`` (0, 1, ... in walk order) owns entry ``state_base + e`` of the
state memory — its first moment ``m`` (32-bit signed), second moment ``v`` (32-bit
unsigned) and master code ``w`` (16-bit signed) — and the destination word of its
last point. Per element::

    gm      = sat32(sat40(g * 2**k))   (k >= 0; nearest-even g / 2**-k when k < 0)
              k = gshift + the slot's shift (when a slot is named: the gradient's
              frac moves with its contraction's adaptive shift)
    m, v, w = sw_model.arith.adam.adam_update(gm, m, v, w; b1q, b2q, lr_q,
              step_shift, w_bits, (seed0, seed1), index_base + e)
    dst     = align(w, out_shift, 0, out_bits)   (nearest-even w / 2**out_shift, or
              w * 2**-out_shift when negative, saturated to out_bits)

so the destination gets the master code itself (``out_shift`` 0, ``out_bits`` 16), the
contraction's weight codes (the recipe's ``weights_for_contraction``: ``out_shift =
master_frac - weight_frac``, ``out_bits = weight_bits``) or a bias aligned to its
layer's output (``out_shift = bias_frac - frac_y``). With ``load`` nothing is updated:
the state is only read and every element's destination word is that of its ``w`` (the
master weights laid out for a step's contractions; the gradient words are read and
ignored). With ``nowrite`` no destination word is written (an update whose weights
the next step lays out with ``load``; the walk's destination is still range-checked). The state memory is host
memory while idle (``hostmap.ADAM_BASE``: entry ``p`` at ``ADAM_BASE + 4p``: ``m``,
``v``, ``w`` sign-extended, a word that reads 0), so the host loads the master weights
and zero moments once and reads them back for checkpoints.

Encoding: a header word (``isa.Op.ADAM``, payload length ``ADAM_WORDS``), the MOVE
payload (``fill`` 0), then

====================  =================================================================
payload word          fields
====================  =================================================================
``MOVE_WORDS`` OP     ``reduce`` bit 0, ``load`` bit 1, ``out_shift`` bits 6..2 (signed,
                      -15..15), ``out_bits`` bits 11..7 (2..16), ``slot`` bits 20..16
                      (0 none, 1..``shift_slots``; the VEC's slot field), ``w_bits``
                      bits 25..21 (2..16), ``step_shift`` bits 31..26 (0..62),
                      ``nowrite`` bit 15, ``lr_step`` bit 12 (the learning rate is
                      the program's STEP's, ``sw_model/accel/step.py``, not LR)
``+1`` PARAM          ``gshift`` bits 6..0 (signed, -31..31), ``state_base`` bits
                      31..16
``+2`` SEED0          the first moment's dither seed
``+3`` SEED1          the second moment's (and, xor ``STEP_SEED_XOR``, the step's)
``+4`` LR             ``lr_q``: the bias-corrected learning rate in Q30 (unsigned)
``+5`` B1, ``+6`` B2  ``b1q``, ``b2q``: ``1 - beta`` in Q24 (0..2**24)
``+7`` INDEX          ``index_base``: the dither index of element 0
====================  =================================================================

Refused with ``BAD_CONFIG`` before anything is written: a field out of its range,
nonzero reserved bits, the fill bit, a copy within one buffer (the MOVE's rule), a slot
above ``shift_slots``, a slot-adjusted ``gshift`` outside -31..31; with
``ADDRESS_RANGE``: the MOVE's range check, or state entries past ``adam_entries``.
Without the unit (``adam_entries`` 0) the opcode is illegal.

Timing (``adam_cycles``): a MOVE's fixed part with ``ADAM_WORDS`` payload words, then
per element ``adam_element_cycles(r, load)`` (``rtl/adam_unit.py``: its ``r`` gradient
reads, the moment updates, a sequential square root and division, the step, the
write; with ``load`` the reads and the write), the
cycle after the last element's write and ``MOVE_TAIL``. The element cycles and that
cycle count as ``vec_cycles`` (counters ``Reg.VEC``, vector unit busy, and
``Reg.ADAM_CYCLES``: ``Adam.busy_cycles``).

Members: ``ADAM_WORDS``, ``AW``, ``ADAM_FIELDS``, ``ADAM_FIELD``, ``Adam``,
``AdamState``, ``run_adam``, ``adam_element_cycles``, ``adam_cycles``, ``SQRT_BITS``,
``SQRT_PER_CYCLE``, ``DIV_BITS``, ``GSHIFT_MAX``, ``STEP_SHIFT_MAX``, ``OUT_SHIFT_MAX``,
``BETA_MAX``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np

from ..arith.adam import adam_update, align_gradient
from ..arith.fixedpoint import align
from .config import AccelConfig
from .isa import Field, Op, decode_fields, header, used_bits
from .move import MOVE_TAIL, MOVE_WORDS, Move, _counts, move_check, move_check_cycles
from .shift_slots import SLOT_BITS
from .step import StepParams, derive
from .xent import DIV_PER_CYCLE, div_cycles

__all__ = ["ADAM_WORDS", "AW", "ADAM_FIELDS", "ADAM_FIELD", "Adam", "AdamState",
           "run_adam", "adam_element_cycles", "adam_cycles", "SQRT_BITS", "SQRT_PER_CYCLE",
           "DIV_BITS", "GSHIFT_MAX", "STEP_SHIFT_MAX", "OUT_SHIFT_MAX", "BETA_MAX",
           "ADAM_PIPE"]

ADAM_WORDS = MOVE_WORDS + 8
GSHIFT_MAX = 31
STEP_SHIFT_MAX = 62
OUT_SHIFT_MAX = 15
BETA_MAX = 1 << 24
SQRT_BITS = 16          # isqrt of a 32-bit v: 16 root bits ...
SQRT_PER_CYCLE = 4      # ... four per cycle
# the division (|m| << 8 + d // 2) // d: its quotient is clipped to 2**20, so only
# its low 24 bits are divided out (the high part decides the clip; a multiple of the
# divider's DIV_PER_CYCLE bits per cycle, as its partial remainder needs)
DIV_BITS = 24
# per element after the reads: align, square + first product, first moment + second
# product, second moment (the square root starts)
ADAM_PIPE = 4


class AW(enum.IntEnum):
    """Word offsets of the ADAM-only payload words (after the MOVE's)."""
    OP = MOVE_WORDS
    PARAM = MOVE_WORDS + 1
    SEED0 = MOVE_WORDS + 2
    SEED1 = MOVE_WORDS + 3
    LR = MOVE_WORDS + 4
    B1 = MOVE_WORDS + 5
    B2 = MOVE_WORDS + 6
    INDEX = MOVE_WORDS + 7


ADAM_FIELDS = (Field("reduce", AW.OP, 0, 1), Field("load", AW.OP, 1, 1),
               Field("out_shift", AW.OP, 2, 5, "signed"), Field("out_bits", AW.OP, 7, 5),
               Field("slot", AW.OP, 16, SLOT_BITS), Field("w_bits", AW.OP, 21, 5),
               Field("step_shift", AW.OP, 26, 6), Field("nowrite", AW.OP, 15, 1),
               Field("lr_step", AW.OP, 12, 1),
               Field("gshift", AW.PARAM, 0, 7, "signed"),
               Field("state_base", AW.PARAM, 16, 16),
               Field("seed0", AW.SEED0, 0, 32), Field("seed1", AW.SEED1, 0, 32),
               Field("lr", AW.LR, 0, 32), Field("b1", AW.B1, 0, 25),
               Field("b2", AW.B2, 0, 25), Field("index_base", AW.INDEX, 0, 32))
ADAM_FIELD = {f.name: f for f in ADAM_FIELDS}
_USED = used_bits(ADAM_FIELDS, AW)


def adam_element_cycles(r: int, load: bool = False) -> int:
    """Cycles of one element with ``r`` gradient reads: 1 start (the state entry's
    read), ``r`` reads + 1 (the read data's latency), ``ADAM_PIPE``, the square root
    (``SQRT_BITS / SQRT_PER_CYCLE``), 1 division setup, the division
    (``div_cycles(DIV_BITS)``), 1 product with the learning rate and 1 write; with
    ``load`` the start, the reads and the write."""
    if load:
        return 1 + (r + 1) + 1
    return 1 + (r + 1) + ADAM_PIPE + SQRT_BITS // SQRT_PER_CYCLE + 1 \
        + div_cycles(DIV_BITS) + 1 + 1


def adam_cycles(counts, reduce: bool, fetch: int = 2, load: bool = False) -> int:
    """Cycles of one ADAM with loop ``counts``: fetch, payload, validate, range check,
    the elements, the cycle after the last write and ``MOVE_TAIL``."""
    counts = _counts(counts)
    r = counts[-1] if reduce else 1
    elements = 1
    for c in (counts[:-1] if reduce else counts):
        elements *= c
    return fetch + ADAM_WORDS + 1 + move_check_cycles(counts) \
        + elements * adam_element_cycles(r, load) + 1 + MOVE_TAIL


@dataclass(frozen=True)
class Adam:
    """An ADAM instruction (module docstring)."""
    move: Move
    state_base: int
    lr: int
    seed0: int
    seed1: int
    step_shift: int
    gshift: int = 0
    w_bits: int = 8
    out_shift: int = 0
    out_bits: int = 16
    reduce: bool = False
    load: bool = False
    nowrite: bool = False
    lr_step: bool = False
    slot: int = 0
    b1: int = 1677722          # round(0.1 * 2**24)
    b2: int = 16777            # round(0.001 * 2**24)
    index_base: int = 0

    def __post_init__(self):
        if self.move.fill:
            raise ValueError("ADAM move.fill=True not allowed; ADAM reads its source")
        for name, lo, hi in (("state_base", 0, 0xFFFF), ("lr", 0, 0xFFFFFFFF),
                             ("seed0", 0, 0xFFFFFFFF), ("seed1", 0, 0xFFFFFFFF),
                             ("step_shift", 0, STEP_SHIFT_MAX),
                             ("gshift", -GSHIFT_MAX, GSHIFT_MAX), ("w_bits", 2, 16),
                             ("out_shift", -OUT_SHIFT_MAX, OUT_SHIFT_MAX),
                             ("out_bits", 2, 16),
                             ("slot", 0, (1 << SLOT_BITS) - 1), ("b1", 0, BETA_MAX),
                             ("b2", 0, BETA_MAX), ("index_base", 0, 0xFFFFFFFF)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) \
                    or not lo <= int(v) <= hi:
                raise ValueError(f"ADAM {name}={v!r} out of range; allowed {lo}..{hi}")

    @property
    def counts(self) -> tuple:
        return self.move.counts

    @property
    def reads(self) -> int:
        """Gradient words summed per element."""
        return self.move.counts[-1] if self.reduce else 1

    def cycles(self, fetch: int = 2) -> int:
        return adam_cycles(self.counts, self.reduce, fetch, self.load)

    @property
    def elements(self) -> int:
        return int(np.prod(self.move.counts)) // self.reads

    @property
    def busy_cycles(self) -> int:
        """The vector-busy cycles it takes (``Reg.VEC`` and ``Reg.ADAM_CYCLES``): the
        elements and the cycle after the last write."""
        return self.elements * adam_element_cycles(self.reads, self.load) + 1

    def encode(self) -> list[int]:
        words = self.move.encode()[1:] + [0] * (ADAM_WORDS - MOVE_WORDS)
        for f in ADAM_FIELDS:
            v = int(getattr(self, f.name))
            words[f.word] |= f.encode(v) << f.lsb
        return [header(Op.ADAM, ADAM_WORDS)] + words

    @classmethod
    def decode(cls, payload) -> "Adam":
        """The ADAM of ``payload``; ValueError on what the controller refuses with
        ``BAD_CONFIG`` (the slot's range needs the config: ``run_adam``)."""
        v = decode_fields("ADAM", payload, ADAM_WORDS, ADAM_FIELDS, _USED)
        for flag in ("reduce", "load", "nowrite", "lr_step"):
            v[flag] = bool(v[flag])
        return cls(Move.decode(payload[:MOVE_WORDS]), **v)


class AdamState:
    """The state memory of a config: ``m``, ``v``, ``w`` (int64 arrays of
    ``adam_entries``), kept from one program to the next like the hardware's."""

    def __init__(self, cfg: AccelConfig):
        n = cfg.adam_entries
        self.m = np.zeros(n, np.int64)
        self.v = np.zeros(n, np.int64)
        self.w = np.zeros(n, np.int64)


def run_adam(cfg: AccelConfig, x: Adam, bufs: dict, state: AdamState,
             slot_shift: int = 0, step: StepParams | None = None) -> np.ndarray:
    """Execute ``x`` on ``bufs`` and ``state`` (updated in place); ``slot_shift`` the
    named slot's shift (0 without a slot); ``step`` the program's STEP so far (its key
    derives the seeds, its learning rate serves ``lr_step``). Returns the destination
    words written, in order. ValueError for what the controller refuses (nothing
    changed)."""
    mv = x.move
    if x.lr_step and step is None:
        raise ValueError("ADAM lr_step=1 before any STEP of its program")
    if x.slot > cfg.shift_slots:
        raise ValueError(f"ADAM slot={x.slot} out of range; allowed 0..{cfg.shift_slots}")
    k = x.gshift + (int(slot_shift) if x.slot else 0)
    if not -GSHIFT_MAX <= k <= GSHIFT_MAX:
        raise ValueError(f"ADAM gshift={x.gshift} + slot {x.slot} shift {slot_shift} = {k} "
                         f"out of range; allowed -{GSHIFT_MAX}..{GSHIFT_MAX}")
    if move_check(cfg, mv):
        raise ValueError(f"ADAM {mv.src}->{mv.dst} outside its buffers or overlapping")
    n, r = x.elements, x.reads
    if x.state_base + n > cfg.adam_entries:
        raise ValueError(f"ADAM state entries {x.state_base}..{x.state_base + n - 1} "
                         f"outside the state memory; allowed 0..{cfg.adam_entries - 1}")
    s, d = mv.addresses()
    sl, dl = bufs[mv.src].shape[1], bufs[mv.dst].shape[1]
    sel = slice(x.state_base, x.state_base + n)
    if x.load:
        w = state.w[sel]
    else:
        g = bufs[mv.src][s // sl, s % sl].reshape(n, r).sum(axis=1)
        gm = align_gradient(g, k)
        seeds = (x.seed0, x.seed1) if step is None else \
            (derive(step.key, x.seed0), derive(step.key, x.seed1))
        m, v, w = adam_update(gm, state.m[sel], state.v[sel], state.w[sel], b1q=x.b1,
                              b2q=x.b2, lr_q=step.lr if x.lr_step else x.lr,
                              step_shift=x.step_shift, w_bits=x.w_bits, seeds=seeds,
                              index=x.index_base + np.arange(n, dtype=np.int64))
        state.m[sel], state.v[sel], state.w[sel] = m, v, w
    out = align(w, x.out_shift, 0, x.out_bits)
    if not x.nowrite:
        dd = d.reshape(n, r)[:, -1]
        bufs[mv.dst][dd // dl, dd % dl] = out
    return out
