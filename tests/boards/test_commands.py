"""fetta verilog / synth / program on the command line (no FPGA tools needed)."""

import re
import subprocess

import pytest

from fetta.sim.cli import main


@pytest.fixture(scope="module")
def tiny_verilog(tmp_path_factory):
    pytest.importorskip("fetta.rtl.top")
    out = tmp_path_factory.mktemp("verilog") / "accel.v"
    assert main(["verilog", "--config", "tiny", "-o", str(out)]) == 0
    return out


def test_verilog_header_documents_every_port(tiny_verilog):
    text = tiny_verilog.read_text()
    head = text[:text.index("module ")]
    decl = re.search(r"^module fetta_accel\((.*?)\);", text, re.M | re.S).group(1)
    ports = {p.strip() for p in decl.split(",")}
    assert ports == {"clk", "rst", "bus__addr", "bus__wdata", "bus__write", "bus__read",
                     "bus__rdata", "bus__rvalid", "busy", "done", "error"}
    for port in ports:
        assert re.search(rf"^//\s+(input|output)\s+(\[\d+:0\])?\s+{port}\s+\S", head, re.M), port
    assert "//   input   [23:0] bus__addr" in head
    assert "//   output  [31:0] bus__rdata" in head
    assert "configuration 'tiny'" in head and "16 multiply MACs" in head


def test_verilog_passes_verilator_lint(tiny_verilog, verilator_cmd):
    r = subprocess.run([*verilator_cmd, "--lint-only", "-Wno-fatal", "--top-module",
                        "fetta_accel", str(tiny_verilog)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "%Error" not in r.stderr


def test_synth_rejects_unknown_board(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["synth", "--board", "de10"])
    assert exc.value.code == 2
    assert "invalid choice: 'de10'" in capsys.readouterr().err


def test_program_without_programmer_is_one_line(tmp_path, monkeypatch, capsys):
    bit = tmp_path / "top.bin"
    bit.write_bytes(b"\0" * 16)
    monkeypatch.setenv("ICEPROG", str(tmp_path / "no-such-iceprog"))
    assert main(["program", "--board", "icebreaker", "--bitstream", str(bit)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "programmer iceprog not found" in err and "set ICEPROG" in err


def test_program_without_bitstream_says_how_to_build(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["program", "--board", "ulx3s-85f"]) == 2
    err = capsys.readouterr().err
    assert "bitstream build/ulx3s-85f-accelerator-ecp5/top.bit not found" in err
    assert "fetta synth --board ulx3s-85f" in err


def test_program_runs_the_programmer(tmp_path, monkeypatch, capsys):
    bit = tmp_path / "top.bit"
    bit.write_bytes(b"\0" * 16)
    fake = tmp_path / "openFPGALoader"
    log = tmp_path / "args"
    fake.write_text(f"#!/bin/sh\necho \"$@\" > {log}\n")
    fake.chmod(0o755)
    monkeypatch.setenv("OPENFPGALOADER", str(fake))
    assert main(["program", "--board", "ulx3s-85f", "--bitstream", str(bit)]) == 0
    assert log.read_text().split() == ["-b", "ulx3s", "-m", str(bit)]


def test_synth_set_rejects_a_bad_field_in_one_line(capsys):
    """``--set`` changes preset fields; a bad one stops before any tool runs."""
    assert main(["synth", "--board", "icebreaker", "--set", "pe_row=4"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'pe_row=4'" in err and "pe_rows" in err
    assert main(["synth", "--board", "icebreaker", "--design", "memory",
                 "--set", "pe_rows=4"]) == 2
    assert "--set applies to the accelerator design" in capsys.readouterr().err
