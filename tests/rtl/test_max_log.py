"""The max log (``rtl/max_log.py``, ``Reg.MAXLOG``): every CONTRACT's and VEC's largest
|result word|, in order, equal to the functional model's (``fabric_model``'s
``state["maxlog"]``) and to the result tensors'; MOVEs are not logged; the count goes
past the depth while the entries stop; a START clears it."""

import numpy as np
import pytest

from fetta.sim.backends.base import get_backend
from fetta.sw_model.accel.config import get_config
from fetta.sw_model.accel.hostmap import MAXLOG_DEPTH, PROG_BASE, REG_BASE, Reg
from fetta.sw_model.accel.isa import HALT
from fetta.sw_model.accel.move import Move, MoveLevel
from fetta.sw_model.accel.vec import Vec
from fetta.sw_model.arith.contraction import reference_contraction
from fetta.sw_model.program.compiler import compile_contraction
from fetta.sw_model.program.fabric_model import run_program

from move_buffers import load_buffers

CFG = get_config("tiny")
ROWS = 48


@pytest.fixture(scope="module")
def be():
    b = get_backend("pysim", CFG)
    yield b
    b.close()


def _log(be):
    count = be.read(REG_BASE + Reg.MAXLOG_COUNT, 1)[0]
    return count, be.read(REG_BASE + Reg.MAXLOG, MAXLOG_DEPTH)


def _vecs(rng, n):
    out = []
    for k in range(n):
        walk = Move("C", "A", int(rng.integers(0, 60)), int(rng.integers(0, 60)),
                    (MoveLevel(int(rng.integers(1, 5)), 1, 1), MoveLevel(3, 7, 9)))
        op = ["relu", "requant", "shl", "add", "mask", "relu_req"][k % 6]
        out.append(Vec(walk, op, shift=int(rng.integers(0, 6)), out_bits=int(
            rng.integers(4, 17)), rounding="stochastic", seed=k))
    return out


def test_vecs_logged_in_order_moves_not(be):
    rng = np.random.default_rng(4)
    bufs = load_buffers(be, rng, CFG, ROWS, shrink_every=2)
    vecs = _vecs(rng, 6)
    prog = []
    for k, v in enumerate(vecs):
        prog += v.encode()
        if k % 2:
            prog += Move("A", "B", 0, 0, (MoveLevel(5, 1, 1),)).encode()
    be.clear()
    be.write(PROG_BASE, prog + [HALT])
    assert be.run(100_000).ok
    state = {}
    run_program(CFG, prog + [HALT], bufs["A"], bufs["B"], bufs["C"], state=state)
    count, log = _log(be)
    assert count == len(vecs) == len(state["maxlog"])
    assert log[:count] == state["maxlog"] and all(x == 0 for x in log[count:])
    assert max(state["maxlog"]) > 0


def test_contracts_logged_with_their_results_largest_word(be):
    rng = np.random.default_rng(6)
    a, b = rng.integers(-300, 300, (6, 40)), rng.integers(-300, 300, (40, 10))
    cc = compile_contraction("mk,kn->mn", a.shape, b.shape, CFG, shift=7,
                             rounding="stochastic", seed=3)
    be.clear()
    for buf, rows in ((0, cc.pack_a(a)), (1, cc.pack_b(b))):
        be.write((0x100000 + buf * 0x100000), (rows.reshape(-1) & 0xFFFF).tolist())
    be.write(PROG_BASE, cc.program)
    assert be.run(100_000).ok
    state = {}
    run_program(CFG, cc.program, cc.pack_a(a), cc.pack_b(b), state=state)
    count, log = _log(be)
    assert count == len(state["maxlog"]) >= 1
    assert log[:min(count, MAXLOG_DEPTH)] == state["maxlog"][:MAXLOG_DEPTH]
    ref = reference_contraction("mk,kn->mn", a, b, shift=7, rounding="stochastic", seed=3)
    assert max(state["maxlog"]) == int(np.abs(ref).max())


def test_count_goes_past_the_depth_and_start_clears(be):
    rng = np.random.default_rng(9)
    bufs = load_buffers(be, rng, CFG, ROWS)
    vecs = _vecs(rng, MAXLOG_DEPTH + 3)
    prog = [w for v in vecs for w in v.encode()] + [HALT]
    be.clear()
    be.write(PROG_BASE, prog)
    assert be.run(200_000).ok
    state = {}
    run_program(CFG, prog, bufs["A"], bufs["B"], bufs["C"], state=state)
    count, log = _log(be)
    assert count == MAXLOG_DEPTH + 3
    assert log == state["maxlog"][:MAXLOG_DEPTH]
    be.clear()
    be.write(PROG_BASE, [HALT])
    assert be.run(1000).ok
    assert _log(be) == (0, [0] * MAXLOG_DEPTH)
