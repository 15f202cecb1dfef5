"""Resident chains run on a backend: ``run_resident(plan, tensors, session)`` plans a
checked chain (``sw_model.program.resident_plan``: steps compiled and rebased, results
MOVEd from C into every reader's layout, homes placed by live range, the chain cut
into segments when it does not fit) and runs it on the session's backend: per
resident segment the host writes the inputs' homes, writes and STARTs each program
and reads the outputs no later step consumes; a segment that is one step that does
not compile into one program runs as a separate job through the harness.

Cycles by phase: ``compute`` (CONFIG/CONTRACT cycles: all counted cycles but the
MOVEs' and VECs'), ``on_chip_moves`` (the MOVE instructions' cycles, each predicted by
``timing.move_cycles``), ``elementwise`` (the bias/act epilogues' VECs and the fills of
their layouts, ``timing.vec_cycles``), ``host_transfer`` (host-bus words, one per cycle, as the
harness counts them: data words of the lanes a layout uses, the program words that
differ from what program memory holds — a chain run again, e.g. every training step,
rewrites only its changed seeds — two control writes and the status/counter reads per
program). ``cycles["counted"]``
(the CYCLES counters) equals ``cycles["predicted"]`` (the plans' model);
``cycles["vector_busy"]`` (the vector-busy counters by operation: VEC ALU, XENT, ADAM)
equals ``cycles["vector_busy_predicted"]`` (``timing.vector_busy`` of the programs).

A program halting with an error raises ``FettaError`` (one line) and returns no data.

Members: ``run_resident``, ``ResidentRun``; ``plan_resident`` and ``plan_segments``
(the planner's, raising its refusals as one-line ``FettaError``), ``ResidentPlan`` and
``Segment`` (re-exported).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fetta.errors import FettaError
from fetta.sw_model.accel.hostmap import (BUFFER_WORD_BITS, CONTROL_READS, CONTROL_WRITES,
                                         LEAN_READS, LEAN_WRITES, REG_BASE,
                                         UNIT_COUNTER_READS, UNIT_COUNTERS,
                                         XENT_RESULT_WORDS, ErrorCode, Reg,
                                         Status, buffer_base, program_base)
from fetta.sw_model.accel.isa import Op, instructions
from fetta.sw_model.accel.move import buffer_lanes
from fetta.sw_model.accel.step import STEP_WORDS, step_cycles
from fetta.sw_model.accel.timing import VECTOR_OPS, vector_busy
from fetta.sw_model.arith.fixedpoint import wrap
from fetta.sw_model.program import resident_plan
from fetta.sw_model.program.resident_plan import ResidentPlan, Segment, literal_seeds

__all__ = ["ResidentPlan", "plan_resident", "Segment", "plan_segments", "run_resident",
           "chip_written_rows", "ResidentRun"]


def plan_resident(*args, **kw) -> ResidentPlan:
    """``sw_model.program.resident_plan.plan_resident``; a refusal as ``FettaError``."""
    try:
        return resident_plan.plan_resident(*args, **kw)
    except ValueError as exc:
        raise FettaError(str(exc)) from None


def plan_segments(*args, **kw) -> list[Segment]:
    """``sw_model.program.resident_plan.plan_segments``; a refusal as ``FettaError``."""
    try:
        return resident_plan.plan_segments(*args, **kw)
    except ValueError as exc:
        raise FettaError(str(exc)) from None


def chip_written_rows(rp: ResidentPlan) -> dict:
    """``{0: rows of A, 1: rows of B}`` that the plan's programs write (every MOVE,
    fill, VEC and XENT destination row, decoded from the programs themselves); the
    session's copies of those rows are stale after a run. Computed once per plan."""
    got = rp.__dict__.get("_chip_rows")
    if got is None:
        from fetta.sw_model.accel.isa import Op, instructions
        from fetta.sw_model.accel.move import Move, buffer_lanes as lanes_of
        from fetta.sw_model.accel.vec import Vec
        from fetta.sw_model.accel.xent import Xent
        from fetta.sw_model.accel.adam import Adam
        rows = {0: [], 1: []}
        for prog in rp.programs:
            for _, op, payload in instructions(prog):
                ad = Adam.decode(payload) if op == Op.ADAM else None
                mv = (Move.decode(payload) if op == Op.MOVE else
                      Vec.decode(payload).move if op == Op.VEC else
                      Xent.decode(payload).move if op == Op.XENT else
                      ad.move if ad is not None and not ad.nowrite else None)
                if mv is not None and mv.dst in ("A", "B"):
                    rows["AB".index(mv.dst)].append(
                        np.unique(mv.addresses()[1] // lanes_of(rp.config, mv.dst)))
        got = {k: np.unique(np.concatenate(v)) if v else np.zeros(0, np.int64)
               for k, v in rows.items()}
        rp.__dict__["_chip_rows"] = got
    return got


def _run_plan(rp: ResidentPlan, values: dict, session, counts: dict, step=None,
              program_at=0) -> dict:
    """Write the plan's inputs (of an operand home only the rows that differ from the
    session's copy of A and B: e.g. the weights' rows a training step did not change)
    and its programs (only the program words that differ from what program memory
    holds, ``Session._write_program``), run them, mark the rows they write stale in
    the session's copies, read the outputs into ``values``; adds to ``counts``
    (written, read, skipped, cycles, move_cycles, moves)."""
    cfg, be = rp.config, session.backend
    for t, (base, n) in rp.staged.items():        # written densely into C
        if t in rp.state:                         # ... by the update unit
            continue
        flat = np.asarray(values[t], dtype=np.int64).reshape(-1)
        be.write(buffer_base(2) + base * cfg.c_lanes, (flat & 0xFFFF).tolist())
        counts["written"] += n
    for h in rp.input_homes():
        if h.tensor in rp.staged:
            continue
        bank = "AB".index(h.bank)
        res = session._resident[bank]
        if h.key == resident_plan.DENSE:   # a bias, labels: one word per element
            flat = np.asarray(values[h.tensor], dtype=np.int64).reshape(-1)
            lanes = cfg.b_lanes if h.bank == "B" else cfg.a_lanes
            be.write(buffer_base(bank) + h.base * lanes, (flat & 0xFFFF).tolist())
            counts["written"] += flat.size
            res.valid[h.base:h.base + h.rows] = False      # not tracked
            continue
        cc = rp.compiled[h.step]
        rows = cc.pack_a(values[h.tensor]) if h.role == "a" else cc.pack_b(values[h.tensor])
        rows = np.asarray(rows, dtype=np.int64)
        lanes, used = rows.shape[1], cc.lanes_used(h.role)
        written = 0
        for lo, hi in (res.runs(rows, used, at=h.base) if session.residency
                       else [(0, len(rows))]):
            chunk = res.merged(h.base + lo, rows[lo:hi], used)
            be.write(buffer_base(bank) + (h.base + lo) * lanes,
                     (chunk.reshape(-1) & 0xFFFF).tolist())
            res.store(h.base + lo, chunk)
            written += (hi - lo) * used
        counts["written"] += written
        counts["skipped"] += len(rows) * used - written
    lean = counts.get("lean", False)
    if lean:                                  # one CLEAR opens a series of lean runs
        counts["written"] += be.begin_lean()
    plan_busy = dict.fromkeys(VECTOR_OPS, 0)
    programs = rp.programs
    extra = 0                       # the STEPs' cycles
    if step is not None:
        programs = [step.encode() + p for p in programs]
        extra = step_cycles() * len(programs)
        long = [len(p) for p in programs if len(p) > session.config.prog_depth]
        if long:
            raise FettaError(f"a resident program of {long[0] - STEP_WORDS - 1} words "
                             f"with its STEP needs {long[0]} program words; program "
                             f"depth {session.config.prog_depth}")
    # each program's vector-busy cycles by op and whether it has an XENT (per plan)
    per_prog = rp.__dict__.get("_busy")
    if per_prog is None:
        per_prog = rp.__dict__["_busy"] = [
            (vector_busy(p), any(op == Op.XENT for _, op, _ in instructions(p)))
            for p in rp.programs]
    for k, prog in enumerate(programs):
        if not lean:
            be.clear()
        base = program_base(program_at, len(prog), session.config.prog_depth)
        wp = session._write_program(prog, base)
        counts["written"] += wp + (LEAN_WRITES if lean else CONTROL_WRITES)
        counts["skipped"] += len(prog) - wp       # program words already held
        # STATUS, ERR_PC, counters (as the harness); a lean run: STATUS
        counts["read"] += LEAN_READS if lean else CONTROL_READS
        try:
            st = be.run(4 * (rp.predicted_cycles + extra) + 10_000, counters=not lean,
                        start=base)
        except BaseException:
            session.invalidate()
            raise
        if st.error != ErrorCode.NONE or not st.status & Status.DONE:
            session.invalidate()
        if st.error != ErrorCode.NONE:
            raise FettaError(f"accelerator halted with error {st.error.name} at program "
                             f"word {st.err_pc} (word {st.err_pc - base} of a resident "
                             f"program started at {base}); no result returned")
        if not st.status & Status.DONE:
            raise FettaError(f"accelerator stopped without DONE (STATUS "
                             f"0x{st.status:08x}) in a resident program; no result "
                             f"returned")
        busy, has_xent = per_prog[k]
        if lean:        # counted in aggregate when the series closes (expect_counters)
            by_op = busy
        else:
            counts["cycles"] += st.counters["cycles"]
            counts["move_elements"] += st.counters["move_cycles"]
            counts["vec_elements"] += st.counters["vec_cycles"]
            by_op = {"xent": 0, "adam": 0}
            if busy["xent"] or busy["adam"]:      # the vector unit's counters by op
                unit = be.counters(UNIT_COUNTERS)
                counts["read"] += UNIT_COUNTER_READS
                by_op = {"xent": unit["xent_cycles"], "adam": unit["adam_cycles"]}
            by_op["vec"] = st.counters["vec_cycles"] - by_op["xent"] - by_op["adam"]
        for k, v in busy.items():
            counts["busy"][k] += by_op[k]
            counts["busy_predicted"][k] += v
            plan_busy[k] += v
        if "xent" in counts and has_xent:
            # the XENTs' accuracy count and loss sum (cleared by the next START)
            correct = be.read(REG_BASE + Reg.XENT_CORRECT, 1)[0]
            lo, hi = be.read(REG_BASE + Reg.XENT_LOSS, 2)
            counts["xent"]["correct"] += int(correct)
            counts["xent"]["loss"] += int(lo) | int(hi) << 32
            counts["read"] += XENT_RESULT_WORDS
    if lean:
        vec = sum(plan_busy.values())
        be.expect_counters(len(rp.programs), cycles=rp.predicted_cycles + extra,
                           move_cycles=rp.move_elements, vec_cycles=vec,
                           xent_cycles=plan_busy["xent"], adam_cycles=plan_busy["adam"])
        counts["cycles"] += rp.predicted_cycles + extra
        counts["move_elements"] += rp.move_elements
        counts["vec_elements"] += vec
    for bank, rows in chip_written_rows(rp).items():   # what the programs overwrote
        session._resident[bank].valid[rows] = False
    counts["move_cycles"] += rp.move_cycles
    counts["vec_cycles"] += rp.vec_cycles
    counts["predicted"] += rp.predicted_cycles + extra
    counts["useful"] += sum(cc.useful_macs for cc in rp.compiled)
    for o in rp.outputs:
        home = rp.output_home(o)
        if home is not None:      # dense: an activation output, xent logits or gradient
            raw = np.array(be.read(buffer_base("ABC".index(home.bank)) +
                                   home.base * buffer_lanes(cfg, home.bank),
                                   home.elements), dtype=np.int64)
            values[o] = wrap(raw, BUFFER_WORD_BITS).reshape(rp.shapes[o])
            counts["read"] += home.elements
            continue
        cc = rp.compiled[rp.result_step(o)]
        i = rp.result_step(o)
        n = cc.c_rows * cfg.c_lanes
        raw = np.array(be.read(buffer_base(2) + rp.c_base[i] * cfg.c_lanes, n),
                       dtype=np.int64)
        values[o] = cc.unpack_c(wrap(raw, BUFFER_WORD_BITS).reshape(
            cc.c_rows, cfg.c_lanes)).reshape(rp.shapes[o])
        counts["read"] += cc.c_rows * cc.lanes_used("c")
    return values


def run_resident(plan, tensors: dict, session, *, stage: bool = False, keep=(),
                 state=None, discard=(), xent_results: bool = False, lean: bool = False,
                 step=None, program_at=0):
    """Run a checked chain resident on ``session``'s backend (``plan_segments``).
    ``stage``: inputs written densely into C and laid out by MOVEs (``plan_resident``).
    ``keep``: results the host reads back although later steps consume them.
    ``state``: inputs the update unit lays out from its state memory (``plan_resident``).
    ``discard``: results no step consumes that the host does not read (not returned).
    ``xent_results``: after each program with an XENT the host reads its accuracy
    count and loss sum (``XENT_RESULT_WORDS``: ``Reg.XENT_CORRECT``, ``Reg.XENT_LOSS``)
    into ``ResidentRun.xent`` (``{"correct", "loss"}`` summed over the chain).
    ``lean``: the programs run lean (``Backend.run(counters=False)``: no CLEAR, STATUS
    the only read; one CLEAR opens the series, ``Backend.settle_counters`` checks the
    counters against the model's sums when it closes — at the next CLEAR or the
    caller's ``settle_counters``): the cycles reported are the model's until then.
    ``step`` (``StepParams``): every program opens with that STEP; the plan's seeds are
    indices (``sim.chain.literal_seeds``), its updates take the STEP's learning rate
    (their ``lr`` must equal it).
    ``program_at``: the program word each program is written at and started from
    (``Ctrl.START`` with a start word; ``hostmap.program_base``): 0, any word, or ``"top"``
    (flush against the end of program memory: an evaluation's programs there leave a
    training step's program at word 0 in place).
    Returns a ``ResidentRun``: the results no step consumes and those in ``keep``
    (int64, einsum shapes),
    cycles by phase (module docstring; ``counted``/``predicted``: the programs' CYCLES
    counters and the model's, equal), host words ``written``/``read`` (and
    ``skipped``: operand rows a separate-job segment found already held, as the harness
    counts them), the segments and the useful MACs."""
    cfg = session.config
    program_base(program_at, 1, cfg.prog_depth)       # checked before anything is written
    values = {k: np.asarray(v) for k, v in tensors.items()}
    made = {x for st in plan for x in resident_plan._makes(st)}
    bad = [k for k in keep if k not in made]
    if bad:
        raise FettaError(f"keep={bad[0]!r} is not a result of the chain; allowed "
                         f"{', '.join(map(repr, sorted(made)))}")
    pplan = plan
    if step is not None:
        for i, (spec, _, _, _, p) in enumerate(plan):
            for u in p.get("update", ()):
                if int(u["lr"]) != step.lr:
                    raise FettaError(f"step {i} '{spec}': update lr {u['lr']} != the "
                                     f"STEP's {step.lr}; with a STEP every update "
                                     f"takes its learning rate")
        pplan = [(sp, a, b, o, dict(p, update=[dict(u, lr_step=True) for u in p["update"]])
                  if "update" in p else p) for sp, a, b, o, p in plan]
    segs = plan_segments(pplan, {k: v.shape for k, v in values.items()}, cfg, stage=stage,
                         keep=keep, state=state, discard=discard)
    be = session.backend
    counts = dict.fromkeys(("written", "read", "skipped", "cycles", "move_cycles",
                            "move_elements", "vec_cycles", "vec_elements", "predicted",
                            "useful"), 0)
    counts["busy"] = dict.fromkeys(VECTOR_OPS, 0)
    counts["busy_predicted"] = dict.fromkeys(VECTOR_OPS, 0)
    if xent_results:
        counts["xent"] = {"correct": 0, "loss": 0}
    counts["lean"] = lean
    for seg in segs:
        # results kept on chip by the harness are gone; its copies of A and B stay
        # right (every run marks the rows its programs write)
        session.invalidate(program=False, buffers=False)
        if not be.known_idle:
            be.abort()
        if seg.plan is None:      # a separate job: its seeds written out
            spec, a, b, o, p = literal_seeds(plan[seg.lo:seg.lo + 1], step)[0]
            res = session.contract(spec, values[a], values[b], **resident_plan._cparams(p),
                                   **{k: p[k] for k in ("slot", "vote") if k in p})
            values[o] = res.output.reshape(p.get("reshape", res.output.shape))
            counts["written"] += res.host_words["written"]
            counts["read"] += res.host_words["read"]
            counts["skipped"] += res.host_words["skipped"]
            counts["cycles"] += res.cycles
            counts["predicted"] += res.predicted_cycles
            counts["useful"] += res.useful_macs
            session.invalidate(program=False, buffers=False)
        else:
            _run_plan(seg.plan, values, session, counts, step, program_at)
    consumed = {x for st in plan for x in resident_plan._reads(st)}
    outputs = {x: values[x] for st in plan for x in resident_plan._makes(st)
               if (x not in consumed or x in keep) and x not in discard}
    cycles = {"compute": counts["cycles"] - counts["move_cycles"] - counts["vec_cycles"],
              "on_chip_moves": counts["move_cycles"],
              "elementwise": counts["vec_cycles"],
              "host_transfer": counts["written"] + counts["read"]}
    cycles["total"] = (cycles["compute"] + cycles["on_chip_moves"] +
                       cycles["elementwise"] + cycles["host_transfer"])
    cycles["counted"], cycles["predicted"] = counts["cycles"], counts["predicted"]
    cycles["move_elements"] = counts["move_elements"]
    cycles["vec_elements"] = counts["vec_elements"]
    cycles["vector_busy"] = counts["busy"]
    cycles["vector_busy_predicted"] = counts["busy_predicted"]
    return ResidentRun(outputs, cycles, {"written": counts["written"],
                                         "read": counts["read"],
                                         "skipped": counts["skipped"]},
                       segs, counts["useful"], counts.get("xent"))


@dataclass
class ResidentRun:
    """What ``run_resident`` returns (see there)."""
    outputs: dict
    cycles: dict
    host_words: dict
    segments: list
    useful_macs: int
    xent: dict | None = None
