"""The STEP instruction: a training step's per-step parameters, set once per program, so
that a training step's program is the same every step (the host rewrites two words).

A training step's stochastic roundings take the seeds ``derive_seed(seed, t, i) =
dither_hash(dither_hash(seed, t), i)`` (``sw_model.train.quant_train``): ``i`` counts
the step's stochastic operations, ``t`` is the step. STEP carries the step's key
``k = dither_hash(seed, t)``; from STEP to HALT every seed the program names is an
index ``i``, and the seed used is ``derive(k, i) = dither_hash(k, i)``: the SEED word
of a CONTRACT, the SEED word of a VEC, SEED0 and SEED1 of an ADAM. It also carries the
step's learning rate ``lr`` (Q30, ``FixedAdam.lr_q``), which an ADAM with ``lr_step``
uses instead of its LR word (the bias correction changes it every step).

Encoding: a header word (``isa.Op.STEP``, payload length ``STEP_WORDS``), then

==========  =======  ================================================================
word        bits     field
==========  =======  ================================================================
0 KEY       31..0    ``k``, the step's key
1 LR        31..0    ``lr``, the step's learning rate in Q30 (ADAMs with ``lr_step``)
==========  =======  ================================================================

START clears the mode (a program without STEP names its seeds literally); a second
STEP in a program replaces the first. Refused with ``BAD_CONFIG``: a payload length
other than ``STEP_WORDS``; an ADAM with ``lr_step`` before any STEP of its program.
Built with the MOVE unit (``move_unit``); without it the opcode is illegal.

Timing: ``step_cycles()`` = fetch + ``STEP_WORDS`` payload cycles (counted as
``stall_config``).

Members: ``STEP_WORDS``, ``StepParams``, ``derive``, ``step_cycles``.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..arith.fixedpoint import dither_hash
from .isa import Op, header

__all__ = ["STEP_WORDS", "StepParams", "derive", "step_cycles"]

STEP_WORDS = 2


def derive(key: int, index: int) -> int:
    """The seed a program after ``STEP(key)`` uses for a seed word holding ``index``."""
    return int(dither_hash(int(key) & 0xFFFFFFFF, int(index) & 0xFFFFFFFF))


def step_cycles(fetch: int = 2) -> int:
    """Cycles of one STEP: fetch and decode, one per payload word."""
    return fetch + STEP_WORDS


@dataclass(frozen=True)
class StepParams:
    """A STEP instruction (module docstring): ``key`` and ``lr``, 32-bit each."""
    key: int
    lr: int = 0

    def __post_init__(self):
        for name in ("key", "lr"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < 1 << 32:
                raise ValueError(f"STEP {name}={v!r} out of range; allowed 0..2**32-1")

    def encode(self) -> list[int]:
        return [header(Op.STEP, STEP_WORDS), self.key, self.lr]

    @classmethod
    def decode(cls, payload) -> "StepParams":
        if len(payload) != STEP_WORDS:
            raise ValueError(f"STEP payload of {len(payload)} words; allowed {STEP_WORDS}")
        return cls(int(payload[0]) & 0xFFFFFFFF, int(payload[1]) & 0xFFFFFFFF)
