"""Shift slots on the RTL (``rtl/shift_slots.py``, ``Reg.SLOT``): CONTRACTs and VECs
that name a slot run with its shift and move it by their votes exactly as the
functional model (``fabric_model``'s ``state["slots"]``, the recipe's vote rule) on
pysim, Verilator and CXXRTL, across programs; gather folds several instructions into one
vote; the host reads and writes slots while idle only; refused slot fields halt with
``BAD_CONFIG`` and write nothing; the cycle count does not change."""

import numpy as np
import pytest

from fetta.sim.backends.base import get_backend
from fetta.sw_model.accel.config import get_config
from fetta.sw_model.accel.hostmap import (PROG_BASE, REG_BASE, Ctrl, ErrorCode, Reg,
                                         Status, buffer_base)
from fetta.sw_model.accel.isa import CW, FIELD, HALT, Contract, Op, decode_header
from fetta.sw_model.accel.move import BUFS, Move, MoveLevel
from fetta.sw_model.accel.shift_slots import (SlotFile, Vote, advance, slot_fields, slot_word,
                                              vote)
from fetta.sw_model.accel.vec import VW, VEC_FIELD, Vec
from fetta.sw_model.program.compiler import compile_contraction
from fetta.sw_model.program.fabric_model import run_program

from move_buffers import buffer_contents, load_buffers

CFG = get_config("tiny")
ROWS = 48
SPEC, MK, KN = "mk,kn->mn", (6, 40), (40, 10)


@pytest.fixture(scope="module")
def pysim():
    b = get_backend("pysim", CFG)
    yield b
    b.close()


def _slots(be):
    return be.read(REG_BASE + Reg.SLOT, CFG.shift_slots)


def _set_slots(be, words):
    """Slot words written, SLOT_MOVED cleared (a fresh model's)."""
    be.write(REG_BASE + Reg.SLOT, list(words))
    be.write(REG_BASE + Reg.SLOT_MOVED, [0xFFFFFFFF])


def _contract_program(rng):
    """A compiled contraction (several CONTRACTs) with random operands."""
    a = rng.integers(-300, 300, MK)
    b = rng.integers(-300, 300, KN)
    cc = compile_contraction(SPEC, MK, KN, CFG, shift=0, rounding="stochastic",
                             seed=int(rng.integers(0, 1 << 32)))
    return cc, a, b


def _vecs(rng, slot_of):
    out = []
    for k in range(6):
        walk = Move("C", "A", int(rng.integers(0, 60)), int(rng.integers(0, 60)),
                    (MoveLevel(int(rng.integers(1, 5)), 1, 1), MoveLevel(3, 7, 9)))
        op = ["requant", "relu_req", "relu"][k % 3]
        out.append(Vec(walk, op, out_bits=int(rng.integers(4, 12)),
                       rounding="stochastic", seed=k, slot=slot_of(k), vote="close"))
    return out


def _run(be, program, bufs_or_ab, state, label):
    be.clear()
    be.write(PROG_BASE, program)
    st = be.run(400_000)
    assert st.ok, f"{label}: status {st.status:#x}"
    return st


def _compare_slots(be, state, label):
    got = [slot_fields(w) for w in _slots(be)]
    want = [tuple(s) for s in state["slots"].slots]
    bad = [k + 1 for k, (g, w) in enumerate(zip(got, want)) if g != w]
    assert not bad, (f"{label}: slot {bad[0]} RTL (shift, pending, gmax) "
                     f"{got[bad[0] - 1]}, model {want[bad[0] - 1]}")
    moved = be.read(REG_BASE + Reg.SLOT_MOVED, 1)[0]
    assert moved == state["slots"].moved, f"{label}: SLOT_MOVED {moved:#x} != model " \
        f"{state['slots'].moved:#x}"


def _vec_programs(be, rng, programs, label):
    """Run VEC programs one after the other (slots carry over); every buffer and every
    slot equal to the model after each."""
    bufs = load_buffers(be, rng, CFG, ROWS, shrink_every=2)
    state = {"slots": SlotFile(CFG)}
    init = [slot_word(int(rng.integers(0, 6)), int(rng.integers(-2, 3))) for _ in
            range(CFG.shift_slots)]
    _set_slots(be, init)
    state["slots"] = SlotFile(CFG, init)
    for i, vecs in enumerate(programs):
        prog = [w for v in vecs for w in v.encode()] + [HALT]
        _run(be, prog, None, state, label)
        run_program(CFG, prog, bufs["A"], bufs["B"], bufs["C"], state=state)
        bufs["A"], bufs["B"] = state["A"], state["B"]
        for name in BUFS:
            got = buffer_contents(be, CFG, name, ROWS)
            want = bufs[name][:ROWS]
            assert np.array_equal(got, want), f"{label} program {i} buffer {name}"
        _compare_slots(be, state, f"{label} program {i}")
    return state


def test_vec_votes_move_the_slots_like_the_model(pysim):
    rng = np.random.default_rng(3)
    # slots 1..3 voted by two VECs each per program, 5 programs: shifts move both ways
    programs = [_vecs(rng, lambda k: 1 + k % 3) for _ in range(5)]
    state = _vec_programs(pysim, rng, programs, "pysim")
    assert any(s[0] for s in state["slots"].slots[:3])
    # SLOT_MOVED names the slots whose shift moved; writing 1s clears those bits only
    moved = state["slots"].moved
    assert moved and not moved >> 3
    low = moved & -moved
    pysim.write(REG_BASE + Reg.SLOT_MOVED, [low])
    assert pysim.read(REG_BASE + Reg.SLOT_MOVED, 1)[0] == moved & ~low
    pysim.write(REG_BASE + Reg.SLOT_MOVED, [0xFFFFFFFF])
    assert pysim.read(REG_BASE + Reg.SLOT_MOVED, 1)[0] == 0


def test_contract_votes_and_gather_match_the_model(pysim):
    rng = np.random.default_rng(8)
    start = slot_word(2, 0)
    _set_slots(pysim, [start] * CFG.shift_slots)
    state = {"slots": SlotFile(CFG, [start] * CFG.shift_slots)}
    shifts = []
    for trial in range(5):
        cc, a, b = _contract_program(rng)
        # slot 2, one vote per program: gather, then close at the last CONTRACT
        slotted = cc.with_params(shift=0, rounding="stochastic", out_bits=16,
                                 seed=int(rng.integers(0, 1 << 32)), slot=2, vote="close")
        prog = slotted.program
        modes = [Contract.decode(prog[at + 1:at + 1 + n]).vote for at, n in _contracts(prog)]
        assert modes == [Vote.GATHER] * (len(modes) - 1) + [Vote.CLOSE]
        pysim.clear()
        pysim.write(0x100000, (cc.pack_a(a).reshape(-1) & 0xFFFF).tolist())
        pysim.write(0x200000, (cc.pack_b(b).reshape(-1) & 0xFFFF).tolist())
        pysim.write(PROG_BASE, prog)
        st = pysim.run(400_000)
        assert st.ok, hex(st.status)
        c = run_program(CFG, prog, cc.pack_a(a), cc.pack_b(b), state=state)
        assert np.array_equal(buffer_contents(pysim, CFG, "C", cc.c_rows),
                              c[:cc.c_rows]), f"trial {trial}: C differs"
        _compare_slots(pysim, state, f"contract trial {trial}")
        # the cycle count is that of the same program with its shift field
        assert st.counters["cycles"] == cc.predicted_cycles
        shifts.append(state["slots"].slots[1][0])
    assert shifts[-1] > 2       # saturated outputs voted the shift up


def test_gather_folds_instructions_into_one_vote(pysim):
    """Two VECs on one slot: gather then close votes on the larger of both; the
    same pair with both gathering leaves the shift and keeps the maximum."""
    rng = np.random.default_rng(5)
    load_buffers(pysim, rng, CFG, ROWS)
    v1 = Vec(Move("C", "A", 0, 0, (MoveLevel(8, 1, 1),)), "relu", slot=5, vote="gather")
    v2 = Vec(Move("B", "A", 0, 16, (MoveLevel(8, 1, 1),)), "relu", slot=5, vote="gather")
    _set_slots(pysim, [slot_word(3, 2, 0)] * CFG.shift_slots)
    pysim.clear()
    pysim.write(PROG_BASE, v1.encode() + v2.encode() + [HALT])
    assert pysim.run(100_000).ok
    log = pysim.read(REG_BASE + Reg.MAXLOG, 2)
    assert slot_fields(_slots(pysim)[4]) == (3, 2, max(log))
    # v3 reads small words: alone it would vote down
    pysim.write(buffer_base(0) + 400, [1, -2, 3, 0, 2, 1, 0, 3])
    v3 = Vec(Move("A", "C", 400, 0, (MoveLevel(8, 1, 1),)), "relu", out_bits=12, slot=5,
             vote="close")
    pysim.clear()
    pysim.write(PROG_BASE, v3.encode() + [HALT])
    assert pysim.run(100_000).ok
    m3 = pysim.read(REG_BASE + Reg.MAXLOG, 1)[0]
    # the vote is on the larger of the gathered maximum and v3's own
    v = vote(max(max(log), m3), 12, CFG.vote_up, CFG.vote_down)
    assert slot_fields(_slots(pysim)[4]) == (*advance(3, 2, v, CFG.vote_count,
                                                      CFG.acc_bits - 1), 0)
    assert vote(m3, 12, CFG.vote_up, CFG.vote_down) != v     # gmax decided it


def test_host_slot_writes_while_busy_are_dropped_and_recorded(pysim):
    _set_slots(pysim, [slot_word(7, 1, 9)] * CFG.shift_slots)
    long = Move("A", "B", 0, 0, (MoveLevel(200, 1, 1),))
    pysim.clear()
    pysim.write(PROG_BASE, long.encode() + [HALT])
    pysim.write_reg(Reg.CTRL, Ctrl.START)
    pysim.write(REG_BASE + Reg.SLOT, [slot_word(1, 0, 0)])
    pysim.run_until_idle(100_000)
    status = pysim.read_reg(Reg.STATUS)
    assert status & Status.BUS_WHILE_BUSY and (status >> 8) & 0xFF == ErrorCode.BUS_WHILE_BUSY
    assert slot_fields(_slots(pysim)[0]) == (7, 1, 9)
    pysim.clear()
    _set_slots(pysim, [slot_word(2, -2, 100)])
    assert slot_fields(_slots(pysim)[0]) == (2, -2, 100)


def _op_word(vec, **fields):
    words = vec.encode()
    for name, v in fields.items():
        f = VEC_FIELD[name]
        words[1 + f.word] = (words[1 + f.word] & ~(((1 << f.width) - 1) << f.lsb)) | \
            (v << f.lsb)
    return words


GOOD = Vec(Move("C", "A", 0, 0, (MoveLevel(4, 1, 1),)), "requant", slot=1, vote="close")


def _contracts(prog):
    """(word address, payload length) of every CONTRACT of ``prog``."""
    out, at = [], 0
    while decode_header(prog[at])[0] != Op.HALT:
        op, n = decode_header(prog[at])
        if op == Op.CONTRACT:
            out.append((at, n))
        at += 1 + n
    return out


def _mode(**fields):
    """A compiled program whose first CONTRACT's MODE word has ``fields`` forced."""
    prog = list(compile_contraction(SPEC, MK, KN, CFG, shift=0).program)
    w = _contracts(prog)[0][0] + 1 + CW.MODE
    for name, v in fields.items():
        f = FIELD[name]
        prog[w] = (prog[w] & ~(((1 << f.width) - 1) << f.lsb)) | (v << f.lsb)
    return prog


@pytest.mark.parametrize("words, slot_shift", [
    (_op_word(GOOD, vote=3), 0),                              # vote code 3
    (_op_word(GOOD, slot=0), 0),                              # a vote without a slot
    (_op_word(GOOD, slot=CFG.shift_slots + 1), 0),            # a slot tiny lacks
    (_op_word(GOOD, shift=2), 0),                             # a shift beside a slot
    (GOOD.encode(), 32),                                      # slot shift > VEC_SHIFT_MAX
    (_mode(slot=1, vote=3)[:-1], 0),                          # the same on a CONTRACT
    (_mode(vote=2)[:-1], 0),
    (_mode(slot=CFG.shift_slots + 1)[:-1], 0),
    (_mode(slot=1, shift=3)[:-1], 0),
    (_mode(slot=1)[:-1], 40),                                 # slot shift >= acc_bits
])
def test_refused_slot_fields_halt_and_write_nothing(pysim, words, slot_shift):
    rng = np.random.default_rng(1)
    bufs = load_buffers(pysim, rng, CFG, ROWS)
    _set_slots(pysim, [slot_word(slot_shift, 1, 0)] * CFG.shift_slots)
    pysim.clear()
    pysim.write(PROG_BASE, words + [HALT])
    st = pysim.run(100_000)
    assert st.status & Status.ERROR and (st.status >> 8) & 0xFF == ErrorCode.BAD_CONFIG
    for name in BUFS:
        assert np.array_equal(buffer_contents(pysim, CFG, name, ROWS), bufs[name][:ROWS])
    assert all(slot_fields(w) == (slot_shift, 1, 0) for w in _slots(pysim))
    with pytest.raises(ValueError):
        run_program(CFG, words + [HALT], bufs["A"], bufs["B"], bufs["C"],
                    state={"slots": SlotFile(CFG, [slot_word(slot_shift, 1, 0)] *
                                             CFG.shift_slots)})


@pytest.mark.parametrize("backend", ["verilator", "cxxrtl"])
def test_compiled_backends_agree(backend):
    rng = np.random.default_rng(17)
    programs = [_vecs(rng, lambda k: 1 + (k * 7) % CFG.shift_slots) for _ in range(4)]
    with get_backend(backend, CFG) as be:
        _vec_programs(be, rng, programs, backend)


def test_ice40_has_no_slots():
    cfg = get_config("ice40")
    assert cfg.shift_slots == 0
    with pytest.raises(ValueError, match="shift slot 1 out of range"):
        SlotFile(cfg).check(1, 0, 0)
