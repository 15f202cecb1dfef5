"""The one clock table: ``measured.preset_clock`` (stored synthesis summaries for FPGA
presets, the stated ASIC clock otherwise), read by training and evaluation."""

import json

import pytest

from fetta.sw_model.accel import measured
from fetta.sw_model.accel.config import PRESETS
from fetta.sw_model.accel.energy import ASIC_TECH


def test_fpga_preset_runs_at_its_stored_fmax():
    for name in measured.measured_presets():
        raw = json.loads((measured.resources.files("fetta.sw_model.accel") / "synth_reports"
                          / f"{name}.json").read_text())
        mhz, src = measured.preset_clock(PRESETS[name])
        assert mhz == raw["fmax_mhz"]["sync"] and f"--config {name}" in src


def test_presets_without_device_use_the_stated_asic_clock():
    for name, cfg in PRESETS.items():
        if cfg.device is None:
            assert measured.preset_clock(cfg) == (
                float(ASIC_TECH["clock_mhz"]),
                "stated ASIC clock (sw_model/accel/energy.py asic_clock_mhz)"), name


def test_fpga_preset_without_report_names_the_command():
    cfg = PRESETS["ice40"].replace(name="ice40-unmeasured")
    with pytest.raises(ValueError, match="no measured synthesis report for preset "
                                         "'ice40-unmeasured'.*fetta synth"):
        measured.preset_clock(cfg)


def test_training_and_evaluation_read_the_same_clock():
    from fetta.sim.evaluation import preset_clock as eval_clock
    from fetta.sim.rtl_training import clock_for
    for name in ["tiny", "asic", *measured.measured_presets()]:
        cfg = PRESETS[name]
        assert clock_for(cfg, None) == eval_clock(cfg)[0] == measured.preset_clock(cfg)[0]
    assert clock_for(PRESETS["tiny"], 75) == 75.0
