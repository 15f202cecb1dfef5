"""The STEP instruction (``sw_model/accel/step.py``, the controller's ``LOAD_STEP``, the
seed derivation in the output stages, the VEC's and the ADAM's seeds): a program that
opens with STEP and names its seeds as indices equals, on pysim, Verilator and CXXRTL,
the same program with the derived seeds and the learning rate written literally — in
every buffer word, the update unit's state and CYCLES (+ ``step_cycles``); START clears
the mode; an ADAM with ``lr_step`` before any STEP and a STEP of the wrong length are
refused with ``BAD_CONFIG``; without the MOVE unit the opcode is illegal."""

import numpy as np
import pytest

from fetta.sim.backends.base import get_backend
from fetta.sw_model.accel.adam import Adam, AdamState
from fetta.sw_model.accel.config import get_config
from fetta.sw_model.accel.hostmap import PROG_BASE, ErrorCode
from fetta.sw_model.accel.isa import HALT, Op, header
from fetta.sw_model.accel.move import Move, MoveLevel
from fetta.sw_model.accel.step import StepParams, derive, step_cycles
from fetta.sw_model.accel.timing import timing
from fetta.sw_model.accel.vec import Vec, VecOp, vec_cycles
from fetta.sw_model.program.compiler import compile_contraction
from fetta.sw_model.program.fabric_model import run_program

from move_buffers import assert_ab_equal, buffer_contents, load_buffers
from test_adam_instr import read_state, write_state, _random_state

CFG = get_config("tiny")
ROWS = 48
ENTRIES = 16
KEY, LR = 0x5EED1234, 3 << 22
I_CONTRACT, I_VEC, I_ADAM = 7, 8, 9


@pytest.fixture(scope="module")
def pysim():
    b = get_backend("pysim", CFG)
    yield b
    b.close()


def _parts(literal: bool):
    """The contraction (stochastic), a stochastic VEC and an ADAM: seeds as indices
    with ``lr_step`` (after a STEP), or derived and written out."""
    d = (lambda i: derive(KEY, i)) if literal else (lambda i: i)   # noqa: E731
    cc = compile_contraction("ik,kj->ij", (8, 8), (8, 8), CFG, shift=3,
                             rounding="stochastic", seed=d(I_CONTRACT))
    vec = Vec(Move("C", "A", 0, 200, (MoveLevel(64, 1, 1),)), VecOp.REQUANT, shift=2,
              rounding="stochastic", out_bits=8, seed=d(I_VEC))
    adam = Adam(Move("C", "B", 300, 300, (MoveLevel(ENTRIES, 1, 1),)), state_base=0,
                lr=LR if literal else 0, lr_step=not literal, seed0=d(2 * I_ADAM),
                seed1=d(2 * I_ADAM + 1), step_shift=20, gshift=-4, w_bits=8)
    body = list(cc.program[:-1]) + vec.encode() + adam.encode() + [HALT]
    return cc, vec, adam, body


def _run(be, rng, prog, st):
    bufs = load_buffers(be, rng, CFG, ROWS, shrink_every=3)
    write_state(be, st, ENTRIES)
    be.clear()
    be.write(PROG_BASE, prog)
    status = be.run(500_000)
    return bufs, status


def _check(be, seed, label):
    cc, vec, adam, body = _parts(literal=False)
    prog = StepParams(KEY, LR).encode() + body
    lit = _parts(literal=True)[3]
    rng = np.random.default_rng(seed)
    st = _random_state(rng, ENTRIES)
    bufs, status = _run(be, np.random.default_rng(seed + 1), prog, st)
    assert status.ok, hex(status.status)
    # the model of the STEP program equals the literal program's
    states = []
    for p in (prog, lit):
        s = {"adam": _copy(st)}
        c = run_program(CFG, p, bufs["A"].copy(), bufs["B"].copy(), bufs["C"].copy(),
                        state=s)
        states.append((s, c))
    (s1, c1), (s2, c2) = states
    for name in ("A", "B"):
        assert np.array_equal(s1[name], s2[name]), (label, name)
    assert np.array_equal(c1, c2)
    assert (s1["adam"].m != st.m).any()                       # the update ran
    for k in ("m", "v", "w"):
        assert np.array_equal(getattr(s1["adam"], k), getattr(s2["adam"], k)), (label, k)
    # the RTL equals the model
    rows = ROWS
    assert_ab_equal(be, CFG, s1, rows, label)
    got_c = buffer_contents(be, CFG, "C", rows)
    assert np.array_equal(got_c, c1[:rows]), label
    m, v, w, _ = read_state(be, ENTRIES)
    assert np.array_equal(m, s1["adam"].m[:ENTRIES]), label
    assert np.array_equal(v, s1["adam"].v[:ENTRIES]), label
    tm = timing(CFG)
    # (the contraction's predicted cycles include the HALT the program ends with)
    assert status.counters["cycles"] == (step_cycles(tm.fetch) + cc.predicted_cycles
                                         + vec_cycles(vec.counts, vec.op, tm.fetch)
                                         + adam.cycles(tm.fetch)), label


def _copy(st: AdamState) -> AdamState:
    out = AdamState(CFG)
    out.m, out.v, out.w = st.m.copy(), st.v.copy(), st.w.copy()
    return out


def test_step_program_equals_the_literal_one_pysim(pysim):
    _check(pysim, 3, "pysim")


@pytest.mark.parametrize("backend", ["verilator", "cxxrtl"])
def test_compiled_backends(backend):
    with get_backend(backend, CFG) as be:
        _check(be, 5, backend)


def test_start_clears_the_mode(pysim):
    """A program after one with STEP names its seeds literally again."""
    rng = np.random.default_rng(11)
    cc = compile_contraction("ik,kj->ij", (8, 8), (8, 8), CFG, shift=3,
                             rounding="stochastic", seed=12345)
    st = _random_state(rng, ENTRIES)
    _run(pysim, rng, StepParams(KEY, LR).encode() + [HALT], st)
    bufs, status = _run(pysim, rng, list(cc.program), st)
    assert status.ok
    c = run_program(CFG, list(cc.program), bufs["A"], bufs["B"], bufs["C"], state={})
    assert np.array_equal(buffer_contents(pysim, CFG, "C", 8), c[:8])


@pytest.mark.parametrize("prog", [
    _parts(literal=False)[3],                                 # lr_step without a STEP
    [header(Op.STEP, 3), KEY, LR, 0, HALT],                   # wrong payload length
])
def test_refused(pysim, prog):
    rng = np.random.default_rng(13)
    st = _random_state(rng, ENTRIES)
    bufs, status = _run(pysim, rng, prog, st)
    if prog[0] == header(Op.STEP, 3):
        assert status.error == ErrorCode.BAD_CONFIG
        return
    # the CONTRACT and VEC before the ADAM ran; the ADAM wrote nothing
    assert status.error == ErrorCode.BAD_CONFIG
    m, v, w, _ = read_state(pysim, ENTRIES)
    assert np.array_equal(m, st.m[:ENTRIES]) and np.array_equal(w, st.w[:ENTRIES])
    with pytest.raises(ValueError, match="lr_step=1 before any STEP"):
        run_program(CFG, prog, bufs["A"], bufs["B"], bufs["C"], state={"adam": _copy(st)})


def test_step_is_illegal_without_the_move_unit():
    cfg = get_config("ice40")
    with get_backend("pysim", cfg) as be:
        be.clear()
        be.write(PROG_BASE, StepParams(KEY, LR).encode() + [HALT])
        assert be.run(1000).error == ErrorCode.ILLEGAL_OPCODE
    with pytest.raises(ValueError, match="illegal opcode"):
        run_program(cfg, StepParams(KEY, LR).encode() + [HALT], np.zeros((1, cfg.a_lanes)),
                    np.zeros((1, cfg.b_lanes)), state={})


def test_step_params_range():
    with pytest.raises(ValueError, match=r"STEP key=-1 out of range; allowed 0..2\*\*32-1"):
        StepParams(-1)
    assert StepParams.decode(StepParams(5, 6).encode()[1:]) == StepParams(5, 6)
