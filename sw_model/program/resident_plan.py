"""Plans of resident chains: a chain of contractions whose intermediates never leave
the chip, compiled, placed and cut into programs (run by ``sim.resident``).

``plan_resident(plan, shapes, cfg)`` plans a checked chain (``sim.chain.check_chain``)
as few programs as program memory allows:

* every step is compiled once (``compile_contraction``) and its CONTRACTs are rebased
  to the rows where its operands and result live;
* a step's result is written to C in its producer's layout, then MOVEd
  (``sw_model.program.moves.relayout``) into the A or B layout of every later step
  that reads it (one home per distinct layout), right after the producer;
* the host writes only the chain's inputs (in the layouts of their consumers) before
  the first program and reads only the outputs nothing consumes, after the last;
* homes are placed by live range with the allocator's rule
  (``sw_model.program.allocator.place_pieces``; first fit, then best fit) at half-step
  positions: step ``i`` computes at ``2i`` and MOVEs its result at ``2i + 1`` (a MOVE
  starts only after the CONTRACT before it has drained, so the rows of operands
  whose last reader has run are free for it). An input's home lives from the start to
  its last reader's compute, a moved result's home from its producer's MOVEs to its
  last reader's compute, a result's C rows from its producer's compute to its MOVEs
  (or to the end, for an output);
* the program is cut at step boundaries where it would exceed ``prog_depth``; the
  buffers keep their contents between programs (the host writes the next program
  and START, no data).

Layouts. Every step is first compiled cycle-optimal (``compile_contraction``'s
default); when those homes do not fit the banks (and ``footprint``, the default), the
layouts are made footprint-aware, step by step, at the first piece that does not fit
(its bank, its position):

1. merge: when a tensor has several homes in one bank (its readers use different
   layouts) and one of them overlaps the failure, its later readers take the fastest
   layout whose words coincide with the earliest reader's, so one home (and one MOVE)
   serves them all;
2. shrink: otherwise the largest piece overlapping the failure that can take fewer
   rows does: its step (every reader of a shared home) is recompiled within a row
   budget one below its rows for that operand (``max_rows``, ``slack=0``: the fastest
   layout within the budget, the smallest footprint among equally fast ones); a
   step's budgets only go down;
3. until the placement fits or nothing merges or shrinks (or a choice of layouts
   comes back); then the same from every step's smallest footprint
   (``slack=math.inf``) before giving up;
4. relax: once it fits, each step that lost cycles (most first) takes the fastest
   layout that still fits and lowers the predicted cycles of the steps and MOVEs.

Only the choice among the compiler's candidates changes, never the cycle model:
every program is an ordinary compiled contraction, so the predicted cycles stay
exact. ``ResidentPlan.footprint_steps`` lists the steps (within the plan) whose
layout is not the cycle-optimal one.

Predicted cycles (``ResidentPlan.predicted_cycles``): the steps' less their HALTs,
the MOVEs' (``MovePlan.cycles``), one HALT per program; equal to the programs'
CYCLES counters.

Staged inputs (``stage=True``): an input whose homes take more host words than it has
elements (replicas of it in several lanes or groups, padding lanes the mapping reads)
is written by the host densely, one word per element, into C from row 0, and MOVEd
into each of its homes (``moves.relayout_dense``) at the head of the first program,
before any step writes C; inputs are staged largest saving first while C's rows
last. Host words go down by the replicas and padding, MOVE cycles up by the words
laid out (``ResidentPlan.staged``, ``host_words``; ``predicted_cycles`` includes the
staging MOVEs).

Epilogues (a step's ``bias``, ``mask``, ``act``, ``pre``, ``reshape``, ``xent``;
``sim.chain``)
run as VEC instructions (``sw_model.program.elementwise``) right after the step's
CONTRACTs: the bias (a dense home in ``BIAS_BANK``) and the mask (a dense home in
``MASK_BANK``, filled by ``moves.relayout_to_dense`` after its producer when the chain
makes it) are applied in place to the result in C; with ``act`` every reader's home is
filled by RELU_REQ VECs instead of MOVEs (and a dense home in A when the host reads
the activation), the C rows keeping the pre-activation (``pre``). Their cycles enter
the layout choice (``_Planner.cycles``) and ``predicted_cycles``; ``vecs`` lists them
and ``vec_cycles``/``vec_elements`` count them. A chain whose plans are the same
(chain, input shapes, preset) is planned once per process (``plan_segments``' cache).

An ``xent`` epilogue (after the bias) runs as: the logits MOVEd out of C densely into
``XENT_BANK``; a ``fill`` MOVE clearing the gradient's dense home in ``GRAD_BANK``
(C: a MOVE copies between two buffers); the labels, an input the host writes densely
(one word per row) into ``XENT_BANK``, MOVEd to each row's first word there; one
XENT (labels mode) from the logits into that home; then MOVEs
(``moves.relayout_dense``) from it into the layout of every step that reads the
gradient. The host reads logits or gradient (when it does) from their dense homes
(``output_home``). All of it is in ``predicted_cycles`` (the copies as moves, the
fill, label MOVE and XENT as ``vecs``).

Refusals (``ValueError``, one line; ``sim.resident`` raises them as ``FettaError``):
a configuration without the MOVE unit, a step that does not compile into one
program, homes that do not fit a bank (naming the bank, the rows needed and the
depth).

When the chain does not fit at once (even with footprint-aware layouts) it is cut
into segments (``plan_segments``): from the front, the longest run of steps that fits
(tried longest first: a shorter run can fail where a longer one fits, since a result
a later segment reads stays in C to the end of its own); a tensor crossing a cut is
read by the host at the end of its segment and written at the start of the next that
reads it (host words, counted), and a step that does not compile into one program
runs as a separate job (the harness chunks it).

Members: ``ResidentPlan``, ``plan_resident``, ``Segment``, ``plan_segments``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from dataclasses import dataclass, field

import numpy as np

from ..accel.config import AccelConfig
from ..accel.hostmap import CONTROL_READS, CONTROL_WRITES, UNIT_COUNTER_READS
from ..accel.isa import HALT, Contract, Op, instructions
from ..accel.move import Move, MoveLevel, buffer_lanes
from ..accel.shift_slots import Vote, as_vote
from ..accel.step import derive
from ..accel.timing import timing
from ..accel.vec import Vec
from ..accel.xent import Xent, xent_cycles, xent_row_cycles
from ..arith.einsum_spec import parse_spec
from .allocator import Piece, place_pieces
from .compiler import CompiledContraction, candidates, compile_contraction
from .elementwise import VecPlan, in_place, to_operand, vec_map
from .moves import (MovePlan, operand_words, relayout, relayout_dense, relayout_to_dense,
                    result_words)
from .update import load_dense, update_bias, update_core

__all__ = ["ResidentPlan", "plan_resident", "Segment", "plan_segments", "literal_seeds"]

_BANK = {"a": "A", "b": "B"}
DENSE = "dense"       # the layout key of a home holding element e at word e
BIAS_BANK = "A"       # biases (dense): beside the activations; B holds the weights
MASK_BANK = "A"       # ReLU masks (pre-activations, dense), likewise
XENT_BANK = "A"       # an xent's labels and logits (dense), likewise
GRAD_BANK = "C"       # an xent's gradient (dense): a MOVE copies between two buffers
UPDATE_BANK = "A"     # an output gradient copied densely for its bias update
_CPARAMS = ("shift", "rounding", "out_bits", "seed")


def _cparams(p: dict) -> dict:
    """A step's contraction parameters (its epilogue's left out)."""
    return {k: p[k] for k in _CPARAMS if k in p}


def _reads(step) -> list:
    """Tensors a step reads: its operands and its epilogue's bias, mask and labels."""
    _, a, b, _, p = step
    return [a, b] + [p[k] for k in ("bias", "mask") if k in p] + \
        ([p["xent"]["labels"]] if "xent" in p else [])


def _makes(step) -> list:
    """Tensors a step makes: its output and its epilogue's ``pre`` and ``grad``."""
    _, _, _, o, p = step
    return [o] + ([p["pre"]] if "pre" in p else []) + \
        ([p["xent"]["grad"]] if "xent" in p else [])


def _made_shapes(step, out_shape) -> dict:
    """The einsum shape of everything step ``step`` makes, its output's being
    ``out_shape`` (after any ``reshape``)."""
    p = step[4]
    shapes = {name: tuple(out_shape) for name in _makes(step)}
    if "xent" in p:
        shapes[p["xent"]["grad"]] = tuple(p["xent"].get("reshape", out_shape))
    return shapes


@dataclass
class _Home:
    tensor: str
    bank: str
    key: str              # hash of the element-per-word map (one home per layout)
    rows: int
    start: int
    end: int
    step: int             # the first step reading it (its layout's compiler)
    role: str
    base: int = 0
    elements: int = 0     # dense homes (DENSE key): the tensor's elements, one per word


@dataclass
class ResidentPlan:
    """Programs and placement of a resident chain (``plan_resident``)."""
    config: AccelConfig
    compiled: list                      # CompiledContraction per step
    homes: dict                         # (tensor, bank, key) -> _Home
    c_base: dict                        # step -> C row of its result
    programs: list                      # lists of words, each ending in HALT
    moves: list                         # (step, tensor, bank, MovePlan)
    outputs: list                       # tensor names the host reads
    peak_rows: dict = field(default_factory=dict)
    step_outputs: list = field(default_factory=list)   # result name per step
    footprint_steps: list = field(default_factory=list)   # steps not cycle-optimal
    staged: dict = field(default_factory=dict)   # input -> (first C row, elements)
    vecs: list = field(default_factory=list)     # (step, tensor, bank, VecPlan)
    epilogue_outputs: dict = field(default_factory=dict)   # name -> (step, kind)
    shapes: dict = field(default_factory=dict)   # every tensor's einsum shape
    state: dict = field(default_factory=dict)    # inputs the update unit lays out

    @property
    def choices(self) -> list:
        """Every step's layout choice (mapping, A lanes, B lanes): ``plan_resident``'s
        ``layouts`` for the same chain with other seeds or shifts."""
        return [_choice(cc) for cc in self.compiled]

    @property
    def predicted_cycles(self) -> int:
        """Cycles of all programs (the CYCLES counters' sum): every step's predicted
        cycles less its HALT, the MOVEs, the epilogues' VECs, one HALT per program."""
        halt = 2
        return (sum(cc.predicted_cycles - halt for cc in self.compiled) +
                self.move_cycles + self.vec_cycles + halt * len(self.programs))

    @property
    def move_cycles(self) -> int:
        return sum(mp.cycles for _, _, _, mp in self.moves)

    @property
    def vec_cycles(self) -> int:
        """The epilogues' cycles (VECs and the fills of their destination layouts)."""
        return sum(vp.cycles for _, _, _, vp in self.vecs)

    @property
    def move_elements(self) -> int:
        """The MOVEs' element cycles (what the MOVE counter counts): words copied plus
        rows cleared (also the rows an epilogue's layout clears)."""
        return (sum(mv.elements for _, _, _, mp in self.moves for mv in mp.moves) +
                sum(i.elements for _, _, _, vp in self.vecs for i in vp.instructions
                    if isinstance(i, Move)))

    @property
    def vec_elements(self) -> int:
        """What the VEC counter counts: one per element through the vector ALU."""
        return sum(vp.elements for _, _, _, vp in self.vecs)

    def input_homes(self) -> list:
        """The homes the host writes: those of tensors no step of the plan produces."""
        return [h for h in self.homes.values() if h.tensor not in self.step_outputs
                and h.tensor not in self.epilogue_outputs and h.tensor not in self.state]

    @property
    def host_words(self) -> dict:
        """Host-bus words of running the plan (``sim.resident`` moves these):
        ``written`` = the used lanes (``CompiledContraction.lanes_used``) of every row
        of every input home, every program and its control writes; ``read`` = the used
        C lanes of every output's rows and each program's status/counter reads."""
        written = sum(h.elements if h.key == DENSE else
                      h.rows * self.compiled[h.step].lanes_used(h.role)
                      for h in self.input_homes() if h.tensor not in self.staged)
        written += sum(n for t, (_, n) in self.staged.items() if t not in self.state)
        written += sum(len(p) + CONTROL_WRITES for p in self.programs)
        read = CONTROL_READS * len(self.programs)
        # after a program with an XENT or ADAM: the vector unit's counters by op
        read += UNIT_COUNTER_READS * sum(
            any(op in (Op.XENT, Op.ADAM) for _, op, _ in instructions(p))
            for p in self.programs)
        for name in self.outputs:
            home = self.output_home(name)
            if home is not None:
                read += home.elements
            else:
                cc = self.compiled[self.result_step(name)]
                read += cc.c_rows * cc.lanes_used("c")
        return {"written": written, "read": read}

    def result_step(self, name: str) -> int:
        """The step whose C rows hold ``name`` (a step output or an epilogue's
        ``pre``)."""
        if name in self.epilogue_outputs:
            return self.epilogue_outputs[name][0]
        return self.step_outputs.index(name)

    def output_home(self, name: str):
        """The dense home an output is read from (an activation's, an xent's logits
        or gradient; None: read from C in its producer's layout)."""
        for bank in ("A", GRAD_BANK):
            h = self.homes.get((name, bank, DENSE))
            if h is not None and h.role in ("out", "xsrc", "grad"):
                return h
        return None


def _layout_key(cc: CompiledContraction, role: str, shape) -> str:
    held = operand_words(cc, role, shape)
    return hashlib.sha1(held.tobytes()).hexdigest()[:16]


def _rebased(cc: CompiledContraction, a: int, b: int, c: int) -> list[int]:
    """``cc``'s program without its HALT, every CONTRACT's A/B/C bases moved by rows."""
    prog, out = list(cc.program), []
    for pc, op, payload in instructions(prog):
        if op == Op.HALT:
            break
        words = [prog[pc], *payload]
        if op == Op.CONTRACT:
            k = Contract.decode(payload)
            words = dataclasses.replace(k, base_a=k.base_a + a, base_b=k.base_b + b,
                                        base_c=k.base_c + c).encode()
        out += words
    return out


def _bias_add(cfg: AccelConfig, cc: CompiledContraction, p: dict, bias_shape, bias_row: int,
              c_row: int):
    """The VECs adding the bias (dense in ``BIAS_BANK`` from ``bias_row``, broadcast
    over the leading dimensions) to a result in C from ``c_row``, in place."""
    n_bias = math.prod(bias_shape)
    words = result_words(cc)
    return in_place(cfg, "add", np.arange(words.size) % n_bias, words, src=BIAS_BANK,
                    dst="C", src_row=bias_row, dst_row=c_row, out_bits=p["out_bits"])


def _mask(cfg: AccelConfig, cc: CompiledContraction, p: dict, mask_row: int, c_row: int):
    """The VECs of ReLU's backward on a result in C from ``c_row``, in place: zero where
    the mask (dense in ``MASK_BANK`` from ``mask_row``) is not positive."""
    words = result_words(cc)
    return in_place(cfg, "mask", np.arange(words.size), words, src=MASK_BANK, dst="C",
                    src_row=mask_row, dst_row=c_row, out_bits=p["out_bits"])


def _act_dense(cfg: AccelConfig, cc: CompiledContraction, p: dict, c_row: int,
               dst_row: int):
    """The VECs of an activation output the host reads: ReLU + requantization from C
    (from ``c_row``) into A densely (element ``e`` at word ``e`` from ``dst_row``)."""
    words = result_words(cc)
    e = np.arange(words.size, dtype=np.int64)
    return vec_map(cfg, "relu_req", e, words, e, src="C", dst="A", src_row=c_row,
                   dst_row=dst_row, **_act_params(p["act"]))


def _xent(cfg: AccelConfig, p: dict, shape, src_row: int, labels_row: int,
          grad_row: int) -> VecPlan:
    """The instructions of an ``xent`` epilogue on logits of einsum ``shape`` (rows of
    its last dimension) held densely in ``XENT_BANK`` from ``src_row``: the gradient's
    dense home (``GRAD_BANK`` from ``grad_row``) cleared by a ``fill`` MOVE, the labels
    (dense in ``XENT_BANK`` from ``labels_row``) MOVEd into each row's first word, then
    one XENT (labels mode)
    over the first ``classes`` words of every row. ``elements``: what the VEC counter
    counts (the rows' cycles and the last write)."""
    x = p["xent"]
    width = int(shape[-1])
    rows = math.prod(shape) // width
    lanes, gl = buffer_lanes(cfg, XENT_BANK), buffer_lanes(cfg, GRAD_BANK)
    g0 = grad_row * gl
    fill = Move(XENT_BANK, GRAD_BANK, 0, g0, (MoveLevel(-(-rows * width // gl), 0, gl),),
                fill=True)
    lab = Move(XENT_BANK, GRAD_BANK, labels_row * lanes, g0, (MoveLevel(rows, 1, width),))
    n = x["classes"]
    xe = Xent(Move(XENT_BANK, GRAD_BANK, src_row * lanes, g0,
                   (MoveLevel(rows, width, width), MoveLevel(n, 1, 1))),
              x["frac"], x["bsz"], x["out_bits"], labels=True)
    tm = timing(cfg)
    cycles = tm.move_cycles(fill.counts) + tm.move_cycles(lab.counts) + \
        xent_cycles(xe.counts, tm.fetch)
    return VecPlan((fill, lab, xe), rows * xent_row_cycles(n) + 1, cycles)


def _act_params(act: dict) -> dict:
    """An ``act`` epilogue's VEC parameters (its shift slot's left out)."""
    return {k: act[k] for k in _CPARAMS if k in act}


def _act_slot(plans: list, act: dict) -> list:
    """``plans`` (the activation's VecPlans of one step, in program order) with every
    VEC naming the act's shift slot: ``gather`` on all but the last, which casts the
    act's ``vote`` (shift field 0: the slot holds it). Unchanged without a slot."""
    if not act.get("slot"):
        return plans
    vote = as_vote(act.get("vote", "none"))
    n = sum(isinstance(ins, Vec) for vp in plans for ins in vp.instructions)
    out, k = [], 0
    for vp in plans:
        ins = []
        for v in vp.instructions:
            if isinstance(v, Vec):
                k += 1
                v = dataclasses.replace(v, shift=0, slot=act["slot"],
                                        vote=vote if k == n or vote == Vote.NONE
                                        else Vote.GATHER)
            ins.append(v)
        out.append(dataclasses.replace(vp, instructions=tuple(ins)))
    return out


def _compile_step(i: int, step, shapes: dict, cfg: AccelConfig, **opts):
    """Step ``i`` compiled with compiler options ``opts`` (a ValueError when it does
    not compile into one program at all)."""
    spec, a, b, _, p = step
    try:
        cc = compile_contraction(spec, shapes[a], shapes[b], cfg, **_cparams(p), **opts)
    except ValueError as exc:
        raise ValueError(f"step {i} '{spec}' does not compile into one program on "
                         f"'{cfg.name}' ({str(exc).split(';')[0]}); a resident chain "
                         f"needs every step in one program") from None
    if p.get("slot") and not opts.get("plan_only"):
        # its CONTRACTs take the shift from the step's shift slot (the same program)
        try:
            cc = cc.with_params(**_cparams(p), index_offset=cc._layout.get("index_offset", 0),
                                slot=p["slot"], vote=p.get("vote", "none"))
        except ValueError as exc:
            raise ValueError(f"step {i} '{spec}': {exc}") from None
    return cc


def _choice(cc: CompiledContraction) -> tuple:
    return cc.mapping, cc.im, cc.in_


@dataclass
class _Placed:
    """One placement of a chain's homes and results (``_Planner.place``)."""
    homes: dict
    home_of: dict
    pieces: list
    bases: dict
    fail: int | None


class _Planner:
    """Layout choice and placement of one resident chain (module docstring)."""

    def __init__(self, plan, shapes: dict, cfg: AccelConfig, keep, discard=()):
        self.plan, self.cfg, self.n = plan, cfg, len(plan)
        self.shapes = dict(shapes)
        self.default = []
        self.producer = {}
        for i, (spec, a, b, o, p) in enumerate(plan):
            cc = _compile_step(i, plan[i], self.shapes, cfg, plan_only=True)
            self.default.append(cc)
            out_shape = p.get("reshape") or cc.spec.output_shape(self.shapes[a],
                                                                  self.shapes[b])
            for name, shape in _made_shapes(plan[i], out_shape).items():
                self.shapes[name] = shape
                self.producer[name] = i
        readers = {x for st in plan for x in _reads(st)}
        self.outputs = [x for st in plan for x in _makes(st)
                        if (x not in readers or x in keep) and x not in discard]
        self.act = {o: i for i, (_, _, _, o, p) in enumerate(plan) if "act" in p}
        self.grads = {p["xent"]["grad"]: i for i, (_, _, _, _, p) in enumerate(plan)
                      if "xent" in p}
        self._epi: dict = {}
        for i, (spec, _, _, _, p) in enumerate(plan):
            if p.get("mask") in self.act:
                raise ValueError(f"step {i} '{spec}': mask {p['mask']!r} is an activation "
                                 f"output (in C the step holds its input); mask with its "
                                 f"'pre'")
        self._cc: dict = {}
        self._keys: dict = {}
        self._moves: dict = {}
        self._cands: dict = {}

    # -- compiled layouts, cached by step and choice --------------------------------
    def compiled(self, i: int, **opts) -> CompiledContraction | None:
        """Step ``i`` compiled (plan only) with compiler options, or None when no
        candidate satisfies them."""
        try:
            cc = _compile_step(i, self.plan[i], self.shapes, self.cfg, plan_only=True,
                               **opts)
        except ValueError:
            return None
        return self._cc.setdefault((i, _choice(cc)), cc)

    def forced(self, i: int, choice: tuple) -> CompiledContraction:
        cc = self._cc.get((i, choice))
        if cc is None:
            mp, im, in_ = choice
            cc = self._cc[i, choice] = _compile_step(i, self.plan[i], self.shapes,
                                                      self.cfg, plan_only=True,
                                                      mapping=mp, lanes=(im, in_))
        return cc

    def choices(self, i: int) -> list:
        """Every (mapping, im, in) of step ``i``, fewest cycles first."""
        if i not in self._cands:
            spec, a, b, _, _ = self.plan[i]
            self._cands[i] = candidates(spec, self.shapes[a], self.shapes[b], self.cfg)
        return self._cands[i]

    def key(self, i: int, role: str, cc: CompiledContraction) -> str:
        k = (i, role, _choice(cc))
        if k not in self._keys:
            name = self.plan[i][1 if role == "a" else 2]
            self._keys[k] = _layout_key(cc, role, self.shapes[name])
        return self._keys[k]

    def move_cycles(self, prod: CompiledContraction, cons: CompiledContraction,
                    role: str, name: str) -> int:
        """Cycles of bringing ``name`` from ``prod``'s C layout into ``cons``'s operand
        ``role``: its MOVEs, or, for an activation output, the VECs of its epilogue."""
        k = (name, _choice(prod), _choice(cons), role)
        if k not in self._moves:
            if name in self.act:
                act = self.plan[self.act[name]][4]["act"]
                self._moves[k] = to_operand(self.cfg, "relu_req", result_words(prod), cons,
                                            role, self.shapes[name],
                                            **_act_params(act)).cycles
            elif name in self.grads:          # from its dense home, GRAD_BANK
                self._moves[k] = relayout_dense(cons, role, self.shapes[name],
                                                src=GRAD_BANK).cycles
            else:
                self._moves[k] = relayout(prod, cons, role, self.shapes[name]).cycles
        return self._moves[k]

    def epilogue_cycles(self, i: int, cc: CompiledContraction) -> int:
        """Cycles of step ``i``'s bias add and dense activation output (the VECs that
        do not depend on a reader's layout)."""
        k = (i, _choice(cc))
        if k not in self._epi:
            p = self.plan[i][4]
            total = 0
            if "bias" in p:
                total += _bias_add(self.cfg, cc, p, self.shapes[p["bias"]], 0, 0).cycles
            if "mask" in p:
                total += _mask(self.cfg, cc, p, 0, 0).cycles
            if "act" in p and self.plan[i][3] in self.outputs:
                total += _act_dense(self.cfg, cc, p, 0, 0).cycles
            if "xent" in p:
                total += relayout_to_dense(cc, dst=XENT_BANK).cycles
                total += _xent(self.cfg, p, self.shapes[self.plan[i][3]], 0, 0, 0).cycles
            self._epi[k] = total
        return self._epi[k]

    # -- placement -----------------------------------------------------------------
    def place(self, layout: list) -> _Placed:
        """Homes of every operand (one per tensor, bank and layout) and the results'
        C rows, placed by live range. Positions: step ``i`` computes at ``2i`` and
        moves its result at ``2i + 1``; an input's home lives from 0, a moved
        result's from its producer's moves, both to their last reader's compute; a
        result's C rows from its producer's compute to its moves (outputs: to the
        end). First fit, then best fit when first fit does not fit."""
        homes: dict = {}
        home_of: dict = {}
        for i, (spec, a, b, o, p) in enumerate(self.plan):
            cc = layout[i]
            for role, name in (("a", a), ("b", b)):
                key = (name, _BANK[role], self.key(i, role, cc))
                home_of[i, role] = key
                if key in homes:
                    homes[key].end = 2 * i
                    continue
                rows = cc.a_rows if role == "a" else cc.b_rows
                start = 2 * self.producer[name] + 1 if name in self.producer else 0
                homes[key] = _Home(name, _BANK[role], key[2], rows, start, 2 * i, i, role)
            if "bias" in p:
                n = math.prod(self.shapes[p["bias"]])
                key = (p["bias"], BIAS_BANK, DENSE)
                home_of[i, "bias"] = key
                if key in homes:
                    homes[key].end = 2 * i
                else:
                    homes[key] = _Home(p["bias"], BIAS_BANK, DENSE,
                                       -(-n // self.cfg.a_lanes), 0, 2 * i, i, "bias",
                                       elements=n)
            if "mask" in p:
                m = p["mask"]
                n = math.prod(self.shapes[m])
                key = (m, MASK_BANK, DENSE)
                home_of[i, "mask"] = key
                if key in homes:
                    homes[key].end = 2 * i
                else:
                    start = 2 * self.producer[m] + 1 if m in self.producer else 0
                    homes[key] = _Home(m, MASK_BANK, DENSE, -(-n // self.cfg.a_lanes),
                                       start, 2 * i, i, "mask", elements=n)
            if "xent" in p:
                self._xent_homes(i, p, homes, home_of)
            elif any(u["kind"] == "bias" for u in p.get("update", ())):
                # the output gradient copied out of C densely (during the step's moves)
                # for its bias update's batch sum: one stride per element
                n = math.prod(self.shapes[o])
                key = (o, UPDATE_BANK, DENSE)
                home_of[i, "usrc"] = key
                homes[key] = _Home(o, UPDATE_BANK, DENSE,
                                   -(-n // buffer_lanes(self.cfg, UPDATE_BANK)),
                                   2 * i + 1, 2 * i + 1, i, "usrc", elements=n)
        last = 2 * self.n - 1
        for o, i in self.act.items():
            if o in self.outputs:       # read by the host from a dense home in A
                n = math.prod(self.shapes[o])
                homes[o, "A", DENSE] = _Home(o, "A", DENSE, -(-n // self.cfg.a_lanes),
                                             2 * i + 1, last, i, "out", elements=n)
                home_of[i, "out"] = (o, "A", DENSE)
        pieces = [Piece(f"{h.tensor}@{h.key}", h.bank, h.start, h.end, h.rows)
                  for h in homes.values()]
        pieces += [Piece(self.plan[i][3], "C", 2 * i,
                         last if self._c_kept(i) else 2 * i + 1,
                         layout[i].c_rows) for i in range(self.n)]
        first = None
        for strategy in ("first", "best"):
            bases, fail = place_pieces(pieces, self.cfg.bank_depth, strategy)
            placed = _Placed(homes, home_of, pieces, bases, fail)
            if fail is None:
                return placed
            first = first or placed
        return first

    def _xent_homes(self, i: int, p: dict, homes: dict, home_of: dict) -> None:
        """The dense homes of step ``i``'s ``xent`` epilogue: in ``XENT_BANK`` the
        labels (an input, from the start) and the logits copied out of C (during the
        step's moves; to the end when the host reads them), in ``GRAD_BANK`` the
        gradient (from
        the step's moves to its last reader's compute or, when the host reads it,
        the end; its readers' homes are filled from it)."""
        x, o = p["xent"], self.plan[i][3]
        last = 2 * self.n - 1
        ends = {x["labels"]: 2 * i + 1, o: last if o in self.outputs else 2 * i + 1,
                x["grad"]: last if x["grad"] in self.outputs else 2 * i + 1}
        for name, role, bank in ((x["labels"], "labels", XENT_BANK),
                                 (o, "xsrc", XENT_BANK), (x["grad"], "grad", GRAD_BANK)):
            key = (name, bank, DENSE)
            home_of[i, role] = key
            if key in homes:
                homes[key].end = max(homes[key].end, ends[name])
                continue
            n = math.prod(self.shapes[name])
            homes[key] = _Home(name, bank, DENSE, -(-n // buffer_lanes(self.cfg, bank)),
                               0 if role == "labels" else 2 * i + 1, ends[name], i, role,
                               elements=n)

    def _c_kept(self, i: int) -> bool:
        """Step ``i``'s C rows are read by the host at the end (its output, unless an
        activation's or logits of an ``xent``, which are read from their dense
        home; or its ``pre``)."""
        o, p = self.plan[i][3], self.plan[i][4]
        return (o in self.outputs and "act" not in p and "xent" not in p) or \
            p.get("pre") in self.outputs

    def cycles(self, layout: list, placed: _Placed) -> int:
        """Predicted cycles of the steps, their MOVEs and epilogues (HALTs left
        out)."""
        total = sum(cc.predicted_cycles + self.epilogue_cycles(i, cc)
                    for i, cc in enumerate(layout))
        for h in placed.homes.values():
            i = self.producer.get(h.tensor)
            if i is not None and h.key != DENSE:
                total += self.move_cycles(layout[i], layout[h.step], h.role, h.tensor)
            elif i is not None and h.role == "mask":
                total += self._dense_cycles(i, layout[i])
        return total

    def _dense_cycles(self, i: int, cc: CompiledContraction) -> int:
        """Cycles of the MOVEs copying step ``i``'s result out of C densely."""
        k = ("dense", i, _choice(cc))
        if k not in self._epi:
            self._epi[k] = relayout_to_dense(cc, dst=MASK_BANK).cycles
        return self._epi[k]

    # -- footprint-aware layouts ---------------------------------------------------
    def _targets(self, placed: _Placed) -> list:
        """The pieces that overlap the piece that failed, in its bank, largest first:
        ``(rows, [(step, role), ...])``, every consumer of a shared home."""
        f = placed.pieces[placed.fail]
        live = [k for k, pc in enumerate(placed.pieces) if pc.bank == f.bank and
                pc.start <= f.start <= pc.end]
        homes = list(placed.homes.values())
        out = []
        for k in live:
            pc = placed.pieces[k]
            if k < len(homes) and homes[k].key == DENSE:
                continue                # one word per element: nothing to shrink
            if k < len(homes):
                h = homes[k]
                users = [(i, r) for (i, r), key in placed.home_of.items()
                         if key == (h.tensor, h.bank, h.key)]
            else:
                users = [(k - len(homes), "c")]
            out.append((pc.rows, users))
        return sorted(out, key=lambda t: -t[0])

    def _merge(self, layout: list, placed: _Placed, budgets: list) -> bool:
        """Give the readers of one tensor the same layout in one bank, so one home
        serves them: among the tensors with more than one home in a bank, one of them
        overlapping the failure, the later readers take the fastest layout (within
        their budgets) whose key equals the earliest reader's. True when one merge
        was made."""
        live = {u for _, users in self._targets(placed) for u in users}
        by_home: dict = {}
        for (i, role), (name, bank, key) in sorted(placed.home_of.items()):
            if key != DENSE:
                by_home.setdefault((name, bank), []).append((i, role, key))
        for users in by_home.values():
            target = users[0][2]
            others = [(i, r) for i, r, key in users if key != target]
            if not others or not any((i, r) in live for i, r, _ in users):
                continue
            new = {}
            for i, role in others:
                for c in self.choices(i):
                    rows = dict(zip("abc", (c.a_rows, c.b_rows, c.c_rows)))
                    if any(rows[r] > lim for r, lim in budgets[i].items()):
                        continue
                    cc = self.forced(i, (c.mapping, c.im, c.in_))
                    if self.key(i, role, cc) == target:
                        new[i] = cc
                        break
                else:
                    break
            else:
                for i, cc in new.items():
                    layout[i] = cc
                return True
        return False

    def _shrink(self, layout: list, placed: _Placed, budgets: list) -> bool:
        """Lower the rows of the largest piece overlapping the failure that can take
        fewer (the fastest layout within the lower budget, smallest footprint among
        equally fast ones). True when one piece was shrunk."""
        for rows, users in self._targets(placed):
            new = {}
            for i, role in users:
                lim = {**budgets[i], role: rows - 1}
                cc = self.compiled(i, max_rows=lim, slack=0)
                if cc is None:
                    break
                new[i] = (cc, lim)
            else:
                for i, (cc, lim) in new.items():
                    layout[i], budgets[i] = cc, lim
                return True
        return False

    def fit(self, layout: list):
        """From ``layout``, merge homes and shrink pieces at the failure until the
        placement fits: ``(layout, placed)``, or ``(None, last placement)``."""
        layout = list(layout)
        budgets = [{} for _ in layout]
        seen = set()
        while True:
            placed = self.place(layout)
            if placed.fail is None:
                return layout, placed
            state = tuple(_choice(cc) for cc in layout)
            if state in seen:
                return None, placed
            seen.add(state)
            if not (self._merge(layout, placed, budgets) or
                    self._shrink(layout, placed, budgets)):
                return None, placed

    def relax(self, layout: list, placed: _Placed):
        """Faster layouts back where the placement still fits and the predicted cycles
        (steps and MOVEs) go down: steps that lost the most cycles first, each its
        fastest such layout."""
        layout = list(layout)
        best = self.cycles(layout, placed)
        lost = sorted(range(self.n), key=lambda i: (self.default[i].predicted_cycles -
                                                    layout[i].predicted_cycles, i))
        # (most cycles lost first: the difference is <= 0)
        for i in lost:
            for c in self.choices(i):
                if c.cycles >= layout[i].predicted_cycles:
                    break
                trial = list(layout)
                trial[i] = self.forced(i, (c.mapping, c.im, c.in_))
                pl = self.place(trial)
                if pl.fail is None:
                    cyc = self.cycles(trial, pl)
                    if cyc < best:
                        layout, placed, best = trial, pl, cyc
                        break
        return layout, placed


def plan_resident(plan, shapes: dict, cfg: AccelConfig, keep=(), *,
                  footprint: bool = True, stage: bool = False,
                  layouts: list | None = None, state: dict | None = None,
                  discard=()) -> ResidentPlan:
    """Compile and place a checked chain (``check_chain``'s list) whose inputs have
    ``shapes``; see the module docstring. ``keep``: results the host reads even if a
    step of the chain consumes them (a later segment needs them). ``footprint``:
    retry with footprint-aware layouts when the cycle-optimal ones do not fit (False:
    cycle-optimal layouts or a refusal). ``stage``: the host writes inputs densely into
    C and MOVEs lay them out (``_stage``). ``layouts``: every step's layout choice
    (``ResidentPlan.choices`` of a plan of the same chain with other seeds or shifts),
    used when it places; otherwise the search runs. ``state``: inputs the update unit
    lays out from its state memory instead of the host (``{tensor: {"state": first
    entry, "out_shift", "out_bits"}}``, ``sw_model.program.update.load_dense``).
    ``discard``: results no step consumes that the host does not read either (a
    gradient the update unit has consumed)."""
    state = {t: v for t, v in (state or {}).items() if t in shapes}
    if not cfg.move_unit:
        raise ValueError(f"config '{cfg.name}' has no MOVE unit (move_unit=False): a "
                         f"resident chain needs it; run the chain without resident")
    pl = _Planner(plan, shapes, cfg, keep, discard)
    layout, placed = pl.default, None
    if layouts is not None:
        layout = [pl.forced(i, c) for i, c in enumerate(layouts)]
        placed = pl.place(layout)
        if placed.fail is not None:
            layout, placed = pl.default, None
    if placed is None:
        placed = pl.place(layout)
    if placed.fail is not None:
        smallest = [pl.compiled(i, slack=math.inf) for i in range(pl.n)]
        for start in (pl.default, smallest) if footprint else ():
            got, tried = pl.fit(start)
            if got is not None:
                layout, placed = pl.relax(got, tried)
                break
            placed = tried
        else:
            pc = placed.pieces[placed.fail]
            base = placed.bases[placed.fail]
            how = "even with footprint-aware layouts" if footprint else \
                "with cycle-optimal layouts"
            raise ValueError(f"resident chain does not fit '{cfg.name}' {how}: tensor "
                             f"'{pc.tensor.split('@')[0]}' needs rows {base}.."
                             f"{base + pc.rows - 1} of bank {pc.bank}, bank depth "
                             f"{cfg.bank_depth}")
    shapes = pl.shapes
    changed = [i for i in range(pl.n) if _choice(layout[i]) != _choice(pl.default[i])]
    compiled = [_compile_step(i, plan[i], shapes, cfg, mapping=layout[i].mapping,
                              lanes=(layout[i].im, layout[i].in_))
                for i in range(pl.n)]
    assert [cc.predicted_cycles for cc in compiled] == \
        [cc.predicted_cycles for cc in layout]
    homes, home_of = placed.homes, placed.home_of
    bases, allp = placed.bases, placed.pieces
    for h, k in zip(homes.values(), range(len(homes))):
        h.base = bases[k]
    c_base = {i: bases[len(homes) + i] for i in range(len(plan))}
    peak = {bk: max([bases[k] + allp[k].rows for k in range(len(allp))
                     if allp[k].bank == bk] or [0]) for bk in ("A", "B", "C")}

    # staged inputs: written densely into C, laid out by MOVEs before the first step
    staged, stage_words, moves = _stage(plan, homes, compiled, shapes, cfg, stage, state)
    # state inputs: the update unit writes their dense copies (staged in C, or a dense
    # home: a bias) before anything else
    vecs = []
    load_words = []
    for t, st in state.items():
        n = math.prod(shapes[t])
        kw = dict(out_shift=st["out_shift"], out_bits=st["out_bits"])
        targets = [("C", staged[t][0])] if t in staged else []
        targets += [(h.bank, h.base) for h in homes.values()
                    if h.tensor == t and h.key == DENSE]
        if not targets:
            raise ValueError(f"state input {t!r} has no home the update unit can write "
                             f"densely")
        for bank, row in targets:
            vp = load_dense(cfg, n, int(st["state"]), dst=bank, dst_row=row, **kw)
            vecs.append((-1, t, bank, vp))
            load_words += vp.program()
    stage_words = load_words + stage_words
    # programs: each step, its bias add, then its result into every home that needs
    # it: MOVEs, or, for an activation output, the activation's VECs
    chunks, epi_out = [], {}
    for i, (spec, a, b, o, p) in enumerate(plan):
        cc = compiled[i]
        ha, hb = homes[home_of[i, "a"]], homes[home_of[i, "b"]]
        words = _rebased(cc, ha.base, hb.base, c_base[i])
        if "bias" in p:
            vp = _bias_add(cfg, cc, p, shapes[p["bias"]], homes[home_of[i, "bias"]].base,
                           c_base[i])
            vecs.append((i, p["bias"], "C", vp))
            words += vp.program()
        if "mask" in p:
            vp = _mask(cfg, cc, p, homes[home_of[i, "mask"]].base, c_base[i])
            vecs.append((i, p["mask"], "C", vp))
            words += vp.program()
        if "pre" in p:
            epi_out[p["pre"]] = (i, "pre")
        if "act" in p:
            epi_out[o] = (i, "act")
        grad = None
        if "xent" in p:       # logits copied out densely, XENT, gradient to its readers
            grad = p["xent"]["grad"]
            epi_out[grad] = (i, "xent")
            hx, hl, hg = (homes[home_of[i, r]] for r in ("xsrc", "labels", "grad"))
            mp = relayout_to_dense(cc, dst=XENT_BANK, src_row=c_base[i], dst_row=hx.base)
            moves.append((i, o, XENT_BANK, mp))
            vp = _xent(cfg, p, shapes[o], hx.base, hl.base, hg.base)
            vecs.append((i, grad, XENT_BANK, vp))
            words += mp.program() + vp.program()
        for u in p.get("update", ()):     # the optimizer: from the gradient where it is
            if u["kind"] == "core":
                words_c = c_base[i] * cfg.c_lanes + result_words(cc)
                vp = update_core(cfg, words_c, "C", u)
            elif "xent" in p:             # a bias from the xent's dense gradient
                g = shapes[grad]
                words_g = hg.base * buffer_lanes(cfg, GRAD_BANK) + \
                    np.arange(math.prod(g), dtype=np.int64)
                vp = update_bias(cfg, words_g.reshape(g[0], -1), GRAD_BANK, u)
            else:        # a bias from the step's (masked) output, copied out densely
                hu = homes[home_of[i, "usrc"]]
                mp = relayout_to_dense(cc, dst=UPDATE_BANK, src_row=c_base[i],
                                       dst_row=hu.base)
                moves.append((i, o, UPDATE_BANK, mp))
                words += mp.program()
                words_u = hu.base * buffer_lanes(cfg, UPDATE_BANK) + \
                    np.arange(math.prod(shapes[o]), dtype=np.int64)
                vp = update_bias(cfg, words_u.reshape(shapes[o][0], -1), UPDATE_BANK, u)
            vecs.append((i, o, "state", vp))
            words += vp.program()
        acts = []         # the activation's VecPlans: (bank, plan), in program order
        for h in homes.values():
            if h.tensor not in _makes(plan[i]) or h.role in ("xsrc", "grad", "usrc"):
                continue
            if h.tensor == grad:
                mp = relayout_dense(compiled[h.step], h.role, shapes[grad], src=GRAD_BANK,
                                    dst=h.bank, src_row=hg.base, dst_row=h.base)
                moves.append((i, grad, h.bank, mp))
                words += mp.program()
                continue
            if h.key == DENSE and h.role == "mask":   # copied out of C for a mask
                mp = relayout_to_dense(cc, dst=h.bank, src_row=c_base[i], dst_row=h.base)
                moves.append((i, h.tensor, h.bank, mp))
                words += mp.program()
            elif h.key == DENSE:
                acts.append((h.bank, _act_dense(cfg, cc, p, c_base[i], h.base)))
            elif h.tensor == o and "act" in p:
                acts.append((h.bank, to_operand(cfg, "relu_req", result_words(cc),
                                                compiled[h.step], h.role, shapes[o],
                                                src_row=c_base[i], dst_row=h.base,
                                                **_act_params(p["act"]))))
            else:
                mp = relayout(cc, compiled[h.step], h.role, shapes[o], src_row=c_base[i],
                              dst_row=h.base)
                moves.append((i, h.tensor, h.bank, mp))
                words += mp.program()
        if acts:          # after the MOVEs: the slot's closing vote is the last VEC
            for (bank, _), vp in zip(acts, _act_slot([vp for _, vp in acts], p["act"])):
                vecs.append((i, o, bank, vp))
                words += vp.program()
        chunks.append(words)
    if stage_words:
        chunks[0] = stage_words + chunks[0]
    programs, cur = [], []
    for i, words in enumerate(chunks):
        if len(words) + 1 > cfg.prog_depth:
            raise ValueError(f"step {i} '{plan[i][0]}' with its MOVEs needs "
                             f"{len(words) + 1} program words; program depth "
                             f"{cfg.prog_depth} on '{cfg.name}'")
        if cur and len(cur) + len(words) + 1 > cfg.prog_depth:
            programs.append(cur + [HALT])
            cur = []
        cur += words
    programs.append(cur + [HALT])
    return ResidentPlan(cfg, compiled, homes, c_base, programs, moves, pl.outputs, peak,
                        [o for _, _, _, o, _ in plan], changed, staged, vecs, epi_out,
                        dict(shapes), dict(state))


def _stage(plan, homes: dict, compiled: list, shapes: dict, cfg: AccelConfig,
           stage: bool = True, state: dict | None = None):
    """Staged inputs: every input whose homes take more host words than its elements
    (replicas, padding lanes) is written densely (one element per word, row-major)
    into C from row 0 on, largest saving first while C's rows last, and MOVEd
    (``moves.relayout_dense``) into each of its homes before the first step (C holds
    nothing else then: results are written from the first step on). Returns
    (``{tensor: (first C row, elements)}``, the MOVEs' words, ``[(-1, tensor, bank,
    MovePlan)]``). Without ``stage`` only the ``state`` inputs are staged (always: the
    update unit writes them densely, never the host)."""
    state = state or {}
    lanes = cfg.c_lanes
    by_tensor: dict = {}
    produced = {x for st in plan for x in _makes(st)}     # outputs and epilogues
    for h in homes.values():
        if h.tensor not in produced and h.key != DENSE:
            by_tensor.setdefault(h.tensor, []).append(h)
    saving = {t: sum(h.rows * compiled[h.step].lanes_used(h.role) for h in hs) -
              math.prod(shapes[t]) for t, hs in by_tensor.items()}
    staged, row = {}, 0
    for t in sorted(by_tensor, key=lambda t: (t not in state, -saving[t])):
        rows = -(-math.prod(shapes[t]) // lanes)
        if t in state:
            if row + rows > cfg.bank_depth:
                raise ValueError(f"state input {t!r} does not fit C's staging rows "
                                 f"{row}..{row + rows - 1}; bank depth {cfg.bank_depth}")
        elif not stage or saving[t] <= 0 or row + rows > cfg.bank_depth:
            continue
        staged[t], row = (row, math.prod(shapes[t])), row + rows
    words, moves = [], []
    for t, (base, _) in staged.items():
        for h in by_tensor[t]:
            mp = relayout_dense(compiled[h.step], h.role, shapes[t], src="C", dst=h.bank,
                                src_row=base, dst_row=h.base)
            moves.append((-1, t, h.bank, mp))
            words += mp.program()
    return staged, words, moves


@dataclass
class Segment:
    """Steps ``lo..hi`` of a chain: one resident plan (``plan``), or one step run as a
    separate job (``plan`` None: it does not compile into one program)."""
    lo: int
    hi: int
    plan: ResidentPlan | None


def literal_seeds(plan, step) -> list:
    """A checked chain whose programs open with ``STEP(step)`` names its seeds as
    indices (``sw_model/accel/step.py``): the same chain with every seed the index
    derives (``derive(step.key, i)``: contractions, activations, updates) — what its
    golden model and a separate-job segment use. ``step`` (``StepParams``) None: ``plan`` itself."""
    if step is None:
        return plan
    out = []
    for spec, a, b, o, p in plan:
        q = dict(p, seed=derive(step.key, p["seed"]))
        if "act" in q:
            q["act"] = dict(q["act"], seed=derive(step.key, q["act"]["seed"]))
        if "update" in q:
            q["update"] = [dict(u, seeds=tuple(derive(step.key, x) for x in u["seeds"]))
                           for u in q["update"]]
        out.append((spec, a, b, o, q))
    return out


def plan_segments(plan, shapes: dict, cfg: AccelConfig, *,
                  footprint: bool = True, stage: bool = False, state: dict | None = None,
                  discard=(),
                  keep=()) -> list[Segment]:
    """Cut a checked chain into resident segments: the whole chain if it fits, else,
    greedily from the front, the longest run of steps that fits (tried longest first);
    a tensor produced in one segment and read in a later one is read by the host at
    the end of its segment and written at the start of the reader's. A step that does
    not compile into one program is a segment of its own, run as a separate job (the
    harness splits it into chunks). ``footprint`` and ``stage`` as in
    ``plan_resident``; ``keep``: results the host reads even though later steps
    consume them."""
    if not cfg.move_unit:
        raise ValueError(f"config '{cfg.name}' has no MOVE unit (move_unit=False): a "
                         f"resident chain needs it; run the chain without resident")
    # the plans are a function of the chain, its input shapes and the preset: an
    # evaluation that runs the same chain on every chunk plans it once
    state = dict(state or {})
    if (state or any("update" in st[4] for st in plan)) and not cfg.adam_entries:
        raise ValueError(f"config '{cfg.name}' has no update unit (adam_entries=0): a "
                         f"chain's update epilogues and state inputs need it")
    rest = (tuple(sorted((k, tuple(v)) for k, v in shapes.items())), cfg, footprint, stage,
            tuple(sorted(keep)), tuple(sorted(discard)))
    key = (repr(list(plan)), repr(sorted(state.items()))) + rest
    if key not in _SEGMENTS:
        # a training step's chain changes its seeds and shifts every step, not its
        # layouts: the cuts and layout choices of the same structure are reused
        skey = (_structure(plan), tuple(sorted(state))) + rest
        known = _STRUCTURES.get(skey)
        segs = _replan(plan, shapes, cfg, footprint, stage, set(keep), known, state,
                       set(discard)) if known is not None else None
        if segs is None:
            segs = _plan_segments(plan, shapes, cfg, footprint, stage, set(keep), state,
                                  set(discard))
        for cache, k, v in ((_SEGMENTS, key, segs), (_STRUCTURES, skey, [
                (sg.lo, sg.hi, None if sg.plan is None else sg.plan.choices)
                for sg in segs])):
            if len(cache) >= 64:
                cache.pop(next(iter(cache)))
            cache[k] = v
    return _SEGMENTS[key]


_SEGMENTS: dict = {}
_STRUCTURES: dict = {}


def _structure(plan) -> str:
    """A chain with its seeds, shifts and xent frac left out (what a layout does not
    depend on)."""
    def strip(p):
        q = {k: v for k, v in p.items() if k not in ("seed", "shift")}
        for k, drop in (("act", ("seed", "shift")), ("xent", ("frac",))):
            if k in q:
                q[k] = {a: b for a, b in q[k].items() if a not in drop}
        if "update" in q:
            q["update"] = [{a: b for a, b in u.items() if a not in ("lr", "seeds",
                                                                     "gshift")}
                           for u in q["update"]]
        return q
    return repr([(s, a, b, o, strip(p)) for s, a, b, o, p in plan])


def _replan(plan, shapes: dict, cfg: AccelConfig, footprint: bool, stage: bool,
            keep: set, known: list, state: dict | None = None,
            discard: set = frozenset()) -> list[Segment] | None:
    """The segments of ``plan`` cut and laid out as ``known`` (``(lo, hi, choices)``
    of the same structure); None when one of them no longer places."""
    all_shapes = dict(shapes)
    for st in plan:
        spec, a, b, o, p = st
        all_shapes.update(_made_shapes(st, p.get("reshape") or parse_spec(spec).output_shape(
            all_shapes[a], all_shapes[b])))
    segs = []
    for lo, hi, choices in known:
        if choices is None:
            segs.append(Segment(lo, hi, None))
            continue
        sub = plan[lo:hi + 1]
        made = {x for st in sub for x in _makes(st)}
        later = {x for st in plan[hi + 1:] for x in _reads(st)}
        ins = {x for st in sub for x in _reads(st) if x not in made}
        try:
            rp = plan_resident(sub, {k: all_shapes[k] for k in ins}, cfg,
                               keep=made & (later | keep), footprint=footprint,
                               stage=stage, layouts=choices, state=state,
                               discard=discard)
        except ValueError:
            return None
        if rp.choices != list(choices):
            return None
        segs.append(Segment(lo, hi, rp))
    return segs


def _plan_segments(plan, shapes: dict, cfg: AccelConfig, footprint: bool,
                   stage: bool, keep: set, state: dict | None = None,
                   discard: set = frozenset()) -> list[Segment]:
    shapes = dict(shapes)
    all_shapes = dict(shapes)
    for st in plan:
        spec, a, b, o, p = st
        all_shapes.update(_made_shapes(st, p.get("reshape") or parse_spec(spec).output_shape(
            all_shapes[a], all_shapes[b])))

    def attempt(lo, hi):
        sub = plan[lo:hi + 1]
        made = {x for st in sub for x in _makes(st)}
        later = {x for st in plan[hi + 1:] for x in _reads(st)}
        ins = {x for st in sub for x in _reads(st) if x not in made}
        try:
            return plan_resident(sub, {k: all_shapes[k] for k in ins}, cfg,
                                 keep=made & (later | keep), footprint=footprint,
                                 stage=stage, state=state, discard=discard)
        except ValueError:
            return None

    segs, lo, n = [], 0, len(plan)
    while lo < n:
        # longest first: a shorter run can fail where a longer one fits (a result a
        # later segment reads stays in C to the end of its segment)
        for hi in range(n - 1, lo - 1, -1):
            rp = attempt(lo, hi)
            if rp is not None:
                segs.append(Segment(lo, hi, rp))
                lo = hi + 1
                break
        else:
            spec, p = plan[lo][0], plan[lo][4]
            if any(k in p for k in ("bias", "mask", "act", "xent", "update")):
                raise ValueError(f"step {lo} '{spec}' with a bias/mask/act/xent epilogue does "
                                 f"not fit '{cfg.name}' as a resident segment; the "
                                 f"epilogue runs on chip only there")
            segs.append(Segment(lo, lo, None))      # a separate job
            lo += 1
    return segs


