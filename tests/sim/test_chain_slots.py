"""Chains whose steps take their output shift from an on-chip shift slot (``slot`` in a
step's parameters, ``sw_model.accel.shift_slots``): resident and separate-job chains
equal the golden chain when the slot holds the step's ``shift`` and differ when it
holds another (so the slot, not the program, decides); a step with ``vote`` close moves
the slot exactly as the vote rule; bad slot parameters are refused in one line."""

import numpy as np
import pytest

from fetta.sim.chain import check_chain, reference_chain, run_chain
from fetta.sim.harness import Session
from fetta.sw_model.accel.config import get_config
from fetta.sw_model.accel.shift_slots import advance, vote

CFG = get_config("tiny")


def _chain(rng, slot_params):
    x = rng.integers(-100, 100, (6, 12))
    w1 = rng.integers(-8, 8, (12, 10))
    w2 = rng.integers(-8, 8, (10, 5))
    steps = [("bk,kn->bn", "x", "w1", "h", {"shift": 3, "rounding": "nearest-even",
                                            **slot_params}),
             ("bn,nm->bm", "h", "w2", "y", {"shift": 4})]
    return steps, {"x": x, "w1": w1, "w2": w2}


@pytest.mark.parametrize("resident", [True, False])
def test_the_slot_decides_the_shift(resident):
    rng = np.random.default_rng(5)
    steps, tensors = _chain(rng, {"slot": 7})
    want = reference_chain(check_chain(steps, tensors), tensors, CFG)["y"]
    with Session(CFG, "verilator", resident=resident) as s:
        s._init_slot(7, (3, 0))
        got = run_chain(steps, tensors, session=s, resident=resident).outputs["y"]
        assert np.array_equal(got, want)
        s._init_slot(7, (5, 0))          # the program is the same; the slot is not
        other = run_chain(steps, tensors, session=s, resident=resident).outputs["y"]
        assert not np.array_equal(other, want)
        steps5 = [(*steps[0][:4], {**steps[0][4], "shift": 5}), steps[1]]
        assert np.array_equal(other, reference_chain(check_chain(steps5, tensors),
                                                     tensors, CFG)["y"])
        assert s.read_slot(7) == (5, 0, 0)           # vote none: not moved


def test_a_closing_vote_moves_the_slot_by_the_rule():
    rng = np.random.default_rng(8)
    steps, tensors = _chain(rng, {"slot": 2, "vote": "close"})
    h = reference_chain(check_chain(steps, tensors), tensors, CFG)["h"]
    with Session(CFG, "verilator", resident=True) as s:
        s._init_slot(2, (3, 2))
        run_chain(steps, tensors, session=s, resident=True)
        v = vote(int(np.abs(h).max()), 16, CFG.vote_up, CFG.vote_down)
        assert s.read_slot(2) == (*advance(3, 2, v, CFG.vote_count, CFG.acc_bits - 1), 0)


@pytest.mark.parametrize("params, match", [
    ({"slot": 0}, r"slot=0 out of range; allowed 1\.\.31"),
    ({"slot": True}, r"slot=True out of range"),
    ({"vote": "close"}, r"vote='close' needs a slot"),
    ({"slot": 3, "vote": "often"}, r"vote='often' unknown"),
])
def test_bad_slot_parameters_are_refused(params, match):
    steps, tensors = _chain(np.random.default_rng(1), params)
    with pytest.raises(ValueError, match=match):
        check_chain(steps, tensors)


def test_a_slot_the_preset_lacks_is_refused_in_one_line():
    steps, tensors = _chain(np.random.default_rng(1), {"slot": 20})
    with pytest.raises(ValueError, match=r"slot=20 out of range; 'tiny' has shift slots 1\.\.16"):
        run_chain(steps, tensors, config="tiny", backend="verilator", resident=True)


def test_an_activation_takes_its_shift_from_a_slot_and_votes_once():
    """``act`` with ``slot``/``vote``: every VEC of the activation (each reader's layout
    and the host's dense copy) reads the slot's shift; the VECs gather and the last
    one closes, so the slot moves once by the rule on the activation's largest word."""
    rng = np.random.default_rng(12)
    tensors = {"x": rng.integers(-100, 100, (6, 12)), "w1": rng.integers(-8, 8, (12, 10)),
               "b1": rng.integers(-300, 300, (10,)), "w2": rng.integers(-8, 8, (10, 5)),
               "w3": rng.integers(-8, 8, (5, 10))}
    act = {"shift": 3, "rounding": "stochastic", "out_bits": 8, "seed": 77}
    steps = [("bk,kn->bn", "x", "w1", "h", {"shift": 2, "bias": "b1", "pre": "z",
                                            "act": {**act, "slot": 4, "vote": "close"}}),
             ("bn,nm->bm", "h", "w2", "y", {"shift": 4}),
             ("bn,mn->bm", "h", "w3", "y2", {"shift": 4})]  # h read in two layouts
    vals = reference_chain(check_chain(steps, tensors), tensors, CFG)
    with Session(CFG, "verilator", resident=True) as s:
        s._init_slot(4, (3, 1))
        res = run_chain(steps, tensors, session=s, resident=True, keep=("h",))
        for name in ("h", "y", "y2"):
            assert np.array_equal(res.outputs[name], vals[name]), name
        v = vote(int(np.abs(vals["h"]).max()), 8, CFG.vote_up, CFG.vote_down)
        assert s.read_slot(4) == (*advance(3, 1, v, CFG.vote_count, CFG.acc_bits - 1), 0)
        s._init_slot(4, (1, 0))        # the slot, not the program, holds the shift
        other = run_chain(steps, tensors, session=s, resident=True, keep=("h",))
        assert not np.array_equal(other.outputs["h"], vals["h"])
        rp = res.resident.segments[0].plan
        vecs = [ins for _, t, _, vp in rp.vecs if t == "h" for ins in vp.instructions
                if hasattr(ins, "op")]
        assert len(vecs) >= 2 and all(v.slot == 4 and v.shift == 0 for v in vecs)
        assert [v.vote.name for v in vecs] == ["GATHER"] * (len(vecs) - 1) + ["CLOSE"]
