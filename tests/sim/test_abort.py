"""Ctrl.ABORT and timeouts: a run that does not finish is stopped, the accelerator is
idle again, and no result of it is ever returned (issue: a timed-out contraction made
the next one on the same Session return wrong numbers)."""

import numpy as np
import pytest

from fetta.errors import RunTimeout
from fetta.sim.harness import Session
from fetta.sw_model.accel.hostmap import Ctrl, ErrorCode, Reg, Status

from fault_backends import (NAMES, clock, counters_add_up, gemm, golden, load_gemm,
                             make_backend, read_c)


@pytest.fixture(scope="module", params=NAMES)
def be(request):
    b = make_backend(request.param)
    yield b
    b.close()


def test_timeout_then_next_contraction_is_right(be):
    """The regression: max_cycles too small, then a different contraction on the same
    Session must equal the golden model (it returned the stale run's numbers)."""
    s = Session(be.config, be)
    a, b = gemm(1, 8, 9, 8)
    with pytest.raises(RunTimeout, match="aborted"):
        s.contract("mk,kn->mn", a, b, max_cycles=40)
    assert be.read_reg(Reg.STATUS) & Status.BUSY == 0
    a2, b2 = gemm(2, 6, 5, 6)
    res = s.contract("mk,kn->mn", a2, b2)
    np.testing.assert_array_equal(res.output, golden(a2, b2))
    assert res.cycles == res.predicted_cycles


# cycles after START at which ABORT is written: fetch/decode, CONFIG load, CONTRACT
# load, bound check (cycles 42-74: the counts 1, 1, 1, 3, 5 take 33), issue (RUN),
# tail, after the end
ABORT_AT = (1, 3, 12, 30, 45, 60, 80, 100, 120)


@pytest.mark.parametrize("at", ABORT_AT)
def test_abort_at_any_cycle_returns_to_idle(be, at):
    a, b = gemm(3)
    cc = load_gemm(be, a, b)
    be.write_reg(Reg.CTRL, Ctrl.START)
    clock(be, at)
    be.abort()
    status = be.read_reg(Reg.STATUS)
    assert not status & Status.BUSY
    c = be.counters()
    assert counters_add_up(c), c
    if c["cycles"] < cc.predicted_cycles:       # stopped before the end
        assert (status >> 8) & 0xFF == ErrorCode.ABORTED and not status & Status.DONE
    # the next run is complete and right
    a2, b2 = gemm(4)
    cc2 = load_gemm(be, a2, b2)
    st = be.run(100_000)
    assert st.ok, hex(st.status)
    np.testing.assert_array_equal(read_c(be, cc2), golden(a2, b2))
    assert st.counters["cycles"] == cc2.predicted_cycles


def test_abort_while_idle_does_nothing(be):
    a, b = gemm(5)
    cc = load_gemm(be, a, b)
    st = be.run(100_000)
    assert st.ok
    be.write_reg(Reg.CTRL, Ctrl.ABORT)
    status = be.read_reg(Reg.STATUS)
    assert status & Status.DONE and not status & (Status.BUSY | Status.ERROR)
    np.testing.assert_array_equal(read_c(be, cc), golden(a, b))


def test_abort_wins_over_start_in_one_word(be):
    a, b = gemm(6)
    load_gemm(be, a, b)
    be.write_reg(Reg.CTRL, Ctrl.START | Ctrl.ABORT)
    clock(be, 4)
    assert not be.read_reg(Reg.STATUS) & Status.BUSY
