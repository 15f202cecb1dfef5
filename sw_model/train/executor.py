"""The contraction executor and observer contract of the fixed-point trainer.

Every pairwise contraction of a fixed/pow2 training step goes through one callable::

    executor(step, a_int, b_int, *, shift, rounding, out_bits, seed[, b_pow2][, shift_use]) -> int64

``step`` is the ``plan.Step`` (``step.spec`` is the einsum), ``a_int``/``b_int`` int64
arrays in the int16 range, ``shift``/``rounding``/``out_bits``/``seed`` the output stage
of the arithmetic contract (``acc_bits`` is 32). ``default_executor`` is the golden
model, ``reference_contraction(step.spec, a, b, **kw)``; ``sim.rtl_training`` supplies
one that runs the contraction on the simulated accelerator. In ``pow2`` mode the weight
operand is passed as **B** holding ``Pow2Code`` codes with ``b_pow2=Pow2Code(bits)``:
when a plan step has the core as A and an activation as B, the executor receives a step
with operands and spec swapped (``Step(out, b, a, "B,A->out")``); when both operands are
cores (core-core merges of a joint planner) A is passed decoded (plain integers) and B
as codes.

``shift_use`` (a ``ShiftUse``, passed by the fixed path) names the adaptive-shift
controller the contraction's ``shift`` comes from: its key (``"L0:y"``), whether the
contraction votes after it (training) and the controller's pending votes before it. An
accelerator that keeps the shifts on chip (``sim.rtl_training`` with shift slots) runs
the contraction with its own copy of that controller; the golden model ignores it.

After every contraction the observer hook, if any, gets a ``ContractionEvent``: the
phase, layer, step, operands, output and output-stage parameters (lock-step verification
compares a second backend against these).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..arith.contraction import reference_contraction
from ..arith.fixedpoint import Pow2Code
from ..ttm.plan import Step

__all__ = ["default_executor", "ContractionEvent", "ShiftUse"]


@dataclass(frozen=True)
class ShiftUse:
    """The adaptive-shift controller behind a contraction's ``shift``: ``key`` (the
    trainer's ``shifts`` key), ``vote`` (the controller observes the output after the
    contraction: training) and ``pending`` (its run of equal votes before it)."""
    key: str
    vote: bool
    pending: int


def default_executor(step: Step, a, b, *, shift_use: ShiftUse | None = None,
                     **kw) -> np.ndarray:
    """The golden model of one contraction on the accelerator (``shift_use`` is not
    needed: ``shift`` is the controller's)."""
    return reference_contraction(step.spec, a, b, **kw)


@dataclass
class ContractionEvent:
    phase: str          # "forward" | "backward" | "eval"
    train_step: int     # global training step (eval: -1 - epoch)
    layer: int
    index: int          # contraction index within the training step / eval batch
    step: Step          # the step as given to the executor (possibly operand-swapped)
    a: np.ndarray
    b: np.ndarray
    out: np.ndarray
    shift: int
    rounding: str
    out_bits: int
    seed: int
    b_pow2: Pow2Code | None = None
    shift_key: str | None = None          # the controller of ``shift`` (fixed path)
    shift_after: tuple | None = None      # its (shift, pending) after this contraction
