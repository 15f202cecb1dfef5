"""The compiled (CXXRTL) backend: host-bus protocol in C++, build cache, error paths.

These run on ``BusFixture`` (sim/compiled/bus_fixture.py), a small top with the accelerator's
host-bus contract, so they check the backend machinery independently of the array.
Expected cycle counts are derived by hand from the protocol: over the bus a write
burst of n words takes n cycles, a read burst n + READ_LATENCY; a run of the fixture
is busy max(n, 1) cycles after the START write cycle, and run_until_idle also clocks
the first idle cycle (where it sees busy low). Direct memory access takes no cycles.
"""

import os

import numpy as np
import pytest

from fetta.sim.backends.base import Backend
from fetta.sim.backends.cxxrtl import CxxrtlBackend
from fetta.sim.compiled.bus_fixture import BusFixture
from fetta.sim.compiled.cxxrtl_build import build_model
from fetta.errors import FettaError
from fetta.sw_model.accel.hostmap import MAGIC, PROG_BASE, READ_LATENCY, Reg, Status, buffer_base

DEPTH = 256


def fixture_top(config):
    return BusFixture(depth=DEPTH, prog_depth=64)


@pytest.fixture(scope="module")
def be():
    # Shared cache (FETTA_CACHE_DIR or ~/.cache/fetta-hdl): built once per machine.
    backend = CxxrtlBackend("tiny", top_factory=fixture_top)
    yield backend
    backend.close()


@pytest.fixture(scope="module")
def bus_be():
    backend = CxxrtlBackend("tiny", top_factory=fixture_top, bus_only=True)
    yield backend
    backend.close()


@pytest.fixture(params=["direct", "bus"])
def fresh(request, be, bus_be):
    b = be if request.param == "direct" else bus_be
    b.reset()
    return b


def test_is_a_backend(be):
    assert isinstance(be, Backend)
    assert be.name == "cxxrtl"
    assert be.library.is_file()


def test_id_register(fresh):
    assert fresh.read_reg(Reg.ID) == MAGIC


def test_buffer_words_roundtrip_sign_extended(fresh):
    rng = np.random.default_rng(1)
    words = rng.integers(-2**15, 2**15, DEPTH)
    fresh.write(buffer_base(0), words)
    got = np.array(fresh.read(buffer_base(0), DEPTH), dtype=np.uint32).view(np.int32)
    assert np.array_equal(got, words)
    # read() returns unsigned 32-bit words; read_array is the same without lists
    assert fresh.read(buffer_base(0), 1)[0] == int(words[0]) & 0xFFFFFFFF
    assert np.array_equal(fresh.read_array(buffer_base(0), DEPTH).view(np.int32), words)


def test_program_words_full_32_bits(fresh):
    words = [0xFFFFFFFF, 0x80000001, 0, 0x12345678]
    fresh.write(PROG_BASE, words)
    assert fresh.read(PROG_BASE, 4) == words


def test_bus_burst_cycle_accounting(bus_be):
    bus_be.reset()
    assert bus_be.cycles == 0
    bus_be.write(buffer_base(1), list(range(100)))
    assert bus_be.cycles == 100
    bus_be.read(buffer_base(1), 10)
    assert bus_be.cycles == 100 + 10 + READ_LATENCY
    bus_be.step(7)
    assert bus_be.cycles == 100 + 10 + READ_LATENCY + 7


def test_direct_access_takes_no_cycles_registers_use_the_bus(be):
    be.reset()
    be.write(buffer_base(1), list(range(100)))
    be.write(PROG_BASE, [1, 2])
    assert be.read(buffer_base(1), 100) == list(range(100))
    assert be.cycles == 0
    be.read(Reg.ID, 1)
    assert be.cycles == 1 + READ_LATENCY


def test_direct_regions_found(be):
    regions = {base: (words, lanes) for base, words, _, lanes, _ in be.regions}
    assert regions == {PROG_BASE: (64, 1), buffer_base(0): (DEPTH, 1),
                       buffer_base(1): (DEPTH, 1), buffer_base(2): (DEPTH, 1)}


def test_range_across_regions_falls_back_to_the_bus(be):
    be.reset()
    be.write(buffer_base(0) + DEPTH - 2, [7, 8, 9])   # last word is past the buffer
    assert be.cycles == 3
    assert be.read(buffer_base(0) + DEPTH - 2, 2) == [7, 8]


@pytest.mark.parametrize("n", [1, 2, 37, DEPTH])
def test_run_computes_and_counts(fresh, n):
    rng = np.random.default_rng(n)
    a = rng.integers(-2**15, 2**15, DEPTH)
    b = rng.integers(-2**15, 2**15, DEPTH)
    fresh.write(buffer_base(0), a)
    fresh.write(buffer_base(1), b)
    fresh.write(PROG_BASE, [n])
    before = fresh.cycles
    assert fresh.run_until_idle(10_000) == n
    assert fresh.cycles - before == n + 2   # + the START write and the first idle cycle
    c = fresh.read_array(buffer_base(2), n).view(np.int32)
    assert np.array_equal(c, BusFixture.expected(a, b, n))


def test_run_status_and_counters(fresh):
    fresh.write(PROG_BASE, [50])
    st = fresh.run(1000)
    assert st.ok and st.status == Status.DONE
    assert st.counters["cycles"] == 50 and st.counters["instructions"] == 1
    st = fresh.run(1000)
    assert st.counters["cycles"] == 100 and st.counters["mac_active_cycles"] == 100
    fresh.clear()
    assert fresh.counters()["cycles"] == 0
    assert fresh.read_reg(Reg.STATUS) == 0


def test_timeout_raises_and_model_stays_usable(fresh):
    fresh.write(PROG_BASE, [1000])
    with pytest.raises(FettaError, match="still busy after 10 cycles"):
        fresh.run_until_idle(10)
    fresh.step(2000)
    assert fresh.read_reg(Reg.STATUS) & Status.DONE


def test_reset_restores_power_on_state(fresh):
    fresh.write(buffer_base(2), [5, 6, 7])
    fresh.reset()
    assert fresh.cycles == 0
    assert fresh.read(buffer_base(2), 3) == [0, 0, 0]


def test_address_range_checked(fresh):
    with pytest.raises(ValueError, match="out of range"):
        fresh.write(1 << 24, [1])
    with pytest.raises(ValueError, match="out of range"):
        fresh.read((1 << 24) - 1, 2)


def test_two_instances_are_independent(be):
    other = CxxrtlBackend("tiny", top_factory=fixture_top)
    try:
        assert not other.built and other.library == be.library
        be.reset()
        other.write(buffer_base(0), [42])
        assert be.read(buffer_base(0), 1) == [0]
        assert other.read(buffer_base(0), 1) == [42]
    finally:
        other.close()


def test_use_after_close_is_an_error():
    b = CxxrtlBackend("tiny", top_factory=fixture_top)
    b.close()
    b.close()  # idempotent
    with pytest.raises(FettaError, match="after close"):
        b.read(0, 1)


# -- build cache ----------------------------------------------------------------------
def test_cache_cold_then_warm(tmp_path):
    top = lambda c: BusFixture(depth=16, prog_depth=4)  # noqa: E731
    first = CxxrtlBackend("tiny", top_factory=top, cache_dir=tmp_path)
    assert first.built
    second = CxxrtlBackend("tiny", top_factory=top, cache_dir=tmp_path)
    assert not second.built and second.key == first.key
    assert second.build_seconds < 1.0
    # a different design is a different key
    third = build_model(BusFixture(depth=32, prog_depth=4), cache_dir=tmp_path)
    assert third.built and third.key != first.key
    entries = [p.name for p in (tmp_path / "cxxrtl").iterdir()]
    assert not [n for n in entries if n.startswith(".build-")]   # no temporaries left
    assert sorted(n for n in entries if not n.startswith(".")) == sorted(
        [first.key, third.key])
    for b in (first, second):
        b.write(PROG_BASE, [3])
        assert b.run_until_idle(100) == 3
        b.close()


def test_source_token_index_skips_elaboration(tmp_path):
    made = []

    def make():
        made.append(1)
        return BusFixture(depth=16, prog_depth=4)

    first = build_model(make, token="design v1", cache_dir=tmp_path)
    again = build_model(make, token="design v1", cache_dir=tmp_path)
    assert first.built and not again.built and again.key == first.key
    assert len(made) == 1                       # the index hit elaborated nothing
    # A new token for the same design: elaborated once more, but no rebuild.
    other = build_model(make, token="design v2", cache_dir=tmp_path)
    assert len(made) == 2 and not other.built and other.key == first.key


def test_source_token_tracks_config_and_sources():
    from fetta.sim.compiled.build_cache import source_token
    from fetta.sw_model.accel.config import get_config
    assert source_token(get_config("tiny")) == source_token(get_config("tiny"))
    assert source_token(get_config("tiny")) != source_token(get_config("large"))


def test_cache_dir_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("FETTA_CACHE_DIR", str(tmp_path))
    m = build_model(BusFixture(depth=16, prog_depth=4))
    assert m.path.parent.parent == tmp_path / "cxxrtl"


def test_zero_memory_inits_become_fills_nonzero_kept():
    from fetta.sim.compiled.cxxrtl_emit import zero_fill_memory_inits
    zero = ("\tstatic const value<16> mem_init_1[4] {\n"
            "\t\tvalue<16>{0x0000u}, value<16>{0x0000u}, value<16>{0x0000u}, value<16>{0x0000u},\n"
            "\t};\n"
            "\tstd::copy(std::begin(mem_init_1), std::end(mem_init_1), &memory_p_m.data[0]);\n")
    nonzero = zero.replace("mem_init_1", "mem_init_2").replace("{0x0000u}, value<16>{0x0000u},\n",
                                                               "{0x0000u}, value<16>{0x0007u},\n")
    out = zero_fill_memory_inits(zero + nonzero)
    assert out.startswith("\tstd::fill(&memory_p_m.data[0], &memory_p_m.data[0] + 4, "
                          "value<16>{});\n")
    assert out.endswith(nonzero)


# -- error paths ----------------------------------------------------------------------
def test_missing_compiler_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-g++"))
    with pytest.raises(FettaError) as info:
        CxxrtlBackend("tiny", top_factory=fixture_top, cache_dir=tmp_path)
    msg = str(info.value)
    assert "\n" not in msg
    assert "not found: install a C++ compiler (Debian: apt install g++)" in msg


def test_failed_build_is_one_line_with_log(tmp_path, monkeypatch):
    # A "compiler" that runs but fails.
    fake = tmp_path / "broken-cxx"
    fake.write_text("#!/bin/sh\necho 'broken-cxx: error: cannot compile' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("CXX", str(fake))
    with pytest.raises(FettaError) as info:
        CxxrtlBackend("tiny", top_factory=fixture_top, cache_dir=tmp_path)
    msg = str(info.value)
    assert "\n" not in msg and "failed" in msg and "cannot compile" in msg
    log = msg.rsplit("log in ", 1)[1]
    assert os.path.isfile(log)


def test_missing_verilator_is_one_line(tmp_path, monkeypatch):
    from fetta.sim.backends.verilator import VerilatorBackend
    monkeypatch.setenv("VERILATOR", str(tmp_path / "no-such-verilator"))
    with pytest.raises(FettaError) as info:
        VerilatorBackend("tiny", top_factory=fixture_top, cache_dir=tmp_path)
    assert "\n" not in str(info.value)
    assert "not found: install Verilator (Debian: apt install verilator)" in str(info.value)


def test_pysim_works_without_compiler(tmp_path, monkeypatch):
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-g++"))
    from amaranth.sim import Simulator

    dut = BusFixture(depth=16, prog_depth=4)
    seen = []

    async def bench(ctx):
        ctx.set(dut.bus.addr, Reg.ID)
        ctx.set(dut.bus.read, 1)
        await ctx.tick()
        ctx.set(dut.bus.read, 0)
        await ctx.tick().until(dut.bus.rvalid)
        seen.append(ctx.get(dut.bus.rdata))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert seen == [MAGIC]


def test_top_without_bus_is_rejected(tmp_path):
    from amaranth.lib import wiring
    from amaranth.lib.wiring import Out
    from amaranth import Module

    class NoBus(wiring.Component):
        busy: Out(1)

        def elaborate(self, platform):
            return Module()

    with pytest.raises(FettaError, match="no 'bus' and 'busy'"):
        CxxrtlBackend("tiny", top_factory=lambda c: NoBus(), cache_dir=tmp_path)


# -- fetta bench sim ------------------------------------------------------------------
def _fake_result():
    compiled = {"cycles_per_s": 2e6, "cycles_per_cpu_s": 2.5e6, "speedup_vs_pysim": 4000,
                "speedup_vs_pysim_cpu": 3000}
    return {"config": "tiny", "macs": 16, "cycles_per_rep": 24738, "chunks": 2,
            "compiled": {"verilator": compiled},
            "minimal": {"verilator": {"cycles_per_s": 3e6, "cycles_per_cpu_s": 3e6,
                                      "harness_overhead": 1.5}},
            "pysim": {"cycles_per_s": 500, "cycles_per_cpu_s": 800}}


def test_bench_table_and_targets():
    import importlib.util
    from pathlib import Path

    from fetta.sim.commands.bench import table
    text = table([_fake_result()])
    assert "| tiny | verilator | 24,738 | 500 (800) | 2,000,000 (2,500,000) |" in text
    assert text.rstrip().endswith("| 4,000x | 1.50x |")
    path = Path(__file__).resolve().parents[2] / "scripts" / "bench_sim.py"
    spec = importlib.util.spec_from_file_location("bench_sim_script", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    (line,) = mod.targets(_fake_result())
    assert line.count("wall yes") == 3


def test_bench_cli_rejects_bad_input(capsys):
    from fetta.sim.cli import main
    assert main(["bench", "sim", "--configs", "huge"]) == 2
    assert "huge" in capsys.readouterr().err
    assert main(["bench", "sim", "--backends", "iverilog"]) == 2
    assert "iverilog" in capsys.readouterr().err
    assert main(["bench"]) == 2


@pytest.mark.slow
def test_bench_sim_runs_on_tiny(tmp_path):
    from fetta.sim.commands.bench import bench_sim
    r = bench_sim("tiny", reps=1, pysim_reps=0, backends=("cxxrtl",), verbose=False)
    assert r["cycles_per_rep"] > 0 and r["compiled"]["cxxrtl"]["cycles_per_s"] > 0
    assert r["minimal"]["cxxrtl"]["last_chunk_loop"]["cycles"] > 0
