"""MOVE instruction: encoding round trip, range check, semantics, timing."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from fetta.sw_model.accel.config import get_config
from fetta.sw_model.accel.isa import COUNT_MAX, Op, decode_header
from fetta.sw_model.accel.move import (BUFS, MOVE_CHECK_PASSES, MOVE_FIELDS, MOVE_LEVELS,
                                       MOVE_WORDS, Move, MoveLevel, move_check,
                                       move_check_cycles, move_cycles, run_move)
from fetta.sw_model.accel.timing import timing

CFG = get_config("tiny")

levels_st = st.lists(st.builds(MoveLevel, st.integers(1, COUNT_MAX),
                               st.integers(-(1 << 31), (1 << 31) - 1),
                               st.integers(-(1 << 31), (1 << 31) - 1)),
                     max_size=MOVE_LEVELS)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(BUFS), st.sampled_from(BUFS), st.integers(0, (1 << 32) - 1),
       st.integers(0, (1 << 32) - 1), levels_st, st.booleans())
def test_encode_decode_round_trip(src, dst, sb, db, levels, fill):
    mv = Move(src, dst, sb, db, tuple(levels), fill)
    words = mv.encode()
    assert decode_header(words[0]) == (Op.MOVE, MOVE_WORDS)
    if src == dst and not fill:     # the controller refuses it (BAD_CONFIG)
        with pytest.raises(ValueError, match="a copy needs two buffers"):
            Move.decode(words[1:])
    else:
        assert Move.decode(words[1:]) == mv


def test_fields_tile_the_payload_without_overlap():
    used = [0] * MOVE_WORDS
    for f in MOVE_FIELDS:
        mask = ((1 << f.width) - 1) << f.lsb
        assert not used[f.word] & mask, f.name
        used[f.word] |= mask
    assert all(used)


def test_bad_values_raise_one_line_errors():
    with pytest.raises(ValueError, match="src='D' unknown"):
        Move("D", "A", 0, 0)
    with pytest.raises(ValueError, match="count=0 out of range"):
        Move("C", "A", 0, 0, (MoveLevel(0, 1, 1),)).encode()
    with pytest.raises(ValueError, match="at most 8"):
        Move("C", "A", 0, 0, (MoveLevel(),) * 9)
    words = Move("C", "A", 0, 0).encode()
    words[1] |= 3                                   # src code 3
    with pytest.raises(ValueError, match="src code 3 illegal"):
        Move.decode(words[1:])


def test_range_check_verdicts():
    depth_words = CFG.c_lanes * CFG.bank_depth
    ok = Move("C", "A", 0, 0, (MoveLevel(4, 1, 8),))
    assert move_check(CFG, ok) is None
    assert move_check(CFG, Move("C", "A", depth_words - 1, 0,
                                (MoveLevel(2, 1, 1),))) == "address"
    assert move_check(CFG, Move("C", "A", 3, 0, (MoveLevel(4, -1, 1),))) is None
    assert move_check(CFG, Move("C", "A", 2, 0, (MoveLevel(4, -1, 1),))) == "address"
    # a fill does not read: its source is not checked
    assert move_check(CFG, Move("C", "A", 1 << 30, 0, (MoveLevel(2, 1, 8),),
                                fill=True)) is None
    # the destination always is
    assert move_check(CFG, Move("C", "A", 0, CFG.a_lanes * CFG.bank_depth,
                                fill=True)) == "address"


def test_run_move_copies_and_fills():
    rng = np.random.default_rng(0)
    bufs = {b: rng.integers(-100, 100, (CFG.bank_depth, 8)) for b in BUFS}
    c_before = bufs["C"].copy()
    mv = Move("C", "B", 5, 17, (MoveLevel(3, 8, 1), MoveLevel(2, 1, 4)))
    s, d = mv.addresses()
    run_move(CFG, mv, bufs)
    assert list(s) == [5, 6, 13, 14, 21, 22] and list(d) == [17, 21, 18, 22, 19, 23]
    for si, di in zip(s, d):
        assert bufs["B"][di // 8, di % 8] == c_before[si // 8, si % 8]
    run_move(CFG, Move("C", "A", 0, 8 * 3 + 5, (MoveLevel(2, 0, 8),), fill=True), bufs)
    assert not bufs["A"][3:5].any() and bufs["A"][2].any() and bufs["A"][5].any()


def test_timing_and_check_schedule():
    """A range-check pass takes bit_length(count - 1) Horner steps + 1 accumulate
    cycle; every level has a source and a destination pass; + 1 for done."""
    assert len(MOVE_CHECK_PASSES) == 2 * MOVE_LEVELS
    assert move_check_cycles(()) == move_check_cycles((1,) * MOVE_LEVELS) == 2 * MOVE_LEVELS + 1
    assert move_check_cycles((COUNT_MAX,) * MOVE_LEVELS) == 2 * MOVE_LEVELS * 14 + 1
    # counts 2, 5, 10: count - 1 of 1, 3, 4 bits, padded outside with count-1 levels
    assert move_check_cycles((2, 1, 5, 10)) == 2 * MOVE_LEVELS + 2 * (1 + 3 + 4) + 1
    mv = Move("C", "A", 0, 0, (MoveLevel(2, 1, 1), MoveLevel(5, 2, 2)))
    assert mv.counts == (1,) * (MOVE_LEVELS - 2) + (2, 5)
    assert move_cycles(mv.counts) == 2 + MOVE_WORDS + 1 + (2 * MOVE_LEVELS + 2 * 4 + 1) + 10 + 1
    assert timing(CFG).move_cycles(mv.counts) == move_cycles(mv.counts)
    with pytest.raises(ValueError, match="count=0 out of range"):
        move_check_cycles((3, 0))
    with pytest.raises(ValueError, match="9 loop counts; a MOVE has at most 8"):
        move_cycles((1,) * 9)
