"""Formal checks (``rtl/controller_props.py``) through the pip-only flow
(``sim/formal.py``: YoWASP yosys + yosys-smtbmc + Yices from PyPI).

Default tier: the flow finds a planted violation (so a PASS means something) and the
controller's properties hold to depth 6 (a short BMC; yosys preparing the model
dominates). Slow tier: the controller's properties to depth 20 (every path of the first 20 cycles
after reset: fetch/decode errors, a CONTRACT's payload loading, abort at any of those
cycles; 153 s on a loaded machine, depth 40 did not finish in 25 minutes) and the host-write gate of the whole
top by induction (for all time)."""

import pytest
from amaranth import Elaboratable, Module, Signal
from amaranth.hdl import Assert

from fetta.rtl.controller_props import ControllerProps, HostGateProps
from fetta.sim.formal import cover, prove


class _Broken(Elaboratable):
    """A counter asserted to stay below 3: false from cycle 3 on."""

    def __init__(self):
        self.en = Signal()

    def ports(self):
        return [self.en]

    def elaborate(self, platform):
        m = Module()
        c = Signal(4)
        with m.If(self.en):
            m.d.sync += c.eq(c + 1)
        m.d.comb += Assert(c < 3)
        return m


def test_flow_finds_a_violation(tmp_path):
    assert prove(_Broken(), depth=2, workdir=tmp_path / "short").passed   # c <= 2 holds
    bad = prove(_Broken(), depth=5, workdir=tmp_path / "long")
    assert not bad.passed and "FAILED" in bad.log, bad.summary()


def test_controller_properties_short_bmc(tmp_path):
    r = prove(ControllerProps("tiny"), depth=6, workdir=tmp_path)
    assert r.passed, r.summary()


@pytest.mark.slow
def test_controller_properties_bmc_depth_20(tmp_path):
    """Slow: BMC to depth 20 (minutes)."""
    r = prove(ControllerProps("tiny"), depth=20, workdir=tmp_path)
    assert r.passed, r.summary()


@pytest.mark.slow
def test_controller_covers(tmp_path):
    """Slow: the covers (an error halt, an abort that completes) are reachable."""
    r = cover(ControllerProps("tiny"), depth=30, workdir=tmp_path)   # abort + 22-cycle tail
    assert r.passed, r.summary()


@pytest.mark.slow
def test_host_write_gate_induction(tmp_path):
    """Slow: the whole top elaborated for the solver (minutes)."""
    r = prove(HostGateProps("tiny"), depth=1, mode="induction", workdir=tmp_path)
    assert r.passed, r.summary()


def test_props_controller_is_the_tops():
    """The controller under proof has the top's timing (tail, operand latency)."""
    from fetta.rtl.top import Accelerator
    p, top = ControllerProps("tiny"), Accelerator("tiny")
    assert (p.ctl.tail_cycles, p.dist_latency) == (top.controller.tail_cycles,
                                                  top.fabric.dist_latency)
    assert p.ctl.n_config == top.controller.n_config
