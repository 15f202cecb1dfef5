"""Host writes to a memory while a program runs follow one rule on every backend
(``sw_model/accel/hostmap.py``): dropped, STATUS bit 3 sticky, error code BUS_WHILE_BUSY, the
run goes on to DONE. The direct-memory path of pysim, CXXRTL and Verilator applied such
writes before (simulation and hardware disagreed)."""

import numpy as np
import pytest

from fetta.errors import FettaError
from fetta.sim.harness import Session
from fetta.sw_model.accel.hostmap import (BUSY_WRITE_HALTS, PROG_BASE, Ctrl, ErrorCode, Reg,
                                    Status, buffer_base)

from fault_backends import NAMES, clock, counters_add_up, gemm, golden, load_gemm, make_backend, read_c


@pytest.fixture(scope="module", params=NAMES)
def be(request):
    b = make_backend(request.param)
    yield b
    b.close()


def _wait_idle(be, polls=400):
    for _ in range(polls):
        status = be.read_reg(Reg.STATUS)
        if not status & Status.BUSY:
            return status
    raise AssertionError("still busy")


@pytest.mark.parametrize("target", ["a", "prog"])
def test_write_while_busy_is_dropped_and_reported(be, target):
    a, b = gemm(11)
    cc = load_gemm(be, a, b)
    addr = buffer_base(0) if target == "a" else PROG_BASE + len(cc.program) - 1
    before = be.read(addr, 4)
    be.write_reg(Reg.CTRL, Ctrl.START)
    clock(be, 5)
    assert be.read_reg(Reg.STATUS) & Status.BUSY
    be.write(addr, [0x1234, 0x2345, 0x3456, 0x4567])      # direct path if it could
    status = _wait_idle(be)
    assert not BUSY_WRITE_HALTS
    assert status & Status.BUS_WHILE_BUSY and status & Status.ERROR
    assert status & Status.DONE                     # the run was not halted
    assert (status >> 8) & 0xFF == ErrorCode.BUS_WHILE_BUSY
    assert be.read(addr, 4) == before                # the write never landed
    np.testing.assert_array_equal(read_c(be, cc), golden(a, b))
    assert counters_add_up(be.counters())
    # sticky until CLEAR; START clears the code, bit 3 stays
    st = be.run(100_000)
    assert st.ok and st.status & Status.BUS_WHILE_BUSY
    be.clear()
    assert be.read_reg(Reg.STATUS) & Status.BUS_WHILE_BUSY == 0


def test_clear_while_busy_is_ignored(be):
    a, b = gemm(12)
    load_gemm(be, a, b)
    be.write_reg(Reg.CTRL, Ctrl.START)
    clock(be, 100)
    be.clear()
    _wait_idle(be)
    c = be.counters()
    assert counters_add_up(c) and c["cycles"] > 100


def test_harness_reports_a_write_while_busy(be):
    """The harness never returns results of a run during which a host write was
    dropped."""
    s = Session(be.config, be)
    a, b = gemm(13)
    orig = be.run_until_idle

    def racing(max_cycles, start=0):      # a second host writes A while the program runs
        be.write_reg(Reg.CTRL, Ctrl.START)
        be.write(buffer_base(0), [7])
        return orig(max_cycles, start)

    be.run_until_idle = racing
    try:
        with pytest.raises(FettaError, match="BUS_WHILE_BUSY"):
            s.contract("mk,kn->mn", a, b)
    finally:
        del be.run_until_idle
    res = s.contract("mk,kn->mn", a, b)
    np.testing.assert_array_equal(res.output, golden(a, b))
