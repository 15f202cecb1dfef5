"""`fetta eval`: the JSON's numbers are consistent with each other and with the step's
event counts, the CPU baseline is measured, the table and plot are written, and bad
input is one line on stderr with exit code 2."""

import json
import subprocess
import sys

import pytest

from fetta.sim.cli import main
from fetta.sim.evaluation import markdown
from fetta.sw_model.accel.config import get_config
from fetta.sw_model.ttm.resident_step import resident_step_events
from fetta.sw_model.ttm.step_events import step_events
from fetta.sw_model.ttm.workloads import get_workload


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    d = tmp_path_factory.mktemp("eval")
    js, png = d / "e.json", d / "e.png"
    assert main(["eval", "--workloads", "digits", "--presets", "tiny,asic",
                 "--confirm", "none", "--cpu-steps", "2", "--json", str(js),
                 "--png", str(png)]) == 0
    assert png.stat().st_size > 10_000
    return json.loads(js.read_text())


def test_rows_follow_from_the_event_counts(result):
    rows = {r["preset"]: r for r in result["rows"] if r["dataflow"] == "separate"}
    assert set(rows) == {"tiny", "asic"}
    r = rows["tiny"]
    st = step_events(get_workload("digits"), get_config("tiny"), 64)
    assert r["compute_cycles"] == st["total"].cycles
    assert r["cycles"]["host_transfer"] == st["total"].host_words
    c = r["cycles"]
    assert c["total"] == (c["forward"] + c["input_gradient"] + c["core_gradients"] +
                          c["host_transfer"] + c["elementwise_estimate"])
    assert r["latency_s"] == pytest.approx(c["total"] / (r["clock_mhz"] * 1e6))
    assert r["samples_per_s"] == pytest.approx(64 / r["latency_s"])
    assert r["energy_model"] == rows["asic"]["energy_model"] == "asic"
    assert r["joules_per_sample"] == pytest.approx(r["energy_pj"]["total"] * 1e-12 / 64)
    assert r["edp_js"] == pytest.approx(r["joules_per_step"] * r["latency_s"])
    cpu = result["cpu"]["digits"]["one_core"]
    assert cpu["threads"] == 1 and cpu["samples_per_s"] > 0
    assert r["ratios"]["speedup_vs_one_core"] == pytest.approx(
        r["samples_per_s"] / cpu["samples_per_s"])
    assert r["ratios"]["energy_vs_one_core"] == pytest.approx(
        cpu["joules_per_sample"] / r["joules_per_sample"])


def test_resident_rows_follow_from_the_resident_step(result, tmp_path):
    """Each preset with the MOVE unit has a resident row: its cycles, host words and
    MOVEs are ``resident_step_events``'s, and the README table shows it beside the
    separate jobs' host words."""
    res = {r["preset"]: r for r in result["rows"] if r["dataflow"] == "resident"}
    sep = {r["preset"]: r for r in result["rows"] if r["dataflow"] == "separate"}
    assert set(res) == {"tiny", "asic"}
    for name, r in res.items():
        st = resident_step_events(get_workload("digits"), get_config(name), 64)
        c = r["cycles"]
        assert r["compute_cycles"] == st["total"].cycles
        assert c["on_chip_moves"] == st["total"].move_cycles > 0
        assert c["host_transfer"] == st["total"].host_words
        assert c["host_transfer"] < sep[name]["cycles"]["host_transfer"]
        assert c["total"] == (c["forward"] + c["input_gradient"] + c["core_gradients"] +
                              c["on_chip_moves"] + c["host_transfer"] +
                              c["elementwise_estimate"])
        assert r["events"]["move_elements"] == st["total"].move_elements
        assert r["samples_per_s"] == pytest.approx(64 / r["latency_s"])
    staged = {r["preset"]: r for r in result["rows"] if r["dataflow"] == "staged"}
    assert set(staged) == {"tiny", "asic"}
    st = resident_step_events(get_workload("digits"), get_config("asic"), 64, stage=True)
    assert staged["asic"]["cycles"]["host_transfer"] == st["total"].host_words < \
        res["asic"]["cycles"]["host_transfer"]
    table = markdown(result)
    assert any(ln.startswith("| digits | asic | staged | ") for ln in table.splitlines())
    line = next(ln for ln in table.splitlines()
                if ln.startswith("| digits | asic | resident | "))
    assert f"{sep['asic']['cycles']['host_transfer']:,} -> " \
        f"{res['asic']['cycles']['host_transfer']:,}" in line


def test_memory_and_reported_ratios(result):
    m = result["memory"]
    assert m["paper_reported"] == 292
    assert m["reduction_weights"] > m["reduction_weights_and_master"] > m["reduction_total"]
    assert result["reported"]["fetta_vs_gpu"]["latency"] == 20.5


@pytest.mark.parametrize("argv,msg", [
    (["--workloads", "digits,nope"], "workload 'nope' unknown; allowed digits"),
    (["--presets", "huge"], "preset 'huge' unknown; allowed tiny"),
    (["--batch", "0"], "--batch 0 out of range; allowed 1..4096"),
])
def test_bad_input_is_one_line_exit_2(argv, msg):
    r = subprocess.run([sys.executable, "-m", "fetta.sim.cli", "eval", *argv],
                       capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and msg in r.stderr, r.stderr


def test_goals_table_follows_the_ratios(result):
    """The goals table lists every asic row of digits with its ratios and says 'met'
    only when both goals are reached."""
    from fetta.sim.evaluation import TARGETS
    table = markdown(result).split("Goals (")[1]
    gs, ge = TARGETS["asic"]
    for r in (r for r in result["rows"] if r["preset"] == "asic"):
        ra = r["ratios"]
        line = next(ln for ln in table.splitlines()
                    if ln.startswith(f"| digits | asic | {r['dataflow']} | "))
        cells = [c.strip() for c in line.strip(" |").split("|")]
        assert cells[3] == f"{ra['speedup_vs_one_core']:.2f}x"
        met = ra["speedup_vs_one_core"] >= gs and ra["energy_vs_one_core"] >= ge
        assert (cells[5] == "met") == met and (met or cells[5].startswith("missed: "))
        # against PyTorch on one core when it ran (torch installed), '-' otherwise
        vt = ra.get("speedup_vs_torch_one_core")
        assert cells[6] == ("-" if vt is None else f"{vt:.2f}x")
        assert (vt is None) == (result["machine"]["torch"] is None)


def test_confirmation_lines_name_both_dataflows():
    """The CLI's RTL-confirmation lines: per contraction for separate jobs, per layer
    chain (with the MOVE counter) for resident chains."""
    from fetta.sim.evaluation import confirmation_lines
    common = dict(backend="verilator", workload="digits", config="tiny", cycles_rtl=10,
                  cycles_model=10, host_words_rtl=7)
    res = {"rtl_confirmation": [dict(common, contractions=14, mac_active_rtl=4,
                                     dataflow="separate"),
                                dict(common, layers=2, move_elements_rtl=5,
                                     dataflow="resident")]}
    sep, resid = confirmation_lines(res)
    assert "(verilator, separate)" in sep and "14 contractions" in sep and "MAC-active 4" in sep
    assert "(verilator, resident)" in resid and "2 layer chains" in resid
    assert "MOVE element cycles 5" in resid
