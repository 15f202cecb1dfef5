"""The XENT instruction (``sw_model/accel/xent.py``, ``rtl/xent_unit.py`` behind the MOVE
path): random XENTs on pysim, Verilator and CXXRTL equal the functional model in every
buffer word, in XENT_CORRECT, XENT_LOSS and CYCLES (``xent_cycles``); the model equals the
recipe's ``softmax_xent_grad`` and ``xent_loss_sum`` on a batch; refused XENTs halt with ``BAD_CONFIG`` and
write nothing."""

import numpy as np
import pytest

from fetta.sim.backends.base import get_backend
from fetta.sw_model.accel.config import get_config
from fetta.sw_model.accel.hostmap import (PROG_BASE, REG_BASE, UNIT_COUNTERS, ErrorCode, Reg,
                                          Status)
from fetta.sw_model.accel.isa import HALT
from fetta.sw_model.accel.move import BUFS, Move, MoveLevel, buffer_lanes
from fetta.sw_model.accel.timing import timing, vector_busy
from fetta.sw_model.accel.xent import XW, Xent, run_xent, xent_cycles
from fetta.sw_model.program.fabric_model import run_program
from fetta.sw_model.train.quant_train import softmax_xent_grad, xent_loss_sum

from move_buffers import assert_ab_equal, buffer_contents, load_buffers

CFG = get_config("tiny")
ROWS = 48


@pytest.fixture(scope="module")
def pysim():
    b = get_backend("pysim", CFG)
    yield b
    b.close()


def _random_xent(rng, rows=None):
    n = int(rng.choice([2, 3, 10, 16]))
    r = rows or int(rng.integers(1, 5))
    # logits in C (rows n apart or interleaved), gradients over one-hot targets in A
    src_row, dst_row = (n, 1) if rng.integers(2) else (1, r)
    mv = Move("C", "A", int(rng.integers(0, 40)), int(rng.integers(0, 40)),
              (MoveLevel(r, src_row, n), MoveLevel(n, r if src_row == 1 else 1, 1)))
    return Xent(mv, frac=int(rng.choice([1, 4, 9, 14])), bsz=int(rng.choice([2, 7, 64])),
                out_bits=int(rng.choice([16, 16, 8])), labels=bool(rng.integers(2)))


def _targets(bufs, rng, x):
    """Targets at the destination words of every row of ``x``: one-hot, or (labels)
    the label index in the row's first word (sometimes out of range) over junk."""
    _, d = x.move.addresses()
    lanes = buffer_lanes(CFG, x.move.dst)
    n = x.classes
    y = np.zeros(len(d), dtype=np.int64)
    for r in range(len(d) // n):
        if x.labels:
            y[r * n:(r + 1) * n] = rng.integers(-5, 20, n)
            y[r * n] = int(rng.integers(-1, n + 1))
        else:
            y[r * n + int(rng.integers(n))] = 1
    bufs[x.move.dst][d // lanes, d % lanes] = y


def _check(be, rng, xents, label):
    bufs = load_buffers(be, rng, CFG, ROWS, shrink_every=2)
    for x in xents:
        _targets(bufs, rng, x)
    for i, name in enumerate(BUFS):
        be.write(0x100000 * (1 + i), (bufs[name][:ROWS].reshape(-1) & 0xFFFF).tolist())
    prog = [w for x in xents for w in x.encode()] + [HALT]
    be.clear()
    be.write(PROG_BASE, prog)
    st = be.run(2_000_000)
    assert st.ok, hex(st.status)
    state = {}
    run_program(CFG, prog, bufs["A"], bufs["B"], bufs["C"], state=state)
    assert_ab_equal(be, CFG, state, ROWS, label)
    assert be.read(REG_BASE + Reg.XENT_CORRECT, 1)[0] == state["xent_correct"]
    lo, hi = be.read(REG_BASE + Reg.XENT_LOSS, 2)
    assert state["xent_loss"] > 0 and lo | hi << 32 == state["xent_loss"], label
    tm = timing(CFG)
    c = st.counters
    assert c["cycles"] == sum(xent_cycles(x.counts, tm.fetch) for x in xents) + tm.fetch
    assert c["cycles"] == (c["stall_config"] + c["stall_fill"] + c["mac_active_cycles"]
                           + c["stall_drain"] + c["move_cycles"] + c["vec_cycles"])
    # vector-busy cycles by operation: all of them the XENTs'
    busy = sum(x.busy_cycles for x in xents)
    unit = be.counters(UNIT_COUNTERS)
    assert (unit["xent_cycles"], unit["adam_cycles"], c["vec_cycles"]) == (busy, 0, busy), \
        label
    assert vector_busy(prog) == {"vec": 0, "xent": busy, "adam": 0}
    return state


def test_random_xents_equal_the_model_and_cycle_model(pysim):
    rng = np.random.default_rng(2)
    for trial in range(3):
        _check(pysim, rng, [_random_xent(rng) for _ in range(2)], f"pysim {trial}")


@pytest.mark.parametrize("backend", ["verilator", "cxxrtl"])
def test_compiled_backends_agree(backend):
    rng = np.random.default_rng(19)
    with get_backend(backend, CFG) as be:
        for trial in range(3):
            _check(be, rng, [_random_xent(rng) for _ in range(3)], f"{backend} {trial}")


def test_model_equals_the_recipe_on_a_batch():
    rng = np.random.default_rng(4)
    bsz, n, frac = 12, 10, 9
    z = rng.integers(-4000, 4000, (bsz, n))
    labels = rng.integers(0, n, bsz)
    bufs = {b: np.zeros((CFG.bank_depth, buffer_lanes(CFG, b)), np.int64) for b in BUFS}
    bufs["C"].reshape(-1)[:bsz * n] = z.reshape(-1)
    y = np.zeros((bsz, n), np.int64)
    y[np.arange(bsz), labels] = 1
    bufs["B"].reshape(-1)[:bsz * n] = y.reshape(-1)
    x = Xent(Move("C", "B", 0, 0, (MoveLevel(bsz, n, n), MoveLevel(n, 1, 1))), frac, bsz)
    _, ok, loss = run_xent(CFG, x, bufs)
    want, _ = softmax_xent_grad(z, frac, labels, n)
    assert loss == xent_loss_sum(z, frac, labels, n)
    assert np.array_equal(bufs["B"].reshape(-1)[:bsz * n].reshape(bsz, n), want)
    assert ok == int((z.argmax(1) == labels).sum())
    # the same with the label indices in each row's first destination word
    bufs["B"][:] = 0
    bufs["B"].reshape(-1)[:bsz * n:n] = labels
    _, ok2, loss2 = run_xent(CFG, Xent(x.move, frac, bsz, labels=True), bufs)
    assert np.array_equal(bufs["B"].reshape(-1)[:bsz * n].reshape(bsz, n), want)
    assert (ok2, loss2) == (ok, loss)


GOOD = Xent(Move("C", "A", 0, 0, (MoveLevel(2, 4, 4), MoveLevel(4, 1, 1))), 8, 2)


def _word(x, w, value):
    words = x.encode()
    words[1 + w] = value
    return words


@pytest.mark.parametrize("words", [
    _word(GOOD, XW.OP, GOOD.encode()[1 + XW.OP] | 1),            # an op field set
    _word(GOOD, XW.PARAM, (6 & 0x3F) | (1 << 16)),                 # bsz 1
    _word(GOOD, XW.PARAM, (6 & 0x3F) | (8193 << 16)),              # bsz above 8192
    _word(GOOD, XW.PARAM, (-8 & 0x3F) | (2 << 16)),                # s below -7
    _word(GOOD, XW.PARAM, GOOD.encode()[1 + XW.PARAM] | 1 << 31),  # reserved bit
    _word(GOOD, XW.RESERVED, 5),
    Xent(Move("C", "A", 0, 0, (MoveLevel(2, 1, 1),)), 8, 2).encode()[:1] +
    Move("C", "A", 0, 0, (MoveLevel(2, 17, 17), MoveLevel(17, 1, 1))).encode()[1:] +
    GOOD.encode()[-3:],                                            # 17 classes
])
def test_refused_xent_halts_and_writes_nothing(pysim, words):
    rng = np.random.default_rng(1)
    bufs = load_buffers(pysim, rng, CFG, ROWS)
    pysim.clear()
    pysim.write(PROG_BASE, words + [HALT])
    st = pysim.run(100_000)
    assert st.status & Status.ERROR and (st.status >> 8) & 0xFF == ErrorCode.BAD_CONFIG
    for name in BUFS:
        assert np.array_equal(buffer_contents(pysim, CFG, name, ROWS), bufs[name][:ROWS])
    with pytest.raises(ValueError):
        run_program(CFG, words + [HALT], bufs["A"], bufs["B"], bufs["C"])
