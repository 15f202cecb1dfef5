"""The ADAM instruction (``sw_model/accel/adam.py``, ``rtl/adam_unit.py`` behind the MOVE
path): random ADAMs on pysim, Verilator and CXXRTL equal the functional model in every
buffer word, in every state memory word and in CYCLES (``adam_cycles``); the model
equals the recipe's ``FixedAdam`` over several steps; refused ADAMs halt with
``BAD_CONFIG`` or ``ADDRESS_RANGE`` and write nothing; the state memory is host memory
while idle (a write during a run is dropped and recorded)."""

import numpy as np
import pytest

from fetta.sim.backends.base import get_backend
from fetta.sw_model.accel.adam import ADAM_FIELD, AW, Adam, AdamState, run_adam
from fetta.sw_model.accel.config import get_config
from fetta.sw_model.accel.hostmap import (ADAM_BASE, PROG_BASE, REG_BASE, UNIT_COUNTERS,
                                          ErrorCode, Reg, Status)
from fetta.sw_model.accel.isa import HALT
from fetta.sw_model.accel.move import BUFS, Move, MoveLevel, buffer_lanes
from fetta.sw_model.accel.timing import timing, vector_busy
from fetta.sw_model.accel.vec import Vec
from fetta.sw_model.program.fabric_model import run_program
from fetta.sw_model.train.quant_train import FixedAdam

from move_buffers import assert_ab_equal, buffer_contents, load_buffers

CFG = get_config("tiny")
ROWS = 48
ENTRIES = 160           # state entries the tests use (of CFG.adam_entries)


@pytest.fixture(scope="module")
def pysim():
    b = get_backend("pysim", CFG)
    yield b
    b.close()


def _random_state(rng, n):
    st = AdamState(CFG)
    m = rng.integers(-(1 << 31), 1 << 31, n)
    m[::7] = rng.choice([-(1 << 31), (1 << 31) - 1, 0], len(m[::7]))
    v = rng.integers(0, 1 << 32, n)
    v[::5] = rng.choice([0, (1 << 32) - 1, 1], len(v[::5]))
    v[1::3] >>= rng.integers(0, 32, len(v[1::3]))
    m[2::3] >>= rng.integers(0, 31, len(m[2::3]))
    st.m[:n], st.v[:n] = m, v
    st.w[:n] = rng.integers(-(1 << 15), 1 << 15, n)
    return st


def write_state(be, st, n):
    words = np.zeros((n, 4), np.int64)
    words[:, 0], words[:, 1], words[:, 2] = st.m[:n], st.v[:n], st.w[:n]
    be.write(ADAM_BASE, (words.reshape(-1) & 0xFFFFFFFF).tolist())


def read_state(be, n):
    words = np.array(be.read(ADAM_BASE, 4 * n), np.int64).reshape(n, 4)
    m = ((words[:, 0] + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)
    w = ((words[:, 2] + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)
    return m, words[:, 1], w, words[:, 3]


def _random_adam(rng, base):
    """An ADAM over a few elements: gradients in C, weights out to A or B; sometimes a
    bias-style reduction over the innermost level."""
    reduce = bool(rng.integers(2))
    n = int(rng.integers(1, 6))
    r = int(rng.integers(1, 5)) if reduce else 1
    src0, dst0 = int(rng.integers(0, 60)), int(rng.integers(0, 60))
    if reduce:
        levels = (MoveLevel(n, r, 1), MoveLevel(r, 1, 0))
    else:
        levels = (MoveLevel(n, int(rng.choice([1, 3])), int(rng.choice([1, 2]))),)
    mv = Move("C", str(rng.choice(["A", "B"])), src0, dst0, levels)
    w_bits = int(rng.choice([8, 16, 5]))
    return Adam(mv, state_base=base, lr=int(rng.choice([rng.integers(0, 1 << 32),
                                                         rng.integers(0, 1 << 22)])),
                seed0=int(rng.integers(0, 1 << 32)), seed1=int(rng.integers(0, 1 << 32)),
                step_shift=int(rng.choice([39, 34, 0, 5, 33, 62, rng.integers(0, 63)])),
                gshift=int(rng.integers(-31, 32)), w_bits=w_bits,
                out_shift=int(rng.choice([0, 4, 15, -15, -3, rng.integers(-15, 16)])),
                out_bits=int(rng.choice([4, 16, 2])), reduce=reduce,
                load=bool(rng.integers(4) == 0), nowrite=bool(rng.integers(4) == 0), b1=int(rng.choice([1677722, 0, 1 << 24, rng.integers(0, 1 << 24)])),
                b2=int(rng.choice([16777, 1 << 24, rng.integers(0, 1 << 24)])),
                index_base=int(rng.integers(0, 1 << 32)))


def _check(be, rng, adams, label):
    """The ADAMs, then a VEC (the max log must hold only the VEC's largest word: an
    ADAM logs nothing), on the backend and the model."""
    bufs = load_buffers(be, rng, CFG, ROWS, shrink_every=2)
    st = _random_state(rng, ENTRIES)
    write_state(be, st, ENTRIES)
    small = Vec(Move("C", "B", 2 * CFG.c_lanes, 40 * CFG.b_lanes,
                     (MoveLevel(CFG.c_lanes, 1, 1),)), "relu")    # a row of small words
    prog = [w for x in adams for w in x.encode()] + small.encode() + [HALT]
    be.clear()
    be.write(PROG_BASE, prog)
    s = be.run(2_000_000)
    assert s.ok, hex(s.status)
    state = {"adam": st}
    run_program(CFG, prog, bufs["A"], bufs["B"], bufs["C"], state=state)
    assert_ab_equal(be, CFG, state, ROWS, label)
    assert be.read(REG_BASE + Reg.MAXLOG_COUNT, 1)[0] == len(state["maxlog"]) == 1
    assert be.read(REG_BASE + Reg.MAXLOG, 1)[0] == state["maxlog"][0], label
    m, v, w, zero = read_state(be, ENTRIES)
    for key, got, want in (("m", m, st.m), ("v", v, st.v), ("w", w, st.w)):
        bad = np.flatnonzero(got != want[:ENTRIES])
        assert not len(bad), (f"{label} state {key}[{bad[0]}]: RTL {got[bad[0]]}, model "
                              f"{want[bad[0]]}")
    assert not zero.any()
    tm = timing(CFG)
    c = s.counters
    assert c["cycles"] == sum(x.cycles(tm.fetch) for x in adams) + tm.fetch + \
        tm.vec_cycles(small.counts, small.op)
    assert c["cycles"] == (c["stall_config"] + c["stall_fill"] + c["mac_active_cycles"]
                           + c["stall_drain"] + c["move_cycles"] + c["vec_cycles"])
    # vector-busy cycles by operation: the ADAMs' elements, the VEC's, no XENT
    busy = vector_busy(prog)
    assert busy["adam"] == sum(x.busy_cycles for x in adams) > 0
    unit = be.counters(UNIT_COUNTERS)
    assert (unit["adam_cycles"], unit["xent_cycles"]) == (busy["adam"], 0), label
    assert c["vec_cycles"] == busy["adam"] + busy["vec"] == busy["adam"] + small.elements


def _adams(rng, count):
    out, base = [], 0
    for _ in range(count):
        x = _random_adam(rng, base)
        out.append(x)
        base += x.elements
    return out


def test_random_adams_equal_the_model_and_cycle_model(pysim):
    rng = np.random.default_rng(3)
    for trial in range(5):
        _check(pysim, rng, _adams(rng, 4), f"pysim {trial}")


@pytest.mark.parametrize("backend", ["verilator", "cxxrtl"])
def test_compiled_backends_agree(backend):
    rng = np.random.default_rng(23)
    with get_backend(backend, CFG) as be:
        for trial in range(4):
            _check(be, rng, _adams(rng, 6), f"{backend} {trial}")


def test_model_equals_the_recipe_over_steps():
    """Three steps of FixedAdam on a core tensor and a bias (its gradient the sum over
    a batch) against ADAMs on the model's buffers and state."""
    rng = np.random.default_rng(5)
    opt = FixedAdam(0.01)
    shapes = [(4, 6), (6,)]
    opt.init(shapes)
    w0 = [rng.integers(-128, 128, s) for s in shapes]
    st = AdamState(CFG)
    st.w[:24], st.w[24:30] = w0[0].reshape(-1), w0[1]
    want = [x.copy() for x in w0]
    bufs = {b: np.zeros((CFG.bank_depth, buffer_lanes(CFG, b)), np.int64) for b in BUFS}
    for step in range(3):
        opt.tick()
        g = rng.integers(-3000, 3000, (4, 6))
        db = rng.integers(-3000, 3000, (5, 6))          # batch 5: the bias gradient sums
        seeds = [(int(rng.integers(0, 1 << 32)), int(rng.integers(0, 1 << 32)))
                 for _ in range(2)]
        want[0] = opt.update(0, want[0], 7, 8, g, 20, seeds[0])
        want[1] = opt.update(1, want[1], 12, 16, db.sum(0), 18, seeds[1])
        bufs["C"].reshape(-1)[:24] = g.reshape(-1)
        bufs["C"].reshape(-1)[32:62] = db.reshape(-1)
        core = Adam(Move("C", "A", 0, 0, (MoveLevel(24, 1, 1),)), state_base=0,
                    lr=opt.lr_q(), seed0=seeds[0][0], seed1=seeds[0][1], step_shift=46 - 7,
                    gshift=opt.fm[0] - 20, w_bits=8, out_shift=4, out_bits=4)
        bias = Adam(Move("C", "B", 32, 0, (MoveLevel(6, 1, 1), MoveLevel(5, 6, 0))),
                    state_base=24, lr=opt.lr_q(), seed0=seeds[1][0], seed1=seeds[1][1],
                    step_shift=46 - 12, gshift=opt.fm[1] - 18, w_bits=16, reduce=True)
        run_adam(CFG, core, bufs, st)
        run_adam(CFG, bias, bufs, st)
        # a load writes the weights laid out again, changing nothing
        before = (st.m.copy(), st.v.copy(), st.w.copy())
        run_adam(CFG, Adam(Move("C", "B", 0, 100, (MoveLevel(24, 0, 1),)), state_base=0,
                           lr=opt.lr_q(), seed0=1, seed1=2, step_shift=39, out_shift=4,
                           out_bits=4, load=True), bufs, st)
        assert all(np.array_equal(a, b) for a, b in zip(before, (st.m, st.v, st.w)))
        assert np.array_equal(bufs["B"].reshape(-1)[100:124],
                              bufs["A"].reshape(-1)[:24])
        assert np.array_equal(st.w[:24], want[0].reshape(-1)), step
        assert np.array_equal(st.w[24:30], want[1]), step
        assert np.array_equal(st.m[:24], opt.m[0].reshape(-1))
        assert np.array_equal(st.v[24:30], opt.v[1])
        # the destination: the contraction's 4-bit weights, the bias master codes
        from fetta.sw_model.train.quant_train import FixedRecipe, weights_for_contraction
        assert np.array_equal(bufs["A"].reshape(-1)[:24],
                              weights_for_contraction(want[0], FixedRecipe(), "fixed")
                              .reshape(-1))
        assert np.array_equal(bufs["B"].reshape(-1)[:6], want[1])


GOOD = Adam(Move("C", "A", 0, 0, (MoveLevel(4, 1, 1),)), state_base=0, lr=1 << 20,
            seed0=1, seed1=2, step_shift=39)


def _word(x, w, value):
    words = x.encode()
    words[1 + w] = value
    return words


def _op(**fields):
    word = GOOD.encode()[1 + AW.OP]
    for name, v in fields.items():
        f = ADAM_FIELD[name]
        word = (word & ~(((1 << f.width) - 1) << f.lsb)) | ((v & ((1 << f.width) - 1))
                                                            << f.lsb)
    return _word(GOOD, AW.OP, word)


@pytest.mark.parametrize("words,code", [
    (_op(out_bits=1), ErrorCode.BAD_CONFIG),
    (_op(out_shift=-16), ErrorCode.BAD_CONFIG),
    (_op(out_bits=17), ErrorCode.BAD_CONFIG),
    (_op(w_bits=1), ErrorCode.BAD_CONFIG),
    (_op(step_shift=63), ErrorCode.BAD_CONFIG),
    (_op(slot=CFG.shift_slots + 1), ErrorCode.BAD_CONFIG),
    (_word(GOOD, AW.OP, GOOD.encode()[1 + AW.OP] | 1 << 13), ErrorCode.BAD_CONFIG),  # reserved
    (_word(GOOD, AW.PARAM, 0x40), ErrorCode.BAD_CONFIG),                 # gshift -64
    (_word(GOOD, AW.PARAM, 1 << 8), ErrorCode.BAD_CONFIG),               # reserved
    (_word(GOOD, AW.B1, (1 << 24) + 1), ErrorCode.BAD_CONFIG),
    (_word(GOOD, AW.B2, 1 << 25), ErrorCode.BAD_CONFIG),
    (_word(GOOD, AW.PARAM, (CFG.adam_entries - 3) << 16), ErrorCode.ADDRESS_RANGE),
    (Adam(Move("C", "A", 0, CFG.a_lanes * CFG.bank_depth - 2, (MoveLevel(4, 1, 1),)),
          state_base=0, lr=1, seed0=1, seed1=2, step_shift=39).encode(),
     ErrorCode.ADDRESS_RANGE),
    (GOOD.encode()[:1] + [GOOD.encode()[1] | 0x8] + GOOD.encode()[2:],
     ErrorCode.BAD_CONFIG),                                          # C -> C: one buffer
])
def test_refused_adam_halts_and_changes_nothing(pysim, words, code):
    rng = np.random.default_rng(1)
    bufs = load_buffers(pysim, rng, CFG, ROWS)
    st = _random_state(rng, 8)
    write_state(pysim, st, 8)
    with pytest.raises(ValueError):          # the model refuses it too
        run_program(CFG, words + [HALT], bufs["A"], bufs["B"], bufs["C"],
                    state={"adam": _random_state(rng, 8)})
    pysim.clear()
    pysim.write(PROG_BASE, words + [HALT])
    s = pysim.run(100_000)
    assert s.status & Status.ERROR and (s.status >> 8) & 0xFF == code
    for name in BUFS:
        assert np.array_equal(buffer_contents(pysim, CFG, name, ROWS), bufs[name][:ROWS])
    m, v, w, _ = read_state(pysim, 8)
    assert np.array_equal(m, st.m[:8]) and np.array_equal(v, st.v[:8])
    assert np.array_equal(w, st.w[:8])


def test_state_writes_during_a_run_are_dropped(pysim):
    rng = np.random.default_rng(8)
    load_buffers(pysim, rng, CFG, ROWS)
    st = _random_state(rng, 8)
    write_state(pysim, st, 8)
    pysim.clear()
    pysim.write(PROG_BASE, GOOD.encode() + [HALT])
    pysim.write_reg(Reg.CTRL, 1)
    pysim.write(ADAM_BASE + 4 * 7 + 2, [1234])     # entry 7 (not the ADAM's) while busy
    pysim.run_until_idle(100_000)
    status = pysim.read_reg(Reg.STATUS)
    assert status & Status.BUS_WHILE_BUSY
    assert (status >> 8) & 0xFF == ErrorCode.BUS_WHILE_BUSY
    assert read_state(pysim, 8)[2][7] == st.w[7] != 1234


def test_adam_is_an_illegal_opcode_without_the_unit():
    cfg = CFG.replace(name="tiny-noadam", adam_entries=0)
    with get_backend("pysim", cfg) as b:
        b.write(PROG_BASE, GOOD.encode() + [HALT])
        st = b.run(10_000)
        assert (st.status >> 8) & 0xFF == ErrorCode.ILLEGAL_OPCODE
    with pytest.raises(ValueError, match="illegal opcode"):
        run_program(cfg, GOOD.encode() + [HALT], np.zeros((1, cfg.a_lanes)),
                    np.zeros((1, cfg.b_lanes)))
