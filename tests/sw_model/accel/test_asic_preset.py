"""The ASIC-class preset: geometry, and which evaluated steps fit its buffers in one
program per contraction. Its RTL running a step is tests/sim/test_asic_step.py."""

import math

import pytest

from fetta.sw_model.accel.config import get_config
from fetta.sw_model.ttm.step_events import step_events
from fetta.sw_model.ttm.workloads import WORKLOADS, get_workload


def test_asic_preset_geometry():
    cfg = get_config("asic")
    assert cfg.macs == 1024 and max(cfg.a_lanes, cfg.b_lanes, cfg.c_lanes) == 64
    st = step_events(get_workload("digits"), cfg, 64)
    assert st["total"].chunks == st["total"].contractions     # every one in one program
    assert math.isclose(st["total"].array_mac_ops, st["total"].mac_active_cycles * 1024)


@pytest.mark.slow
def test_asic_preset_holds_every_step_but_comeras():
    """Slow: the cycle-cost plan search of six workloads on 1,024 MACs (~2 min)."""
    cfg = get_config("asic")
    for name, wl in WORKLOADS.items():
        tot = step_events(wl, cfg, 64)["total"]
        assert (tot.chunks == tot.contractions) == (name != "comera"), name
