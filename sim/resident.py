"""Resident chains: a chain of contractions whose intermediates never leave the chip.

``run_resident(plan, session)`` runs a checked chain (``sim.chain.check_chain``) as
few programs as program memory allows:

* every step is compiled once (``compile_contraction``) and its CONTRACTs are rebased
  to the rows where its operands and result live;
* a step's result is written to C in its producer's layout, then MOVEd
  (``sw_model.program.moves.relayout``) into the A or B layout of every later step
  that reads it (one home per distinct layout), right after the producer;
* the host writes only the chain's inputs (in the layouts of their consumers) before
  the first program and reads only the outputs nothing consumes, after the last;
* homes are placed by live range with the allocator's rule
  (``sw_model.program.allocator.place_pieces``): an input's home from the start to
  its last reader, a moved result's home from its producer to its last reader, a
  result's C rows at its producer only (or to the end, for an output);
* the program is cut at step boundaries where it would exceed ``prog_depth``; the
  buffers keep their contents between programs (the host writes the next program
  and START, no data).

Cycles by phase: ``compute`` (CONFIG/CONTRACT cycles: all counted cycles but the
MOVEs'), ``on_chip_moves`` (the MOVE instructions' cycles, each predicted by
``timing.move_cycles``), ``host_transfer`` (host-bus words, one per cycle, as the
harness counts them: data words of the lanes a layout uses, program words and
two control writes per program).

Refusals (``FettaError``, one line): a configuration without the MOVE unit, a step
that does not compile into one program, homes that do not fit a bank (naming the
bank, the rows needed and the depth), a program halting with an error.

When the chain does not fit at once it is cut into segments (``plan_segments``):
the longest runs of steps that fit, from the front; a tensor crossing a cut is read
by the host at the end of its segment and written at the start of the next that
reads it (host words, counted), and a step that does not compile into one program
runs as a separate job (the harness chunks it).

Members: ``run_resident``, ``ResidentPlan``, ``plan_resident``, ``Segment``,
``plan_segments``.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field

import numpy as np

from fetta.errors import FettaError
from fetta.sw_model.accel.config import AccelConfig
from fetta.sw_model.accel.hostmap import (BUFFER_WORD_BITS, PROG_BASE, ErrorCode, Status,
                                         buffer_base)
from fetta.sw_model.accel.isa import HALT, Contract, Op, decode_header
from fetta.sw_model.arith.einsum_spec import parse_spec
from fetta.sw_model.arith.fixedpoint import wrap
from fetta.sw_model.program.allocator import Piece, place_pieces
from fetta.sw_model.program.compiler import CompiledContraction, compile_contraction
from fetta.sw_model.program.moves import MovePlan, operand_words, relayout
from fetta.sw_model.ttm.step_events import CONTROL_WRITES

__all__ = ["ResidentPlan", "plan_resident", "Segment", "plan_segments", "run_resident",
           "ResidentRun"]

_BANK = {"a": "A", "b": "B"}


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

    @property
    def predicted_cycles(self) -> int:
        """Cycles of all programs (the CYCLES counters' sum): every step's predicted
        cycles less its HALT, the MOVEs, one HALT per program."""
        halt = 2
        return (sum(cc.predicted_cycles - halt for cc in self.compiled) +
                self.move_cycles + halt * len(self.programs))

    @property
    def move_cycles(self) -> int:
        return sum(mp.cycles for _, _, _, mp in self.moves)


def _layout_key(cc: CompiledContraction, role: str, shape) -> str:
    held = operand_words(cc, role, shape)
    return hashlib.sha1(held.tobytes()).hexdigest()[:16]


def _rebased(cc: CompiledContraction, a: int, b: int, c: int) -> list[int]:
    """``cc``'s program without its HALT, every CONTRACT's A/B/C bases moved by rows."""
    prog, out, pc = list(cc.program), [], 0
    while pc < len(prog):
        op, n = decode_header(prog[pc])
        if op == Op.HALT:
            break
        words = prog[pc:pc + 1 + n]
        if op == Op.CONTRACT:
            k = Contract.decode(words[1:])
            words = dataclasses.replace(k, base_a=k.base_a + a, base_b=k.base_b + b,
                                        base_c=k.base_c + c).encode()
        out += words
        pc += 1 + n
    return out


def plan_resident(plan, shapes: dict, cfg: AccelConfig, keep=()) -> ResidentPlan:
    """Compile and place a checked chain (``check_chain``'s list) whose inputs have
    ``shapes``; see the module docstring. ``keep``: results the host reads even if a
    step of the chain consumes them (a later segment needs them)."""
    if not cfg.move_unit:
        raise FettaError(f"config '{cfg.name}' has no MOVE unit (move_unit=False): a "
                         f"resident chain needs it; run the chain without resident")
    shapes = dict(shapes)
    compiled, producer = [], {}
    for i, (spec, a, b, o, p) in enumerate(plan):
        try:
            cc = compile_contraction(spec, shapes[a], shapes[b], cfg, **p)
        except ValueError as exc:
            raise FettaError(f"step {i} '{spec}' does not compile into one program on "
                             f"'{cfg.name}' ({str(exc).split(';')[0]}); a resident chain "
                             f"needs every step in one program") from None
        compiled.append(cc)
        shapes[o] = cc.spec.output_shape(shapes[a], shapes[b])
        producer[o] = i
    last = len(plan) - 1
    readers: dict[str, list] = {}
    homes: dict = {}
    home_of: dict = {}                  # (step, role) -> home key
    for i, (spec, a, b, o, p) in enumerate(plan):
        cc = compiled[i]
        for role, name in (("a", a), ("b", b)):
            readers.setdefault(name, []).append(i)
            key = (name, _BANK[role], _layout_key(cc, role, shapes[name]))
            home_of[i, role] = key
            rows = cc.a_rows if role == "a" else cc.b_rows
            start = producer.get(name, 0)
            if key in homes:
                homes[key].end = i
            else:
                homes[key] = _Home(name, _BANK[role], key[2], rows, start, i, i, role)
    outputs = [o for _, _, _, o, _ in plan if o not in readers or o in keep]
    pieces = [Piece(f"{h.tensor}@{h.key}", h.bank, h.start, h.end, h.rows)
              for h in homes.values()]
    c_pieces = [Piece(plan[i][3], "C", i, last if plan[i][3] in outputs else i,
                      compiled[i].c_rows) for i in range(len(plan))]
    bases, fail = place_pieces(pieces + c_pieces, cfg.bank_depth)
    allp = pieces + c_pieces
    if fail is not None:
        pc = allp[fail]
        need = bases[fail] + pc.rows
        raise FettaError(f"resident chain does not fit '{cfg.name}': tensor "
                         f"'{pc.tensor.split('@')[0]}' needs rows {bases[fail]}..{need - 1}"
                         f" of bank {pc.bank}, bank depth {cfg.bank_depth}")
    for h, k in zip(homes.values(), range(len(pieces))):
        h.base = bases[k]
    c_base = {i: bases[len(pieces) + i] for i in range(len(plan))}
    peak = {bk: max([bases[k] + allp[k].rows for k in range(len(allp))
                     if allp[k].bank == bk] or [0]) for bk in ("A", "B", "C")}

    # programs: each step, then the MOVEs of its result into every home that needs it
    chunks, moves = [], []
    for i, (spec, a, b, o, p) in enumerate(plan):
        cc = compiled[i]
        ha, hb = homes[home_of[i, "a"]], homes[home_of[i, "b"]]
        words = _rebased(cc, ha.base, hb.base, c_base[i])
        for h in homes.values():
            if h.tensor != o:
                continue
            mp = relayout(cc, compiled[h.step], h.role, shapes[o], src_row=c_base[i],
                          dst_row=h.base)
            moves.append((i, o, h.bank, mp))
            words += mp.program()
        chunks.append(words)
    programs, cur = [], []
    for i, words in enumerate(chunks):
        if len(words) + 1 > cfg.prog_depth:
            raise FettaError(f"step {i} '{plan[i][0]}' with its MOVEs needs "
                             f"{len(words) + 1} program words; program depth "
                             f"{cfg.prog_depth} on '{cfg.name}'")
        if cur and len(cur) + len(words) + 1 > cfg.prog_depth:
            programs.append(cur + [HALT])
            cur = []
        cur += words
    programs.append(cur + [HALT])
    return ResidentPlan(cfg, compiled, homes, c_base, programs, moves, outputs, peak,
                        [o for _, _, _, o, _ in plan])


@dataclass
class Segment:
    """Steps ``lo..hi`` of a chain: one resident plan (``plan``), or one step run as a
    separate job (``plan`` None: it does not compile into one program)."""
    lo: int
    hi: int
    plan: ResidentPlan | None


def plan_segments(plan, shapes: dict, cfg: AccelConfig) -> list[Segment]:
    """Cut a checked chain into resident segments: the whole chain if it fits, else,
    greedily from the front, the longest run of steps that fits; a tensor produced in
    one segment and read in a later one is read by the host at the end of its
    segment and written at the start of the reader's. A step that does not compile
    into one program is a segment of its own, run as a separate job (the harness
    splits it into chunks)."""
    if not cfg.move_unit:
        raise FettaError(f"config '{cfg.name}' has no MOVE unit (move_unit=False): a "
                         f"resident chain needs it; run the chain without resident")
    shapes = dict(shapes)
    all_shapes = dict(shapes)
    for spec, a, b, o, _ in plan:
        all_shapes[o] = parse_spec(spec).output_shape(all_shapes[a], all_shapes[b])

    def attempt(lo, hi):
        sub = plan[lo:hi + 1]
        made = {o for _, _, _, o, _ in sub}
        later = {x for _, a, b, _, _ in plan[hi + 1:] for x in (a, b)}
        ins = {x for _, a, b, _, _ in sub for x in (a, b) if x not in made}
        try:
            return plan_resident(sub, {k: all_shapes[k] for k in ins}, cfg,
                                 keep=made & later)
        except FettaError:
            return None

    segs, lo, n = [], 0, len(plan)
    while lo < n:
        best, hi = None, lo
        while hi < n:
            rp = attempt(lo, hi)
            if rp is None:
                break
            best, hi = rp, hi + 1
        if best is None:
            segs.append(Segment(lo, lo, None))      # a separate job
            lo += 1
        else:
            segs.append(Segment(lo, hi - 1, best))
            lo = hi
    return segs


def _run_plan(rp: ResidentPlan, values: dict, be, counts: dict) -> dict:
    """Write the plan's inputs, run its programs, read its outputs into ``values``;
    adds to ``counts`` (written, read, cycles, move_cycles, moves)."""
    cfg = rp.config
    for h in rp.homes.values():
        if _produced(rp, h.tensor):
            continue
        cc = rp.compiled[h.step]
        rows = cc.pack_a(values[h.tensor]) if h.role == "a" else cc.pack_b(values[h.tensor])
        lanes = rows.shape[1]
        be.write(buffer_base("AB".index(h.bank)) + h.base * lanes,
                 (rows.reshape(-1) & 0xFFFF).tolist())
        mp = cc.mapping
        used = mp.ga * mp.gk * cfg.pe_rows if h.role == "a" else mp.gb * mp.gk * cfg.pe_cols
        counts["written"] += rows.shape[0] * used
    for k, prog in enumerate(rp.programs):
        be.clear()
        be.write(PROG_BASE, prog)
        counts["written"] += len(prog) + CONTROL_WRITES
        st = be.run(4 * rp.predicted_cycles + 10_000)
        if st.error != ErrorCode.NONE:
            raise FettaError(f"accelerator halted with error {st.error.name} at program "
                             f"word {st.err_pc} of a resident program; no result "
                             f"returned")
        if not st.status & Status.DONE:
            raise FettaError(f"accelerator stopped without DONE (STATUS "
                             f"0x{st.status:08x}) in a resident program; no result "
                             f"returned")
        counts["cycles"] += st.counters["cycles"]
        counts["move_elements"] += st.counters["move_cycles"]
    counts["move_cycles"] += rp.move_cycles
    counts["predicted"] += rp.predicted_cycles
    counts["useful"] += sum(cc.useful_macs for cc in rp.compiled)
    for i, o in enumerate(rp.step_outputs):
        if o not in rp.outputs:
            continue
        cc = rp.compiled[i]
        n = cc.c_rows * cfg.c_lanes
        raw = np.array(be.read(buffer_base(2) + rp.c_base[i] * cfg.c_lanes, n),
                       dtype=np.int64)
        values[o] = cc.unpack_c(wrap(raw, BUFFER_WORD_BITS).reshape(cc.c_rows, cfg.c_lanes))
        mp = cc.mapping
        counts["read"] += cc.c_rows * mp.ga * mp.gb * cfg.pe_cols
    return values


def _produced(rp: ResidentPlan, name: str) -> bool:
    return name in rp.step_outputs


def run_resident(plan, tensors: dict, session):
    """Run a checked chain resident on ``session``'s backend (``plan_segments``).
    Returns a ``ResidentRun``: the results no step consumes (int64, einsum shapes),
    cycles by phase (module docstring; ``counted``/``predicted``: the programs' CYCLES
    counters and the model's, equal), host words ``written``/``read``, the segments
    and the useful MACs."""
    cfg = session.config
    values = {k: np.asarray(v) for k, v in tensors.items()}
    segs = plan_segments(plan, {k: v.shape for k, v in values.items()}, cfg)
    be = session.backend
    counts = dict.fromkeys(("written", "read", "cycles", "move_cycles", "move_elements",
                            "predicted", "useful"), 0)
    for seg in segs:
        session.invalidate()            # the harness's view of the buffers is stale
        if not be.known_idle:
            be.abort()
        if seg.plan is None:
            spec, a, b, o, p = plan[seg.lo]
            res = session.contract(spec, values[a], values[b], **p)
            values[o] = res.output
            counts["written"] += res.host_words["written"]
            counts["read"] += res.host_words["read"]
            counts["cycles"] += res.cycles
            counts["predicted"] += res.predicted_cycles
            counts["useful"] += res.useful_macs
            session.invalidate()
        else:
            _run_plan(seg.plan, values, be, counts)
    consumed = {x for _, a, b, _, _ in plan for x in (a, b)}
    outputs = {o: values[o] for _, _, _, o, _ in plan if o not in consumed}
    cycles = {"compute": counts["cycles"] - counts["move_cycles"],
              "on_chip_moves": counts["move_cycles"],
              "host_transfer": counts["written"] + counts["read"]}
    cycles["total"] = cycles["compute"] + cycles["on_chip_moves"] + cycles["host_transfer"]
    cycles["counted"], cycles["predicted"] = counts["cycles"], counts["predicted"]
    cycles["move_elements"] = counts["move_elements"]
    return ResidentRun(outputs, cycles, {"written": counts["written"],
                                         "read": counts["read"], "skipped": 0},
                       segs, counts["useful"])


@dataclass
class ResidentRun:
    """What ``run_resident`` returns (see there)."""
    outputs: dict
    cycles: dict
    host_words: dict
    segments: list
    useful_macs: int
