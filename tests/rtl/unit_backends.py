"""Backends for the unit tests (PyMTL3 style: one set of cases, several models).

``simulate(backend, make_dut, model, inputs, outputs)`` runs per-cycle vectors through

* ``golden``:   ``model(inputs)``, the cycle model built on ``sw_model.arith.fixedpoint``;
* ``pysim``:    the RTL in Amaranth's simulator, one Simulator for the whole batch;
* ``iverilog``: the RTL's emitted Verilog in Icarus (``sim.iverilog``).

All three sample the same way: cycle ``i`` sets vector ``i``, reads the outputs, then
gives one clock edge.
"""

from __future__ import annotations


import pytest
from amaranth import Cat, Elaboratable, Module, Signal
from amaranth.sim import Simulator

from fetta.sim.iverilog import component_ports, run_iverilog, to_signed

BACKENDS = ("golden", "pysim", "iverilog")
RTL_BACKENDS = ("pysim", "iverilog")

needs_iverilog = pytest.mark.icarus   # skipped without Icarus (tests/conftest.py)


def backend_params(names=BACKENDS):
    """pytest params for ``names``; the iverilog one carries the skip-if-missing mark."""
    return [pytest.param(n, marks=needs_iverilog) if n == "iverilog" else n for n in names]


class _Harness(Elaboratable):
    """Packs all inputs into one signal and all outputs into another, so the testbench
    does one ``ctx.set`` (one settle) and one ``ctx.get`` per cycle."""

    def __init__(self, dut, ins, outs):
        self.dut = dut
        self.ins = ins
        self.outs = outs
        self.vector = Signal(sum(w for _, w, _ in ins))
        self.sample = Signal(sum(w for _, w, _ in outs))

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = self.dut
        offset = 0
        for name, width, _ in self.ins:
            m.d.comb += getattr(self.dut, name).eq(self.vector[offset:offset + width])
            offset += width
        m.d.comb += self.sample.eq(Cat(*(getattr(self.dut, n) for n, _, _ in self.outs)))
        return m


def run_pysim(dut, inputs, outputs, *, clocked=True):
    """Per-cycle vectors through ``dut`` in Amaranth's simulator (one run)."""
    ports = component_ports(dut)
    ins = [(n, w, s) for n, (d, w, s) in ports.items() if d == "input"]
    outs = [(n, ports[n][1], ports[n][2]) for n in outputs]
    assert set(inputs) == {n for n, _, _ in ins}, "every input port needs a vector"
    n_cycles = len(next(iter(inputs.values())))
    packed = []
    for i in range(n_cycles):
        word, offset = 0, 0
        for name, width, _ in ins:
            word |= (int(inputs[name][i]) & ((1 << width) - 1)) << offset
            offset += width
        packed.append(word)
    harness = _Harness(dut, ins, outs)
    samples = []

    async def testbench(ctx):
        for word in packed:
            ctx.set(harness.vector, word)
            samples.append(ctx.get(harness.sample))
            if clocked:
                await ctx.tick()
            else:
                await ctx.delay(1e-6)

    sim = Simulator(harness)
    if clocked:
        sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    result = {n: [] for n, _, _ in outs}
    for word in samples:
        offset = 0
        for name, width, signed in outs:
            value = (word >> offset) & ((1 << width) - 1)
            result[name].append(to_signed(value, width) if signed else value)
            offset += width
    return result


def simulate(backend, make_dut, model, inputs, outputs, *, clocked=True):
    """Outputs of ``backend`` for the per-cycle ``inputs``: ``{port: [int, ...]}``."""
    if backend == "golden":
        return {n: [int(v) for v in vals] for n, vals in model(inputs).items() if n in outputs}
    if backend == "pysim":
        return run_pysim(make_dut(), inputs, outputs, clocked=clocked)
    if backend == "iverilog":
        return run_iverilog(make_dut(), inputs, outputs)
    raise ValueError(f"backend {backend!r} unknown; allowed {', '.join(BACKENDS)}")


def first_mismatch(got, want, inputs):
    """A readable description of the first differing cycle, or None."""
    for name in want:
        for i, (g, w) in enumerate(zip(got[name], want[name])):
            if g != w:
                vec = {k: int(v[i]) for k, v in inputs.items()}
                return f"cycle {i}: {name}={g}, golden {w}; inputs {vec}"
        if len(got[name]) != len(want[name]):
            return f"{name}: {len(got[name])} cycles, golden {len(want[name])}"
    return None


def accumulate_model(products, en, clear, acc_bits):
    """Cycle model of the MAC accumulator (``rtl.mac.MAC`` table) over exact products:
    per cycle the visible ``acc`` and the combinational ``sum``."""
    from fetta.sw_model.arith.fixedpoint import wrap

    acc, accs, sums = 0, [], []
    for p, e, c in zip(products, en, clear):
        s = int(wrap((0 if c else acc) + int(p), acc_bits))
        accs.append(acc)
        sums.append(s)
        if e:
            acc = s
    return {"acc": accs, "sum": sums}


def assert_invalid(factory, pattern):
    """``factory()`` raises ValueError matching ``pattern``. The half-built component
    is collected here, so Amaranth's "created but never used" warning (filtered by the
    caller's ``filterwarnings`` mark) does not leak into later output."""
    import gc

    with pytest.raises(ValueError, match=pattern) as info:
        factory()
    del info
    gc.collect()
