"""VCD output of `fetta contract --vcd`, read back with vcdvcd; `fetta wave`."""

import subprocess
import sys

import pytest
from vcdvcd import VCDVCD

from fetta.rtl.controller import CONTROLLER_STATES
from fetta.sim.backends.pysim import PysimBackend
from fetta.sim.waveform import load_vcd, to_int

NAMED = ["controller.ctrl_state_code", "controller.pc", "controller.a_addr",
         "controller.fabric__a_net_cfg", "controller.fabric__red_cfg", "controller.cnt_cycles",
         "controller.cnt_mac_active", "fabric.out_valid", "bus__addr"]


def fetta(*args):
    return subprocess.run([sys.executable, "-m", "fetta.sim.cli", *args], capture_output=True,
                          text=True)


@pytest.fixture(scope="module")
def vcd(tmp_path_factory):
    path = tmp_path_factory.mktemp("wave") / "run.vcd"
    p = fetta("contract", "ij,jk->ik", "--shape", "A=3,5", "--shape", "B=5,4",
              "--vcd", str(path))
    assert p.returncode == 0, p.stderr
    return path


def test_vcd_parses_and_has_named_signals(vcd):
    names = VCDVCD(str(vcd), only_sigs=True).signals
    for want in NAMED:
        assert any(n.endswith(want) for n in names), want
    gtkw = vcd.with_suffix(".gtkw").read_text()
    assert "ctrl_state_code" in gtkw and "cnt_mac_active" in gtkw


def test_state_sequence_and_counters_in_waveform(vcd):
    traces, cycles = load_vcd(str(vcd), ["*controller.ctrl_state_code",
                                         "*controller.cnt_mac_active"])
    by = {t.name.rsplit(".", 1)[-1]: t for t in traces}
    states = [CONTROLLER_STATES[v] for _, v in by["ctrl_state_code"].changes]
    for s in ("FETCH", "DECODE", "LOAD_CONFIG", "LOAD_CONTRACT", "CHECK", "RUN", "TAIL",
              "IDLE"):
        assert s in states
    assert states.index("CHECK") < states.index("RUN") < states.index("TAIL")
    assert by["cnt_mac_active"].changes[-1][1] > 0
    assert cycles > 100


def test_state_names_match_fsm():
    be = PysimBackend("tiny")
    assert tuple(be.top.controller.state_names[i]
                 for i in range(len(CONTROLLER_STATES))) == CONTROLLER_STATES


def test_signed_decode():
    assert to_int("1111", signed=True) == -1
    assert to_int("0111", signed=True) == 7
    assert to_int("1000") == 8
    assert to_int("10x1") is None


def test_fetta_wave_prints_and_plots(vcd, tmp_path):
    png = tmp_path / "w.png"
    p = fetta("wave", str(vcd), "--signals", "*ctrl_state_code", "--png", str(png))
    assert p.returncode == 0, p.stderr
    assert "RUN" in p.stdout and png.stat().st_size > 1000


def test_fetta_wave_bad_input(tmp_path):
    p = fetta("wave", str(tmp_path / "missing.vcd"))
    assert p.returncode != 0 and len(p.stderr.strip().splitlines()) == 1
    p = fetta("wave", "/dev/null")
    assert p.returncode != 0


def test_fetta_contract_bad_input():
    p = fetta("contract", "ij,jk->ik", "--shape", "A=3,5", "--shape", "B=4,4")
    assert p.returncode == 2 and "index 'j'" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1
    p = fetta("contract", "ij,jk", "--shape", "A=3,5", "--shape", "B=5,4")
    assert p.returncode == 2 and "->" in p.stderr
