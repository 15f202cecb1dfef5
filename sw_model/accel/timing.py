"""Derived timing of an accelerator configuration: every pipeline latency and fixed
cycle cost, computed once from ``AccelConfig``.

This is the one place these numbers are derived. The compiler's cycle model
(``sw_model.program.compiler``) reads them to predict cycles; the RTL is built from
them: ``rtl.top.Top`` passes ``timing(cfg)`` to the controller (its TAIL length)
and the fabric asserts that its own pipeline (distribution network, PE product
register, reduction network, output stages) has exactly these latencies, so the
hardware and the model cannot drift apart silently.

Latencies (cycles):

* ``dist``: operand latency from the buffer read data to the PE accumulators:
  the distribution network's register (``DISTRIBUTION_LATENCY``) plus
  ``dist_pipeline`` extra switch registers plus ``mac_pipeline`` (the PE product
  register of the multiply MAC);
* ``red``: reduction network, one register per stage (``5*log2(N) - 2``, 1 for N=2);
* ``output``: output stage (shift, round, saturate, write), ``OUTPUT_STAGE_LATENCY``;
* ``drain``: one tile's shadow accumulators drain in ``pe_rows * out_share`` cycles;
* ``tail``: after a CONTRACT's final issue the last tile drains in
  ``1 + dist + 1 + drain + red + output`` cycles (the +1s: the issue's own cycle,
  and the shadows taking the registered sums a cycle after the last step).

Fixed instruction costs: ``fetch`` (FETCH + DECODE), ``config_words`` and
``contract_words`` (payload words, one load cycle each).

Costs that depend on an instruction's loop counts (methods): ``check_cycles``, the
CONTRACT's serial bound check (``isa.check_cycles``); ``contract_fixed``, a
CONTRACT's cycles besides its issues and drain stalls; ``move_cycles``, a whole
MOVE (``move.move_cycles``: its range check and one cycle per element);
``vec_cycles``, a whole VEC (``vec.vec_cycles``).

``vector_busy(program)``: the vector-busy cycles a program's VEC, XENT and ADAM
instructions take, by operation (``{"vec", "xent", "adam"}``: what ``Reg.VEC`` less
the other two, ``Reg.XENT_CYCLES`` and ``Reg.ADAM_CYCLES`` count; static, from each
instruction's ``busy_cycles``).
"""

from __future__ import annotations

from dataclasses import dataclass

from .config import AccelConfig
from .isa import CONTRACT_WORDS, Op, check_cycles, config_words, instructions
from .move import move_cycles
from .adam import Adam
from .vec import Vec, vec_cycles
from .xent import Xent
from .routing import DISTRIBUTION_LATENCY, reduction_latency, reduction_n_switch_bits

__all__ = ["Timing", "timing", "vector_busy", "VECTOR_OPS", "OUTPUT_STAGE_LATENCY",
           "FETCH_CYCLES"]

VECTOR_OPS = ("vec", "xent", "adam")   # vector-busy cycles by operation

# Output stage: multiply-free shift, round (dither), saturate, registered write; the
# RTL (``rtl.output_stage.OutputStage``) is built with this latency and asserts it.
OUTPUT_STAGE_LATENCY = 4
# FETCH + DECODE of every instruction.
FETCH_CYCLES = 2


@dataclass(frozen=True)
class Timing:
    """The fixed latencies and cycle costs of one configuration (see module doc)."""
    dist: int               # operand latency, buffer data -> PE accumulators
    red: int                # reduction network
    output: int             # output stage
    drain: int              # one tile's shadow drain (pe_rows * out_share)
    fetch: int              # FETCH + DECODE of any instruction
    config_words: int       # CONFIG payload words
    contract_words: int     # CONTRACT payload words
    tail: int               # last tile's drain after a CONTRACT's final issue

    def config_cycles(self) -> int:
        """Cycles of one CONFIG instruction: fetch, payload, commit."""
        return self.fetch + self.config_words + 1

    def move_cycles(self, counts) -> int:
        """Cycles of one MOVE with loop ``counts`` (``Move.counts``;
        ``sw_model.accel.move.move_cycles``)."""
        return move_cycles(counts, self.fetch)

    def vec_cycles(self, counts, op) -> int:
        """Cycles of one VEC with loop ``counts`` and ``op``
        (``sw_model.accel.vec.vec_cycles``)."""
        return vec_cycles(counts, op, self.fetch)

    def check_cycles(self, counts) -> int:
        """Bound check of a CONTRACT with loop ``counts`` (``Contract.counts``: levels,
        then ``k_count``), start to done (``isa.check_cycles``)."""
        return check_cycles(counts)

    def contract_fixed(self, counts) -> int:
        """Cycles of one CONTRACT with loop ``counts`` besides its issues and drain
        stalls: fetch, payload, validate, bound check, tail."""
        return self.fetch + self.contract_words + 1 + self.check_cycles(counts) + self.tail


def timing(cfg: AccelConfig) -> Timing:
    """The derived timing of ``cfg``."""
    dist = DISTRIBUTION_LATENCY + cfg.dist_pipeline + cfg.mac_pipeline
    red = reduction_latency(cfg.c_lanes)
    return Timing(dist=dist, red=red, output=OUTPUT_STAGE_LATENCY, drain=cfg.drain_cycles,
                  fetch=FETCH_CYCLES,
                  config_words=config_words(cfg, reduction_n_switch_bits(cfg.c_lanes)),
                  contract_words=CONTRACT_WORDS,
                  tail=1 + dist + 1 + cfg.drain_cycles + red + OUTPUT_STAGE_LATENCY)


def vector_busy(program) -> dict:
    """Vector-busy cycles of ``program`` (words) by operation, ``VECTOR_OPS``: each VEC's,
    XENT's and ADAM's ``busy_cycles`` (the counters ``Reg.VEC`` = their sum,
    ``Reg.XENT_CYCLES``, ``Reg.ADAM_CYCLES``)."""
    kinds = {Op.VEC: ("vec", Vec), Op.XENT: ("xent", Xent), Op.ADAM: ("adam", Adam)}
    out = dict.fromkeys(VECTOR_OPS, 0)
    for _, op, payload in instructions(program):
        if op in kinds:
            name, cls = kinds[op]
            out[name] += cls.decode(payload).busy_cycles
    return out
