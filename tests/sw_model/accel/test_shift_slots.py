"""The vote rule's one definition (``sw_model.accel.shift_slots``) against the recipe's
float statement of it, the slot register word, the slot fields of CONTRACT and VEC, and
the functional model's slot file."""

import numpy as np
import pytest

from fetta.sw_model.accel.config import AccelConfig, get_config
from fetta.sw_model.accel.isa import Contract
from fetta.sw_model.accel.move import Move, MoveLevel
from fetta.sw_model.accel.shift_slots import (SlotFile, Vote, advance, slot_fields, slot_word,
                                              vote, vote_thresholds)
from fetta.sw_model.accel.vec import Vec
from fetta.sw_model.train.quant_train import FixedRecipe, ShiftController


def _float_vote(m, out_bits, up, down):
    full = (1 << (out_bits - 1)) - 1
    return 1 if m > up * full else -1 if m < down * full else 0


@pytest.mark.parametrize("up, down", [(0.9, 0.3), (0.75, 0.25), (0.999, 0.001), (0.5, 0.1)])
def test_integer_thresholds_equal_the_float_rule_at_every_magnitude(up, down):
    for bits in range(2, 17):
        hi, lo = vote_thresholds(bits, up, down)
        ms = np.arange(0, 1 << (bits - 1) + 1)
        for m in ms:
            assert vote(int(m), bits, up, down) == _float_vote(int(m), bits, up, down), \
                (bits, int(m), hi, lo)


def test_controller_runs_the_rule_and_advance_matches_a_direct_statement():
    rng = np.random.default_rng(0)
    rc = FixedRecipe()
    for trial in range(200):
        bits = int(rng.integers(2, 17))
        ctl = ShiftController(bits, rc, shift=int(rng.integers(0, 32)))
        shift, pending = ctl.shift, 0
        for m in rng.integers(0, 1 << (bits - 1), 20):
            ctl.observe(int(m))
            # independent statement: runs of `votes` equal votes move the shift
            v = _float_vote(int(m), bits, rc.shift_up, rc.shift_down)
            pending = (pending + v if pending * v > 0 else v)
            if pending >= rc.votes:
                shift, pending = min(shift + 1, rc.acc_bits - 1), 0
            elif pending <= -rc.votes:
                shift, pending = max(shift - 1, 0), 0
            assert (ctl.shift, ctl.pending) == (shift, pending)
    assert advance(31, 2, 1, 3, 31) == (31, 0) and advance(0, -2, -1, 3, 31) == (0, 0)


def test_slot_word_round_trip_and_range():
    for shift, pending, gmax in [(0, 0, 0), (47, -8, 65535), (5, 7, 1), (63, -1, 300)]:
        assert slot_fields(slot_word(shift, pending, gmax)) == (shift, pending, gmax)
    for bad in [dict(shift=64), dict(shift=1, pending=8), dict(shift=1, gmax=1 << 16)]:
        with pytest.raises(ValueError, match="out of range"):
            slot_word(**bad)


def test_instruction_fields_encode_decode_and_refuse():
    c = Contract(slot=7, vote="gather")
    d = Contract.decode(c.encode()[1:])
    assert (d.slot, d.vote, d.shift) == (7, int(Vote.GATHER), 0)
    with pytest.raises(ValueError, match="slot"):
        Contract(shift=3, slot=1).encode()
    with pytest.raises(ValueError, match="needs a slot"):
        Contract(vote="close").encode()
    walk = Move("C", "A", 0, 0, (MoveLevel(4, 1, 1),))
    v = Vec(walk, "requant", slot=31, vote="close")
    assert Vec.decode(v.encode()[1:]) == v
    with pytest.raises(ValueError, match="needs a slot"):
        Vec(walk, "relu", vote=1)
    with pytest.raises(ValueError, match="slot=32 out of range"):
        Vec(walk, "relu", slot=32)
    with pytest.raises(ValueError, match="vote='sometimes' unknown"):
        Vec(walk, "relu", slot=1, vote="sometimes")


def test_slot_file_gather_close_and_checks():
    cfg = get_config("tiny")
    f = SlotFile(cfg, [slot_word(4, 2, 0)] * cfg.shift_slots)
    f.end(3, Vote.GATHER, 100, 16)
    f.end(3, Vote.GATHER, 40, 16)
    assert f.slots[2] == [4, 2, 100]
    f.end(3, Vote.CLOSE, 32000, 16)          # up vote: third in a row
    assert f.slots[2] == [5, 0, 0]
    f.end(3, Vote.NONE, 0, 16)
    assert f.slots[2] == [5, 0, 0]
    assert f.shift(3, 0) == 5 and f.shift(0, 9) == 9
    for args, msg in [((0, 2, 0), "needs a slot"), ((17, 0, 0), "out of range"),
                      ((1, 3, 0), "vote code 3"), ((1, 0, 4), "must be 0")]:
        with pytest.raises(ValueError, match=msg):
            f.check(*args)


@pytest.mark.parametrize("field, value, msg", [
    ("shift_slots", 32, "out of range"), ("vote_count", 0, "out of range"),
    ("vote_up", 1.0, "out of range"), ("vote_down", 0.95, "not below"),
])
def test_config_validates_the_vote_fields(field, value, msg):
    with pytest.raises(ValueError, match=msg):
        AccelConfig(**{field: value})
    with pytest.raises(ValueError, match="needs move_unit"):
        AccelConfig(move_unit=False)
