"""The start word (``Ctrl.START`` with CTRL bits 31..16, ``hostmap.ctrl_start``;
``Backend.run(start=)``; ``run_chain(program_at=)``, ``hostmap.program_base``; a
session's separate jobs with ``Session.job_program_at``): a
program runs where it lies in program memory, with the same results and cycles as at
word 0, so a second program kept above it (an evaluation's, at ``"top"``) leaves the
first in place; a start word past program memory halts at once with PROGRAM_RANGE and
the host refuses one before writing CTRL."""

import numpy as np
import pytest

from fetta.errors import FettaError
from fetta.sim.chain import run_chain
from fetta.sim.harness import Session
from fetta.sw_model.arith.contraction import reference_contraction
from fetta.sw_model.accel.hostmap import program_base
from fetta.sw_model.accel.hostmap import (PROG_BASE, REG_BASE, ErrorCode, Reg, Status,
                                          ctrl_start)
from fetta.sw_model.accel.isa import Op, header

from test_chain_xent import _step


def _other_chain(rng):
    """A chain with programs unlike ``_step``'s (one contraction and a VEC epilogue)."""
    tensors = {"x": rng.integers(-100, 100, (4, 6)), "w": rng.integers(-8, 8, (6, 5)),
               "b": rng.integers(-300, 300, (5,))}
    steps = [("bk,kn->bn", "x", "w", "h", {"shift": 3, "bias": "b",
                                           "act": {"shift": 0, "out_bits": 8}})]
    return steps, tensors


def _programs(res):
    return [p for sg in res.resident.segments for p in sg.plan.programs]


@pytest.mark.parametrize("backend", ["pysim", "verilator"])
def test_a_chain_runs_where_it_lies_and_one_at_the_top_leaves_word_0_in_place(backend):
    rng = np.random.default_rng(3)
    steps, tensors = _step(rng)
    other, other_t = _other_chain(rng)
    with Session("tiny", backend) as s:
        depth = s.config.prog_depth
        cold = run_chain(steps, tensors, session=s, resident=True)
        warm = run_chain(steps, tensors, session=s, resident=True)
        # the same chain started at the top: same results, same counted cycles
        top = run_chain(steps, tensors, session=s, resident=True, program_at="top")
        for k, v in cold.outputs.items():
            assert np.array_equal(top.outputs[k], v), k
        assert top.resident.cycles["counted"] == top.resident.cycles["predicted"] == \
            warm.resident.cycles["counted"]
        progs = _programs(warm)
        assert len(progs) == 1 and 2 * len(progs[0]) <= depth    # the two do not overlap
        # held nowhere at the top before: every program word written there
        assert top.host_words["written"] == warm.host_words["written"] + len(progs[0])
        # another chain at the top: the program at word 0 stays in program memory
        n = len(progs[0])
        run_chain(other, other_t, session=s, resident=True, program_at="top")
        assert s.backend.read(PROG_BASE, n) == [int(w) for w in progs[0]]
        again = run_chain(steps, tensors, session=s, resident=True)
        # ... while at word 0 it overwrites the start of that program: rewritten then
        run_chain(other, other_t, session=s, resident=True)
        assert s.backend.read(PROG_BASE, n) != [int(w) for w in progs[0]]
        after = run_chain(steps, tensors, session=s, resident=True)
        assert after.host_words["written"] > again.host_words["written"]
        for r in (again, after):
            for k, v in cold.outputs.items():
                assert np.array_equal(r.outputs[k], v), k


def test_a_fault_reports_the_word_where_the_program_lies(tiny_session):
    be = tiny_session.backend
    be.clear()
    be.write(PROG_BASE + 700, [header(Op.SYNC), 0x7E])       # SYNC, an illegal opcode
    st = be.run(1000, start=700)
    assert st.error == ErrorCode.ILLEGAL_OPCODE and st.err_pc == 701
    tiny_session.invalidate()


def test_a_start_word_past_program_memory_halts_at_once(tiny_session):
    be = tiny_session.backend
    depth = tiny_session.config.prog_depth
    be.clear()
    be.write(REG_BASE + Reg.CTRL, [ctrl_start(depth)])       # raw: the host check bypassed
    for _ in range(20):
        status = be.read_reg(Reg.STATUS)
        if not status & Status.BUSY:
            break
    assert not status & Status.BUSY and not status & Status.DONE
    assert ErrorCode((status >> 8) & 0xFF) == ErrorCode.PROGRAM_RANGE
    assert be.read_reg(Reg.ERR_PC) == depth
    be.abort()                                               # idle: known idle again
    tiny_session.invalidate()


def test_bad_start_words_are_refused_before_anything_is_written(tiny_session):
    depth = tiny_session.config.prog_depth
    with pytest.raises(ValueError, match=rf"start word {depth} out of range; allowed "
                                         rf"0..{depth - 1}"):
        tiny_session.backend.run(1000, start=depth)
    with pytest.raises(ValueError, match=r"start word 65536 out of range; allowed 0..65535"):
        ctrl_start(1 << 16)
    assert ctrl_start(5) == 1 | 5 << 16
    for bad in (-1, depth, "bottom", 1.5, True):
        with pytest.raises(ValueError, match=rf"program_at {bad!r} invalid; allowed 'top' "
                                             rf"or a program word 0..{depth - 1}"):
            program_base(bad, 10, depth)
    assert program_base("top", 10, depth) == depth - 10
    assert program_base("top", depth + 5, depth) == 0
    steps, tensors = _step(np.random.default_rng(0))
    with pytest.raises(ValueError, match="program_at=5 places resident programs"):
        run_chain(steps, tensors, session=tiny_session, program_at=5)
    # a program that does not fit where it is placed: one line, nothing run
    with pytest.raises(FettaError, match=rf"at program word {depth - 3} leaves program "
                                         rf"memory; program depth {depth}"):
        run_chain(steps, tensors, session=tiny_session, resident=True,
                  program_at=depth - 3)


def test_separate_jobs_at_the_top_leave_a_chain_at_word_0(tiny_session):
    """``Session.job_program_at = "top"`` (set by ``RtlTraining`` with step chains): a
    separate job runs at the end of program memory, bit-exact, and the chain's program
    at word 0 stays; at word 0 (the default) it overwrites that program."""
    s = tiny_session
    rng = np.random.default_rng(11)
    steps, tensors = _step(rng)
    a, b = rng.integers(-100, 100, (4, 6)), rng.integers(-100, 100, (6, 5))
    want = reference_contraction("ik,kj->ij", a, b, acc_bits=s.config.acc_bits)
    depth = s.config.prog_depth
    s.job_program_at = "top"
    try:
        prog = [int(w) for w in _programs(run_chain(steps, tensors, session=s,
                                                    resident=True))[0]]
        res = s.contract("ik,kj->ij", a, b)
        assert np.array_equal(res.output, want)
        job = [int(w) for w in res.compiled.program]
        assert s.backend.read(PROG_BASE + depth - len(job), len(job)) == job
        assert s.backend.read(PROG_BASE, len(prog)) == prog
    finally:
        s.job_program_at = 0
    res = s.contract("ik,kj->ij", a, b)
    assert np.array_equal(res.output, want)
    assert s.backend.read(PROG_BASE, len(prog)) != prog
