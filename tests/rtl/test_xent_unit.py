"""The softmax cross-entropy gradient row unit (``rtl/xent_unit.py``) and its divider
(``rtl/divider.py``) in Amaranth's simulator: every row's gradient equals the recipe's
``softmax_xent_grad`` (random logits, ties for the maximum, a single dominant class,
saturating output widths, batch sizes that are and are not powers of two, logit fracs
giving left and right shifts), ``correct`` equals argmax == label, and ``start`` to
``done`` takes ``xent_row_cycles(n)``."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from fetta.rtl.divider import SeqDivider
from fetta.rtl.xent_unit import XentRow
from fetta.sw_model.accel.xent import xent_row_cycles
from fetta.sw_model.train.quant_train import softmax_xent_grad


def _run_rows(rows):
    """Run ``rows`` = [(z row, frac, label, bsz, out_bits)] through one XentRow, one
    row per ``go``, answering each read request the next cycle (the buffers' read
    latency); returns per row (gradient codes, correct, cycles from go to done)."""
    dut = XentRow()
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    got = []

    async def bench(ctx):
        for z, frac, label, bsz, out_bits in rows:
            n = len(z)
            y = np.zeros(n, dtype=np.int64)
            y[label] = 1
            for port, v in ((dut.n, n), (dut.s, frac - 2), (dut.bsz, bsz),
                            (dut.out_bits, out_bits), (dut.go, 1)):
                ctx.set(port, v)
            cycles, g, pending, fed = 0, {}, None, 0
            while True:
                req = ctx.get(dut.step_req)
                if pending is not None:
                    ctx.set(dut.in_valid, 1)
                    ctx.set(dut.in_z, int(z[pending]))
                    ctx.set(dut.in_y, int(y[pending]))
                else:
                    ctx.set(dut.in_valid, 0)
                pending = None
                if req:
                    pending, fed = fed, fed + 1
                await ctx.tick()
                ctx.set(dut.go, 0)
                cycles += 1
                if ctx.get(dut.out_valid):
                    g[ctx.get(dut.out_index)] = ctx.get(dut.out_g)
                if ctx.get(dut.done):
                    break
                assert cycles < 100_000
            ctx.set(dut.in_valid, 0)
            await ctx.tick()       # the idle cycle between rows
            got.append(([g[j] for j in range(n)], ctx.get(dut.correct), cycles))

    sim.add_testbench(bench)
    sim.run()
    return got


def _cases(rng):
    out = []
    for i in range(40):
        n = int(rng.choice([2, 3, 10, 16]))
        frac = int(rng.choice([1, 2, 5, 9, 14, 20]))
        z = rng.integers(-32768, 32768, n) >> int(rng.integers(0, 15))
        if i % 5 == 1:
            z[:] = z.max()                      # every class tied for the maximum
        if i % 5 == 2:
            z[:] = -32768
            z[int(rng.integers(n))] = 32767     # one class takes all the probability
        bsz = int(rng.choice([2, 3, 7, 64, 100, 8192]))
        out.append((z, frac, int(rng.integers(n)), bsz, int(rng.choice([16, 16, 8, 3]))))
    return out


def test_rows_equal_the_recipe_and_cycle_formula():
    rows = _cases(np.random.default_rng(7))
    results = _run_rows(rows)
    for (z, frac, label, bsz, out_bits), (g, correct, cycles) in zip(rows, results):
        # the recipe divides by the batch size it sees: give it bsz copies of the row
        zb = np.repeat(z[None, :], bsz, axis=0)
        want, _ = softmax_xent_grad(zb, frac, np.full(bsz, label), len(z), out_bits)
        assert g == want[0].tolist(), (z.tolist(), frac, label, bsz, out_bits)
        assert correct == int(z.argmax() == label)
        assert cycles == xent_row_cycles(len(z))
    # the cases reach both outcomes and the output saturation
    assert {c for _, c, _ in results} == {0, 1}
    assert any(max(abs(v) for v in g) == (1 << (ob - 1)) for (_, _, _, _, ob), (g, _, _)
               in zip(rows, results))


@pytest.mark.parametrize("per_cycle, latency", [(1, 32), (2, 17), (3, 12), (4, 9)])
@pytest.mark.parametrize("a, d", [(0, 1), (1, 1), (2**31 - 1, 1), (2**31 - 1, 2**21 - 1),
                                  (123456789, 1000), (5, 7), (2**30 + 3, 2)])
def test_divider_quotient_remainder_latency(a, d, per_cycle, latency):
    dut = SeqDivider(31, 21, per_cycle)
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    seen = {}

    async def bench(ctx):
        ctx.set(dut.a, a)
        ctx.set(dut.d, d)
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        cycles = 1
        while not ctx.get(dut.done):
            await ctx.tick()
            cycles += 1
        seen.update(q=ctx.get(dut.q), r=ctx.get(dut.r), cycles=cycles)

    sim.add_testbench(bench)
    sim.run()
    assert (seen["q"], seen["r"]) == divmod(a, d)
    assert seen["cycles"] == SeqDivider.LATENCY(31, per_cycle) == latency


@pytest.mark.parametrize("seed", range(6))
def test_divider_continues_a_division_from_its_partial_remainder(seed):
    """The update unit's use (``DIV_BITS`` = 24 low quotient bits, four per cycle, from
    a partial remainder ``r0 < d``): ``q, r = divmod(r0 * 2**24 + a, d)``."""
    rng = np.random.default_rng(seed)
    d = int(rng.integers(1, 2**17))
    r0, a = int(rng.integers(0, d)), int(rng.integers(0, 2**24))
    dut = SeqDivider(24, 17, 4)
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    seen = {}

    async def bench(ctx):
        ctx.set(dut.a, a)
        ctx.set(dut.r0, r0)
        ctx.set(dut.d, d)
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        while not ctx.get(dut.done):
            await ctx.tick()
        seen.update(q=ctx.get(dut.q), r=ctx.get(dut.r))

    sim.add_testbench(bench)
    sim.run()
    assert (seen["q"], seen["r"]) == divmod(r0 * 2**24 + a, d)
