"""The `fetta` command line: help, version, the demo, one-line errors."""

import json
import subprocess
import sys

import pytest

from fetta.sw_model import __version__


def fetta(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "fetta.sim.cli", *args], capture_output=True,
                          text=True, timeout=timeout)


def test_help_exits_zero_and_lists_demo():
    proc = fetta("--help")
    assert proc.returncode == 0
    assert "usage: fetta" in proc.stdout
    assert "demo" in proc.stdout


def test_no_command_prints_help():
    proc = fetta()
    assert proc.returncode == 0
    assert "usage: fetta" in proc.stdout


def test_version():
    proc = fetta("--version")
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"fetta-hdl {__version__}"


def test_demo_help():
    proc = fetta("demo", "--help")
    assert proc.returncode == 0
    for option in ("--vectors", "--seed", "--rounding", "--shift", "--out-bits"):
        assert option in proc.stdout


def test_demo_default_is_bit_exact():
    proc = fetta("demo")
    assert proc.returncode == 0, proc.stderr
    assert "bit-exact: 16/16" in proc.stdout
    assert "MISMATCH" not in proc.stdout
    header = next(line for line in proc.stdout.splitlines() if "golden" in line)
    assert header.split() == ["step", "a", "b", "acc", "out", "golden"]


@pytest.mark.parametrize("mode", ["floor", "nearest-even", "stochastic"])
def test_demo_each_rounding_mode(mode, tmp_path):
    out = tmp_path / "demo.json"
    proc = fetta("demo", "--vectors", "40", "--seed", "9", "--rounding", mode,
                 "--shift", "5", "--out-bits", "8", "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "bit-exact: 40/40" in proc.stdout
    result = json.loads(out.read_text())
    assert result["bit_exact"] and result["matches"] == 40
    assert result["out"] == result["golden"]
    # out_bits 8 with shift 5 on 8-bit operand sums: saturation is exercised
    assert max(result["out"]) <= 127 and min(result["out"]) >= -128
    assert 127 in result["out"] or -128 in result["out"]


@pytest.mark.parametrize("args, message", [
    (["demo", "--rounding", "up"], "--rounding='up' unknown; allowed floor, nearest-even"),
    (["demo", "--out-bits", "17"], "--out-bits=17 out of range; allowed 2..16"),
    (["demo", "--out-bits", "1"], "--out-bits=1 out of range; allowed 2..16"),
    (["demo", "--shift", "32"], "--shift=32 out of range; allowed 0..31"),
    (["demo", "--vectors", "0"], "--vectors=0 out of range; allowed 1..10000"),
    (["demo", "--seed", "-1"], "--seed=-1 out of range; allowed 0..4294967295"),
])
def test_bad_argument_is_one_line_and_nonzero(args, message):
    proc = fetta(*args)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("fetta demo: error: ")
    assert message in lines[0]
    assert proc.stdout == ""


def test_closed_stdout_is_a_quiet_sigpipe_status(monkeypatch, capsys):
    """A reader that closes the pipe (``fetta ... | head``) ends the command with the
    shell's SIGPIPE status and no traceback."""
    import os

    from fetta.sim import cli
    from fetta.sim.commands import verilog

    def broken(args):
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(verilog, "run", broken)
    rc = cli.main(["verilog", "-o", os.devnull])     # stdout is pytest's capture here
    assert rc == 141
    assert "Traceback" not in capsys.readouterr().err
