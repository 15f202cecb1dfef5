"""The VEC instruction: a MOVE whose elements pass through the vector ALU, the
elementwise work of a training step (bias add, ReLU, its backward mask, activation
requantization with the adaptive shift) done on chip between contractions.

A VEC walks the same strided loop nest as a MOVE (``sw_model.accel.move``: the same
source and destination streams, range check and one element per cycle) and writes,
for the element with source word ``a`` and destination word ``b`` (the destination's
old value, read only by the ops that need it), ``saturate(out_bits, f(a, b))``:

============  ==  ======================================================  ============
op            #   f(a, b)                                                 reads ``b``
============  ==  ======================================================  ============
``RELU``      0   ``max(a, 0)``                                           no
``REQUANT``   1   ``round(a / 2**shift)`` in ``rounding`` (the output     no
                  stage of a CONTRACT, ``fixedpoint.output_stage``; the
                  stochastic dither of element ``e`` is
                  ``dither_hash(seed, index_base + e)``, ``e`` counting
                  the VEC's elements from 0 in issue order)
``SHL``       2   ``a * 2**shift``                                        no
``ADD``       3   ``a + b``                                               yes
``MASK``      4   ``b if a > 0 else 0`` (ReLU's backward: ``a`` the       yes
                  pre-activation, ``b`` the gradient, in place)
``RELU_REQ``  5   ``REQUANT`` of ``max(a, 0)`` (ReLU and the activation    no
                  requantization in one pass)
============  ==  ======================================================  ============

Words are the buffers' 16-bit words, signed. Elements execute in issue order: an op
that reads ``b`` sees the writes of the VEC's earlier elements (the RTL forwards the
word written the cycle before), so a destination stride of 0 accumulates.

Encoding: a header word (``isa.Op.VEC``, payload length ``VEC_WORDS``), the MOVE
payload (``MOVE_WORDS`` words, ``fill`` must be 0) and

====================  =================================================================
payload word          fields
====================  =================================================================
``MOVE_WORDS`` OP     ``op`` bits 3..0, ``shift`` bits 8..4 (0..31), ``rounding`` bits
                      10..9 (0 floor, 1 nearest-even, 2 stochastic; 3 illegal),
                      ``out_bits`` bits 15..11 (2..16), ``slot`` bits 20..16 and
                      ``vote`` bits 22..21 (``sw_model.accel.shift_slots``: slot
                      1..``shift_slots`` replaces ``shift``, which must be 0; the
                      VEC's largest written |word| votes at its end)
``MOVE_WORDS + 1``    ``seed``: the dither seed of ``REQUANT`` with stochastic rounding
``MOVE_WORDS + 2``    ``index_base``: the dither index of the VEC's first element (a
                      tensor walked by several VECs in its own row-major order gets
                      the dither of its flat index, as the recipe's ``requantize``)
====================  =================================================================

Checks: the MOVE's (``move.move_check``, ``ADDRESS_RANGE``); an op code without an
op, rounding code 3, ``out_bits`` outside 2..16 or the fill bit halt with
``BAD_CONFIG`` before anything is written.

Timing (``vec_cycles``): a MOVE's, with ``VEC_WORDS`` payload words and a tail of
``vec_tail(op)`` cycles: 1 (the last write) plus the ALU's latency, 0 for every op but
``REQUANT`` and ``RELU_REQ``, which go through an output stage
(``OUTPUT_STAGE_LATENCY`` = 4). The
element cycles count as ``vec_cycles`` (counter ``Reg.VEC``); the rest as
``stall_config`` and ``stall_fill``.

Members: ``VecOp``, ``READS_DEST``, ``REQUANTS``, ``VEC_WORDS``, ``VW``, ``VEC_FIELDS``,
``VEC_FIELD``, ``Vec``, ``vec_alu``, ``vec_latency``, ``vec_tail``, ``vec_cycles``,
``run_vec``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np

from ..arith.fixedpoint import ROUNDING_MODES, output_stage, saturate
from .config import AccelConfig
from .isa import Field, Op, header
from .shift_slots import SLOT_BITS, SLOTS_MAX, VOTE_BITS, Vote, as_vote
from .move import MOVE_TAIL, MOVE_WORDS, Move, _counts, buffer_lanes, move_check, \
    move_check_cycles

__all__ = ["VecOp", "READS_DEST", "REQUANTS", "VEC_WORDS", "VW", "VEC_FIELDS", "VEC_FIELD",
           "Vec",
           "vec_alu", "vec_latency", "vec_tail", "vec_cycles", "run_vec",
           "VEC_SHIFT_MAX", "REQUANT_LATENCY"]

VEC_WORDS = MOVE_WORDS + 3
VEC_SHIFT_MAX = 31
# REQUANT's output stage (``rtl.output_stage.OutputStage``, 32-bit input; the RTL
# asserts it equals ``timing.OUTPUT_STAGE_LATENCY``).
REQUANT_LATENCY = 4


class VW(enum.IntEnum):
    """Word offsets of the VEC-only payload words (after the MOVE's)."""
    OP = MOVE_WORDS
    SEED = MOVE_WORDS + 1
    INDEX = MOVE_WORDS + 2


class VecOp(enum.IntEnum):
    RELU = 0
    REQUANT = 1
    SHL = 2
    ADD = 3
    MASK = 4
    RELU_REQ = 5


#: The ops whose result depends on the destination's old word ``b``.
READS_DEST = frozenset({VecOp.ADD, VecOp.MASK})
#: The ops that go through the output stage (``REQUANT_LATENCY``).
REQUANTS = frozenset({VecOp.REQUANT, VecOp.RELU_REQ})

VEC_FIELDS = (Field("op", VW.OP, 0, 4), Field("shift", VW.OP, 4, 5),
              Field("rounding", VW.OP, 9, 2), Field("out_bits", VW.OP, 11, 5),
              Field("slot", VW.OP, 16, SLOT_BITS), Field("vote", VW.OP, 16 + SLOT_BITS, VOTE_BITS),
              Field("seed", VW.SEED, 0, 32), Field("index_base", VW.INDEX, 0, 32))
VEC_FIELD = {f.name: f for f in VEC_FIELDS}


def _op(value) -> VecOp:
    if isinstance(value, VecOp):
        return value
    if isinstance(value, str) and value.upper() in VecOp.__members__:
        return VecOp[value.upper()]
    raise ValueError(f"VEC op={value!r} unknown; allowed "
                     f"{', '.join(o.name.lower() for o in VecOp)}")


@dataclass(frozen=True)
class Vec:
    """A VEC instruction (module docstring): ``move`` gives the buffers and the loop
    nest (its ``fill`` must be False); ``op`` a ``VecOp`` (or its lower-case name)."""
    move: Move
    op: VecOp
    shift: int = 0
    rounding: str = "floor"
    out_bits: int = 16
    seed: int = 0
    index_base: int = 0
    slot: int = 0
    vote: Vote = Vote.NONE

    def __post_init__(self):
        object.__setattr__(self, "op", _op(self.op))
        object.__setattr__(self, "vote", as_vote(self.vote))
        if not 0 <= int(self.slot) <= SLOTS_MAX:
            raise ValueError(f"VEC slot={self.slot} out of range; allowed 0..{SLOTS_MAX}")
        if self.slot and self.shift:
            raise ValueError(f"VEC shift={self.shift} with slot={self.slot}; a slot's "
                             f"shift replaces the field, which must be 0")
        if self.vote and not self.slot:
            raise ValueError(f"VEC vote={self.vote.name.lower()} needs a slot "
                             f"(1..{SLOTS_MAX}); slot 0 is the instruction's own shift")
        if self.move.fill:
            raise ValueError("VEC move.fill=True not allowed; a VEC reads its source")
        if not 0 <= int(self.shift) <= VEC_SHIFT_MAX:
            raise ValueError(f"VEC shift={self.shift} out of range; allowed "
                             f"0..{VEC_SHIFT_MAX}")
        if self.rounding not in ROUNDING_MODES:
            raise ValueError(f"VEC rounding={self.rounding!r} unknown; allowed "
                             f"{', '.join(ROUNDING_MODES)}")
        if not 2 <= int(self.out_bits) <= 16:
            raise ValueError(f"VEC out_bits={self.out_bits} out of range; allowed 2..16")
        if not 0 <= int(self.seed) < 1 << 32:
            raise ValueError(f"VEC seed={self.seed} out of range; allowed 0..{2**32 - 1}")
        if not 0 <= int(self.index_base) < 1 << 32:
            raise ValueError(f"VEC index_base={self.index_base} out of range; allowed "
                             f"0..{2**32 - 1}")

    @property
    def counts(self) -> tuple:
        return self.move.counts

    @property
    def elements(self) -> int:
        return self.move.elements

    @property
    def busy_cycles(self) -> int:
        """The vector-busy cycles it takes (``Reg.VEC``): one per element."""
        return self.elements

    def encode(self) -> list[int]:
        """The instruction: header word + ``VEC_WORDS`` payload words."""
        words = self.move.encode()[1:] + [0] * (VEC_WORDS - MOVE_WORDS)
        values = {"op": int(self.op), "shift": int(self.shift),
                  "rounding": ROUNDING_MODES.index(self.rounding),
                  "out_bits": int(self.out_bits), "seed": int(self.seed),
                  "index_base": int(self.index_base), "slot": int(self.slot),
                  "vote": int(self.vote)}
        for name, v in values.items():
            f = VEC_FIELD[name]
            words[f.word] |= f.encode(v) << f.lsb
        return [header(Op.VEC, VEC_WORDS)] + words

    @classmethod
    def decode(cls, payload) -> "Vec":
        """The VEC of ``payload`` (``VEC_WORDS`` words). Raises ValueError on what the
        controller refuses with ``BAD_CONFIG``."""
        if len(payload) != VEC_WORDS:
            raise ValueError(f"VEC payload of {len(payload)} words; the ISA has exactly "
                             f"{VEC_WORDS}")
        v = {f.name: f.decode(int(payload[f.word])) for f in VEC_FIELDS}
        if v["op"] >= len(VecOp):
            raise ValueError(f"VEC op code {v['op']} illegal; allowed 0..{len(VecOp) - 1}")
        if v["rounding"] >= len(ROUNDING_MODES):
            raise ValueError(f"VEC rounding code {v['rounding']} illegal; allowed "
                             f"0..{len(ROUNDING_MODES) - 1}")
        if v["vote"] >= len(Vote):
            raise ValueError(f"VEC vote code {v['vote']} illegal; allowed 0..{len(Vote) - 1}")
        return cls(Move.decode(payload[:MOVE_WORDS]), VecOp(v["op"]), v["shift"],
                   ROUNDING_MODES[v["rounding"]], v["out_bits"], v["seed"],
                   v["index_base"], v["slot"], Vote(v["vote"]))


def vec_alu(op, a, b=None, *, shift: int = 0, rounding: str = "floor",
            out_bits: int = 16, seed: int = 0, index=None) -> np.ndarray:
    """The vector ALU on int64 arrays: ``saturate(out_bits, f(a, b))`` (module
    docstring). ``b`` (the destination's old words) only for ``READS_DEST`` ops;
    ``index`` (default ``arange``): the element numbers feeding the dither of
    ``REQUANT`` and ``RELU_REQ``."""
    op = _op(op)
    a = np.asarray(a, dtype=np.int64)
    if op in READS_DEST:
        if b is None:
            raise ValueError(f"VEC op {op.name.lower()} reads the destination; b missing")
        b = np.asarray(b, dtype=np.int64)
    if op == VecOp.RELU:
        r = np.maximum(a, 0)
    elif op in REQUANTS:
        if index is None:
            index = np.arange(a.size, dtype=np.int64).reshape(a.shape)
        x = np.maximum(a, 0) if op == VecOp.RELU_REQ else a
        return output_stage(x, shift=shift, rounding=rounding, out_bits=out_bits,
                            seed=seed, acc_bits=32, index=index)
    elif op == VecOp.SHL:
        r = a << np.int64(shift)
    elif op == VecOp.ADD:
        r = a + b
    else:
        r = np.where(a > 0, b, 0)
    return saturate(r, out_bits)


def vec_latency(op) -> int:
    """Cycles the ALU adds between an element's read data and its write."""
    return REQUANT_LATENCY if _op(op) in REQUANTS else 0


def vec_tail(op) -> int:
    """Cycles after a VEC's last element issue until its last write: ``MOVE_TAIL`` +
    ``vec_latency(op)``."""
    return MOVE_TAIL + vec_latency(op)


def vec_cycles(counts, op, fetch: int = 2) -> int:
    """Cycles of one VEC with loop ``counts`` (``Vec.counts``) and ``op``: fetch,
    payload, validate, range check (``move_check_cycles``), one cycle per element,
    ``vec_tail(op)``."""
    counts = _counts(counts)
    elements = 1
    for c in counts:
        elements *= c
    return fetch + VEC_WORDS + 1 + move_check_cycles(counts) + elements + vec_tail(op)


def run_vec(cfg: AccelConfig, vec: Vec, bufs: dict, shift: int | None = None) -> np.ndarray:
    """Execute ``vec`` on ``bufs`` (``{"A": rows x a_lanes, ...}`` int64 arrays,
    updated in place); returns the words written, in issue order. ``shift``: the
    shift to use instead of ``vec.shift`` (a shift slot's). Raises ValueError when
    the range check refuses it."""
    mv = vec.move
    shift = vec.shift if shift is None else int(shift)
    if not 0 <= shift <= VEC_SHIFT_MAX:
        raise ValueError(f"VEC slot shift {shift} out of range; allowed 0..{VEC_SHIFT_MAX}")
    if move_check(cfg, mv):
        raise ValueError(f"VEC {mv.src}->{mv.dst} outside its buffers or overlapping")
    s, d = mv.addresses()
    sl, dl = buffer_lanes(cfg, mv.src), buffer_lanes(cfg, mv.dst)
    src, dst = bufs[mv.src], bufs[mv.dst]
    a = src[s // sl, s % sl]
    kw = dict(shift=shift, rounding=vec.rounding, out_bits=vec.out_bits,
              seed=vec.seed)
    if vec.op not in READS_DEST or len(np.unique(d)) == len(d):
        b = dst[d // dl, d % dl] if vec.op in READS_DEST else None
        index = (vec.index_base + np.arange(len(d), dtype=np.int64)) & 0xFFFFFFFF
        out = vec_alu(vec.op, a, b, index=index, **kw)
        dst[d // dl, d % dl] = out
        return out
    out = np.empty(len(d), dtype=np.int64)
    for e in range(len(d)):      # a destination written twice: element by element
        r, c = d[e] // dl, d[e] % dl
        dst[r, c] = out[e] = vec_alu(vec.op, a[e:e + 1], dst[r, c:c + 1], **kw)[0]
    return out
