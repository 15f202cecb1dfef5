"""MOVE on the RTL (Amaranth simulator): copies and fills equal the ISA's semantics
(``sw_model.accel.move.run_move``), the cycle count equals ``move_cycles`` of the
MOVEs' counts, and a refused MOVE halts with its error code and writes nothing."""

import numpy as np
import pytest

from fetta.sim.backends.pysim import PysimBackend
from fetta.sw_model.accel.config import get_config
from fetta.sw_model.accel.hostmap import PROG_BASE, ErrorCode, Status
from fetta.sw_model.accel.isa import COUNT_MAX, HALT
from fetta.sw_model.accel.move import (BUFS, MOVE_CHECK_PASSES, MOVE_TAIL, MOVE_WORDS, Move,
                                       MoveLevel, run_move)
from fetta.sw_model.accel.timing import timing

from move_buffers import buffer_contents, load_buffers

CFG = get_config("tiny")
ROWS = 48          # rows of each buffer the tests write and compare


@pytest.fixture(scope="module")
def be():
    b = PysimBackend(CFG)
    yield b
    b.close()


def _load(be, rng):
    return load_buffers(be, rng, CFG, ROWS)


def _contents(be, name):
    return buffer_contents(be, CFG, name, ROWS)


def _random_move(rng):
    src, dst = rng.choice(BUFS, 2, replace=False)
    fill = bool(rng.random() < 0.2)
    levels = []
    for _ in range(int(rng.integers(1, 4))):
        levels.append(MoveLevel(int(rng.integers(1, 5)), int(rng.integers(-3, 9)),
                                int(rng.integers(-3, 9))))
    # bases far enough from 0 that negative strides stay in range
    return Move(str(src), str(dst), int(rng.integers(40, 120)), int(rng.integers(40, 120)),
                tuple(levels), fill)


def test_random_moves_match_the_isa_semantics_and_cycle_model(be):
    rng = np.random.default_rng(7)
    tm = timing(CFG)
    for trial in range(4):
        bufs = _load(be, rng)
        moves = [_random_move(rng) for _ in range(3)]
        be.clear()
        be.write(PROG_BASE, [w for mv in moves for w in mv.encode()] + [HALT])
        st = be.run(100_000)
        assert st.ok, hex(st.status)
        for mv in moves:
            run_move(CFG, mv, bufs)
        for name in BUFS:
            got, want = _contents(be, name), bufs[name][:ROWS]
            bad = np.argwhere(got != want)
            assert not len(bad), (f"trial {trial} buffer {name} row/lane "
                                  f"{tuple(bad[0])}: RTL {got[tuple(bad[0])]}, model "
                                  f"{want[tuple(bad[0])]} ({moves})")
        c = st.counters
        assert c["cycles"] == sum(tm.move_cycles(mv.counts) for mv in moves) + tm.fetch
        assert c["move_cycles"] == sum(mv.elements for mv in moves)
        assert c["cycles"] == (c["stall_config"] + c["stall_fill"] + c["mac_active_cycles"]
                               + c["stall_drain"] + c["move_cycles"])


# (MOVE, range-check cycles): every count 1, each pass its accumulate cycle alone;
# counts 2, 1, 20: count - 1 of 1, 0, 5 bits, each level in a source and a
# destination pass; count 4097, the fewest elements whose count - 1 has all 13 bits
CHECK_CASES = [
    (Move("C", "A", 7, 9), len(MOVE_CHECK_PASSES) + 1),
    (Move("C", "B", 40, 50, (MoveLevel(2, 40, 40), MoveLevel(1, 5, 5), MoveLevel(20, 1, 1))),
     len(MOVE_CHECK_PASSES) + 2 * (1 + 5) + 1),
    (Move("C", "A", 0, 0, (MoveLevel((COUNT_MAX + 1) // 2 + 1, 0, 1),), fill=True),
     len(MOVE_CHECK_PASSES) + 2 * 13 + 1),
]


@pytest.mark.parametrize("move, check", CHECK_CASES)
def test_range_check_cycles_follow_the_counts(be, move, check):
    """The RTL's cycles of one MOVE: fetch, payload, validate, the range check of
    its counts, its elements, the last write (+ the HALT's fetch)."""
    rng = np.random.default_rng(2)
    bufs = _load(be, rng)
    be.clear()
    be.write(PROG_BASE, move.encode() + [HALT])
    st = be.run(100_000)
    assert st.ok, hex(st.status)
    run_move(CFG, move, bufs)
    for name in BUFS:
        assert np.array_equal(_contents(be, name), bufs[name][:ROWS]), name
    want = 2 + MOVE_WORDS + 1 + check + move.elements + MOVE_TAIL
    assert st.counters["cycles"] == want + 2 == timing(CFG).move_cycles(move.counts) + 2


@pytest.mark.parametrize("move, code", [
    # destination past the end of A
    (Move("C", "A", 0, CFG.a_lanes * CFG.bank_depth - 2, (MoveLevel(3, 1, 1),)),
     ErrorCode.ADDRESS_RANGE),
    # source below 0
    (Move("B", "A", 1, 0, (MoveLevel(3, -1, 1),)), ErrorCode.ADDRESS_RANGE),
    # a copy within one buffer
    (Move("A", "A", 0, 100, (MoveLevel(3, 1, 1),)), ErrorCode.BAD_CONFIG),
])
def test_refused_move_halts_and_writes_nothing(be, move, code):
    rng = np.random.default_rng(1)
    bufs = _load(be, rng)
    good = Move("C", "B", 0, 0, (MoveLevel(4, 1, 1),))
    be.clear()
    be.write(PROG_BASE, move.encode() + good.encode() + [HALT])
    st = be.run(100_000)
    assert st.status & Status.ERROR and (st.status >> 8) & 0xFF == code
    assert st.counters["move_cycles"] == 0
    for name in BUFS:
        assert np.array_equal(_contents(be, name), bufs[name][:ROWS]), name
    if code == ErrorCode.BAD_CONFIG:    # the model refuses what the controller refuses
        with pytest.raises(ValueError, match="a copy needs two buffers"):
            Move.decode(move.encode()[1:])


def test_move_is_an_illegal_opcode_without_the_unit():
    cfg = CFG.replace(name="tiny-nomove", move_unit=False, shift_slots=0,
                      adam_entries=0)
    with PysimBackend(cfg) as b:
        b.write(PROG_BASE, Move("C", "A", 0, 0).encode() + [HALT])
        st = b.run(10_000)
        assert (st.status >> 8) & 0xFF == ErrorCode.ILLEGAL_OPCODE
