"""VEC on the RTL (the MOVE unit with the vector ALU, ``rtl/vector_alu.py``): random
VECs of every op equal the ISA's semantics (``sw_model.accel.vec.run_vec``) on pysim,
Verilator and CXXRTL, their cycles equal ``vec_cycles`` and the counters add up; a
destination stride of 0 accumulates through the forwarded word; a refused VEC halts
with its error code and writes nothing."""

import numpy as np
import pytest

from fetta.sim.backends.base import get_backend
from fetta.sw_model.accel.config import get_config
from fetta.sw_model.accel.hostmap import PROG_BASE, UNIT_COUNTERS, ErrorCode, Status
from fetta.sw_model.accel.isa import HALT
from fetta.sw_model.accel.move import BUFS, Move, MoveLevel
from fetta.sw_model.accel.timing import timing
from fetta.sw_model.accel.vec import VW, Vec, VecOp, run_vec
from fetta.sw_model.arith.fixedpoint import ROUNDING_MODES

from move_buffers import buffer_contents, load_buffers

CFG = get_config("tiny")
ROWS = 48


@pytest.fixture(scope="module")
def pysim():
    b = get_backend("pysim", CFG)
    yield b
    b.close()


def _load(be, rng):
    # every third row small, so that saturation is not the only outcome
    return load_buffers(be, rng, CFG, ROWS, shrink_every=3)


def _contents(be, name):
    return buffer_contents(be, CFG, name, ROWS)


def _random_vec(rng):
    src, dst = rng.choice(BUFS, 2, replace=False)
    levels = []
    for _ in range(int(rng.integers(1, 4))):
        # destination strides of 0 (accumulate) and 1 (neighbour lanes, one row)
        levels.append(MoveLevel(int(rng.integers(1, 5)), int(rng.integers(-3, 9)),
                                int(rng.choice([0, 1, 1, -1, 3, 8]))))
    mv = Move(str(src), str(dst), int(rng.integers(40, 120)), int(rng.integers(40, 120)),
              tuple(levels))
    return Vec(mv, VecOp(int(rng.integers(len(VecOp)))), int(rng.integers(0, 32)),
               str(rng.choice(ROUNDING_MODES)), int(rng.integers(2, 17)),
               int(rng.integers(0, 1 << 32)), int(rng.integers(0, 1 << 32)))


def _check(be, rng, vecs, label):
    bufs = _load(be, rng)
    be.clear()
    be.write(PROG_BASE, [w for v in vecs for w in v.encode()] + [HALT])
    st = be.run(200_000)
    assert st.ok, hex(st.status)
    for v in vecs:
        run_vec(CFG, v, bufs)
    for name in BUFS:
        got, want = _contents(be, name), bufs[name][:ROWS]
        bad = np.argwhere(got != want)
        assert not len(bad), (f"{label} buffer {name} row/lane {tuple(bad[0])}: RTL "
                              f"{got[tuple(bad[0])]}, model {want[tuple(bad[0])]} (VECs: "
                              + "; ".join(f"{v.op.name} {v.move.src}->{v.move.dst} "
                                          f"base {v.move.dst_base}" for v in vecs) + ")")
    tm = timing(CFG)
    c = st.counters
    assert c["cycles"] == sum(tm.vec_cycles(v.counts, v.op) for v in vecs) + tm.fetch
    assert c["vec_cycles"] == sum(v.elements for v in vecs) and c["move_cycles"] == 0
    unit = be.counters(UNIT_COUNTERS)
    assert unit["xent_cycles"] == unit["adam_cycles"] == 0     # by operation: the ALU's
    assert c["cycles"] == (c["stall_config"] + c["stall_fill"] + c["mac_active_cycles"]
                           + c["stall_drain"] + c["move_cycles"] + c["vec_cycles"])


def test_random_vecs_match_the_isa_semantics_and_cycle_model(pysim):
    rng = np.random.default_rng(11)
    for trial in range(5):
        _check(pysim, rng, [_random_vec(rng) for _ in range(4)], f"trial {trial}")


def test_every_op_after_a_move_and_an_accumulation(pysim):
    """Each op once over the same walk, then ADD and MASK into one destination word
    (stride 0: every element reads the word the previous one wrote)."""
    rng = np.random.default_rng(3)
    walk = Move("C", "A", 40, 50, (MoveLevel(3, 5, 1), MoveLevel(4, 1, 3)))
    vecs = [Vec(walk, op, shift=3, rounding="stochastic", out_bits=8, seed=1234,
                index_base=1000 * int(op)) for op in VecOp]
    acc = Move("C", "B", 10, 60, (MoveLevel(4, 1, 0), MoveLevel(3, 7, 0)))
    vecs += [Vec(acc, "add"), Vec(acc, "mask")]
    _check(pysim, rng, vecs, "ops")


@pytest.mark.parametrize("backend", ["verilator", "cxxrtl"])
def test_compiled_backends_agree(backend):
    """The same kind of random VECs on the compiled models (cached builds of tiny)."""
    rng = np.random.default_rng(29)
    with get_backend(backend, CFG) as be:
        for trial in range(3):
            _check(be, rng, [_random_vec(rng) for _ in range(4)], f"{backend} {trial}")


def _with_op_word(vec, value):
    words = vec.encode()
    words[1 + VW.OP] = value
    return words


GOOD = Vec(Move("C", "A", 0, 0, (MoveLevel(4, 1, 1),)), "relu")


@pytest.mark.parametrize("words, code", [
    (_with_op_word(GOOD, len(VecOp)), ErrorCode.BAD_CONFIG),         # past the last op
    (_with_op_word(GOOD, int(VecOp.RELU) | 3 << 9 | 16 << 11), ErrorCode.BAD_CONFIG),
    (_with_op_word(GOOD, int(VecOp.RELU) | 1 << 11), ErrorCode.BAD_CONFIG),   # 1 bit
    (_with_op_word(GOOD, int(VecOp.RELU) | 17 << 11), ErrorCode.BAD_CONFIG),
    # the fill bit set in the MOVE part
    ([GOOD.encode()[0], GOOD.encode()[1] | 1 << 4] + GOOD.encode()[2:], ErrorCode.BAD_CONFIG),
    # destination past the end of A
    (Vec(Move("C", "A", 0, CFG.a_lanes * CFG.bank_depth - 2, (MoveLevel(3, 1, 1),)),
         "add").encode(), ErrorCode.ADDRESS_RANGE),
])
def test_refused_vec_halts_and_writes_nothing(pysim, words, code):
    rng = np.random.default_rng(1)
    bufs = _load(pysim, rng)
    pysim.clear()
    pysim.write(PROG_BASE, words + GOOD.encode() + [HALT])
    st = pysim.run(100_000)
    assert st.status & Status.ERROR and (st.status >> 8) & 0xFF == code
    assert st.counters["vec_cycles"] == 0
    for name in BUFS:
        assert np.array_equal(_contents(pysim, name), bufs[name][:ROWS]), name


def test_vec_is_an_illegal_opcode_without_the_unit():
    cfg = CFG.replace(name="tiny-nomove", move_unit=False, shift_slots=0,
                      adam_entries=0)
    with get_backend("pysim", cfg) as b:
        b.write(PROG_BASE, GOOD.encode() + [HALT])
        st = b.run(10_000)
        assert (st.status >> 8) & 0xFF == ErrorCode.ILLEGAL_OPCODE
