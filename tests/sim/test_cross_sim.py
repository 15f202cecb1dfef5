"""Cross-simulator agreement (verification ladder levels 3-5): the same host-bus
traffic on Amaranth's simulator (pysim), the CXXRTL model and Verilator on the emitted
Verilog gives bit-identical data and identical cycle counts.

Two layers:
* the bus fixture (``BusFixture``): the protocol itself, independent of the array;
* the system's random contractions (``sim/random_cases.py``) through the harness
  (``sim.harness.Session``, one live backend each) on the real top: ``N_FAST`` cases
  by default, ``N_SLOW`` (>= 300) more under ``-m slow``. Outputs are compared with
  the golden model, cycles and every performance counter with pysim.
"""

import numpy as np
import pytest

from fetta.sim.compiled.bus_fixture import BusFixture
from fetta.sw_model.accel.hostmap import MAGIC, PROG_BASE, READ_LATENCY, Ctrl, Reg, buffer_base

N_FAST = 8
N_SLOW = 300
FIX_DEPTH = 64


# -- a pysim oracle for raw bus traffic ----------------------------------------------
def pysim_ops(top, ops):
    """Run ``ops`` on ``top`` in Amaranth's simulator with the exact protocol of the C++
    driver: ("write", addr, words) one strobe per cycle; ("read", addr, n) pipelined
    strobes, data taken while ``rvalid``; ("run", max_cycles) a START write then clock
    cycles up to and including the first with ``busy`` low. Returns (results, total
    clock edges)."""
    from amaranth.sim import Simulator

    results = []
    edges = [0]
    bus = top.bus

    async def bench(ctx):
        async def edge():
            await ctx.tick()
            edges[0] += 1

        async def write(addr, words):
            ctx.set(bus.write, 1)
            for i, w in enumerate(words):
                ctx.set(bus.addr, addr + i)
                ctx.set(bus.wdata, int(w) & 0xFFFFFFFF)
                await edge()
            ctx.set(bus.write, 0)

        for op in ops:
            if op[0] == "write":
                await write(op[1], op[2])
            elif op[0] == "read":
                _, addr, n = op
                got = []
                for i in range(n + READ_LATENCY):
                    ctx.set(bus.read, int(i < n))
                    ctx.set(bus.addr, addr + min(i, n - 1))
                    if ctx.get(bus.rvalid):
                        got.append(ctx.get(bus.rdata))
                    await edge()
                ctx.set(bus.read, 0)
                results.append(got)
            elif op[0] == "run":
                await write(Reg.CTRL, [Ctrl.START])
                n = 0
                while True:              # clock cycles until one with busy low
                    busy = ctx.get(top.busy)
                    await edge()
                    if not busy:
                        break
                    n += 1
                    assert n <= op[1], "pysim: still busy"
                results.append(n)

    sim = Simulator(top)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return results, edges[0]


def backend_ops(be, ops):
    results = []
    start = be.cycles
    for op in ops:
        if op[0] == "write":
            be.write(op[1], op[2])
        elif op[0] == "read":
            results.append(be.read(op[1], op[2]))
        elif op[0] == "run":
            results.append(be.run_until_idle(op[1]))
    return results, be.cycles - start


def fixture_top(config):
    return BusFixture(depth=FIX_DEPTH, prog_depth=8)


@pytest.fixture(scope="module")
def fixture_backends():
    from fetta.sim.backends.cxxrtl import CxxrtlBackend
    from fetta.sim.backends.verilator import VerilatorBackend
    bes = {"cxxrtl": CxxrtlBackend("tiny", top_factory=fixture_top, bus_only=True),
           "verilator": VerilatorBackend("tiny", top_factory=fixture_top, bus_only=True)}
    yield bes
    for be in bes.values():
        be.close()


def fixture_ops(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(0, FIX_DEPTH + 1))
    a = rng.integers(-2**15, 2**15, FIX_DEPTH)
    b = rng.integers(-2**15, 2**15, FIX_DEPTH)
    return [
        ("read", Reg.ID, 1),
        ("write", buffer_base(0), a.tolist()),
        ("write", buffer_base(1), b.tolist()),
        ("write", PROG_BASE, [n, int(rng.integers(0, 2**32))]),
        ("run", 10_000),
        ("read", buffer_base(2), FIX_DEPTH),
        ("read", PROG_BASE, 2),
        ("read", Reg.STATUS, 1),
        ("read", Reg.CYCLES, 2),
        ("run", 10_000),
        ("read", Reg.CYCLES, 2),
        ("write", Reg.CTRL, [Ctrl.CLEAR]),
        ("read", Reg.CYCLES, 4),
    ], (a, b, n)


@pytest.mark.parametrize("seed", range(4))
def test_fixture_protocol_agrees(seed, fixture_backends):
    ops, (a, b, n) = fixture_ops(seed)
    ref, ref_edges = pysim_ops(fixture_top(None), ops)
    assert ref[0] == [MAGIC]
    c = np.array(ref[2], dtype=np.uint32).view(np.int32)
    assert np.array_equal(c[:n], BusFixture.expected(a, b, n))
    for name, be in fixture_backends.items():
        be.reset()
        got, edges = backend_ops(be, ops)
        assert got == ref, f"{name} differs from pysim"
        assert edges == ref_edges, f"{name}: {edges} clock edges, pysim {ref_edges}"


@pytest.mark.parametrize("seed", range(2))
def test_fixture_direct_access_agrees(seed, fixture_backends):
    """Direct memory access (no bus cycles) gives the bus path's data and run cycles."""
    ops, _ = fixture_ops(seed)
    ref, _ = pysim_ops(fixture_top(None), ops)
    for name, be in fixture_backends.items():
        be.reset()
        be.bus_only = False
        try:
            got, _ = backend_ops(be, ops)
        finally:
            be.bus_only = True
        assert got == ref, f"{name} (direct access) differs from pysim"


# -- random contractions through the harness on the real top -----------------------
CONFIG = "tiny"


def random_contraction(seed):
    """Case ``seed`` of the system's random-contraction suite (sim/random_cases.py)."""
    from fetta.sim.random_cases import random_case
    return random_case(np.random.default_rng(5000 + seed), CONFIG)


@pytest.fixture(scope="module")
def harness_backends():
    harness = pytest.importorskip("fetta.sim.harness", reason="fetta.sim.harness not there yet")
    from fetta.sim.backends.base import get_backend
    from fetta.sim.backends.verilator import VerilatorBackend
    from fetta.sim.backends.cxxrtl import CxxrtlBackend
    # pysim, cxxrtl and verilator load buffers and programs directly into memories;
    # the *_bus backends move every word over the host bus.
    bes = {"pysim": get_backend("pysim", CONFIG),
           "cxxrtl": get_backend("cxxrtl", CONFIG),
           "cxxrtl_bus": CxxrtlBackend(CONFIG, bus_only=True),
           "verilator": VerilatorBackend(CONFIG),
           "verilator_bus": VerilatorBackend(CONFIG, bus_only=True)}
    yield harness, bes
    for be in bes.values():
        be.close()


def check_agreement(seed, harness, bes):
    from fetta.sw_model.arith.contraction import reference_contraction
    from fetta.sw_model.accel.config import get_config
    case = random_contraction(seed)
    kw = case.kwargs()
    cfg = get_config(CONFIG)
    golden = reference_contraction(case.spec, case.a, case.b, acc_bits=cfg.acc_bits, **kw)
    runs = {name: harness.Session(cfg, be).contract(case.spec, case.a, case.b, **kw)
            for name, be in bes.items()}
    ref = runs["pysim"]
    where = f"case {seed} '{case.spec}' {kw}"
    for name, r in runs.items():
        diff = np.argwhere(np.asarray(r.output) != golden)
        assert diff.size == 0, (f"{where}: {name} first differs at element "
                                f"{tuple(diff[0])}: {r.output[tuple(diff[0])]} vs golden "
                                f"{golden[tuple(diff[0])]}")
        assert r.cycles == ref.cycles, f"{where}: {name} {r.cycles} cycles, pysim {ref.cycles}"
        assert r.counters == ref.counters, f"{where}: {name} counters differ from pysim"


@pytest.mark.parametrize("seed", range(N_FAST))
def test_random_contractions_agree(seed, harness_backends):
    check_agreement(seed, *harness_backends)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(N_FAST, N_SLOW + N_FAST))
def test_random_contractions_agree_slow(seed, harness_backends):
    check_agreement(seed, *harness_backends)


def test_k_chunked_contraction_agrees(harness_backends):
    """A reduction longer than the buffers (K chunks accumulating in the PE
    accumulators across programs) is bit- and cycle-exact on every backend."""
    from fetta.sw_model.arith.contraction import reference_contraction
    harness, bes = harness_backends
    rng = np.random.default_rng(17)
    a = rng.integers(-32768, 32768, (3, 4500))
    b = rng.integers(-32768, 32768, (4500, 2))
    kw = dict(shift=13, rounding="stochastic", seed=99)
    golden = reference_contraction("mk,kn->nm", a, b, **kw)
    runs = {name: harness.Session(CONFIG, be).contract("mk,kn->nm", a, b, **kw)
            for name, be in bes.items()}
    for name, r in runs.items():
        assert r.chunks > 1
        diff = np.argwhere(r.output != golden)
        assert diff.size == 0, (f"{name}: element {tuple(diff[0])}: "
                                f"{r.output[tuple(diff[0])]} vs golden {golden[tuple(diff[0])]}")
        assert r.cycles == r.predicted_cycles == runs["pysim"].cycles, (name, r.cycles)
