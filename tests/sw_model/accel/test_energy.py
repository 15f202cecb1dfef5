"""The energy model: published anchor points, scaling laws, linearity in the event
counts, the FPGA model's static/dynamic split, and docs/energy.md in sync."""

import math
import subprocess
import sys
from pathlib import Path

import pytest

from fetta.sw_model.accel.config import get_config
from fetta.sw_model.accel.energy import (COEFFICIENTS, add_pj, asic_energy, coeff, fpga_energy,
                                   markdown_table, mul_pj, sram_pj)
from fetta.sw_model.ttm.step_events import Events

ROOT = Path(__file__).resolve().parents[3]


def test_published_points_are_reproduced():
    assert add_pj(8) == pytest.approx(0.03) and add_pj(32) == pytest.approx(0.1)
    assert mul_pj(8) == pytest.approx(0.2) and mul_pj(32) == pytest.approx(3.1)
    assert sram_pj(8192, 64) == pytest.approx(10) and sram_pj(1 << 20, 64) == \
        pytest.approx(100)
    assert sram_pj(32768, 64) == pytest.approx(20, rel=0.05)     # third published point
    assert add_pj(8) < add_pj(16) < add_pj(32)
    assert 3.5 < mul_pj(16) / mul_pj(8) < 4.1                  # ~ width squared


def test_every_coefficient_has_a_source():
    keys = [c.key for c in COEFFICIENTS]
    assert len(keys) == len(set(keys))
    for c in COEFFICIENTS:
        assert c.source and c.what and c.value > 0


def _ev(**kw):
    return Events(**kw).to_dict()


def test_asic_energy_is_linear_in_events():
    cfg = get_config("large")
    one = asic_energy(_ev(cycles=10, array_mac_ops=1024, a_reads=64, b_reads=64,
                          c_writes=64, dist_switch_ops=100, red_switch_ops=50,
                          output_ops=64, host_written=5, host_read=7), cfg, 11)
    two = asic_energy(_ev(cycles=20, array_mac_ops=2048, a_reads=128, b_reads=128,
                          c_writes=128, dist_switch_ops=200, red_switch_ops=100,
                          output_ops=128, host_written=10, host_read=14), cfg, 22)
    for k in one:
        assert two[k] == pytest.approx(2 * one[k])
    assert one["mac"] == pytest.approx(1024 * (mul_pj(16) + add_pj(32)))
    assert one["host_transfer"] == pytest.approx(12 * coeff("dram64") / 2)
    assert asic_energy(_ev(), cfg)["total"] == 0


def test_shift_macs_cost_less_than_multipliers():
    mult = get_config("tiny")
    shift = mult.replace(mac_kind="shift")
    ev = _ev(array_mac_ops=1000)
    assert asic_energy(ev, shift)["mac"] < asic_energy(ev, mult)["mac"]


def test_fpga_energy_static_scales_with_time():
    cfg = get_config("ecp5")
    res = {"LUTs": 20000, "FFs": 14000, "DSPs": 64, "BRAMs": 39}
    ev = _ev(cycles=1000, mac_active_cycles=900, a_reads=900 * 16, b_reads=900 * 8)
    e1 = fpga_energy(ev, cfg, 50.0, res, 1000)
    e2 = fpga_energy(ev, cfg, 50.0, res, 2000)        # same work, twice the time
    assert e2["static"] == pytest.approx(2 * e1["static"])
    assert e1["static"] == pytest.approx(coeff("fpga_static_w") * 1000 / 50e6 * 1e12)
    assert e2["dsp"] == e1["dsp"] == 900 * 64 * coeff("fpga_dsp_pj")
    assert e1["average_power_w"] > coeff("fpga_static_w")


def test_docs_energy_md_is_generated():
    assert (ROOT / "docs" / "energy.md").read_text() == markdown_table()
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "gen_docs.py"), "--check", "energy"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
