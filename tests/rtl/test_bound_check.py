"""BoundCheck: the Horner range check against a brute-force walk of the nest."""

import itertools

import numpy as np
from amaranth.sim import Simulator

from rtl.bound_check import BoundCheck

TERMS, COUNT_BITS, STREAMS, LIMIT = 3, 5, 2, 200


def brute_force_ok(counts, bases, spans, strides, limit):
    for s in range(len(bases)):
        for idx in itertools.product(*(range(c) for c in counts)):
            addr = bases[s] + sum(i * st for i, st in zip(idx, strides[s]))
            if addr < 0 or addr + spans[s] >= limit:
                return False
    return True


def random_nest(rng):
    counts = [int(rng.integers(1, 1 << COUNT_BITS)) if rng.random() < 0.3
              else int(rng.integers(1, 6)) for _ in range(TERMS)]
    strides = [[int(rng.choice([0, 1, -1, 3, -7, 40, -40, 32767, -32768]))
                if rng.random() < 0.3 else int(rng.integers(-12, 13))
                for _ in range(TERMS)] for _ in range(STREAMS)]
    bases = [int(rng.integers(0, 1 << 16)) if rng.random() < 0.1
             else int(rng.integers(0, LIMIT)) for _ in range(STREAMS)]
    spans = [int(rng.integers(0, 4)) for _ in range(STREAMS)]
    return counts, bases, spans, strides


def boundary_nests():
    """Nests whose extreme address is exactly 0 / limit - 1, and one past."""
    for delta in (0, 1):
        # hi = 10 + 4*7 + 3*20 + span 2 = 100 + 99 -> exactly limit - 1 (+delta)
        yield [5, 4, 1], [10 + delta, 0], [101, 0], [[7, 20, 0], [0, 0, 0]]
        # lo = 120 - 4*30 = 0 (-delta)
        yield [5, 1, 1], [120 - delta, 5], [0, 0], [[-30, 5, 5], [1, 1, 1]]


def test_bound_check_matches_brute_force():
    rng = np.random.default_rng(7)
    nests = list(boundary_nests()) + [random_nest(rng) for _ in range(60)]
    dut = BoundCheck(TERMS, COUNT_BITS, streams=STREAMS)
    assert dut.CYCLES == COUNT_BITS + 3
    results = []

    async def tb(ctx):
        ctx.set(dut.limit, LIMIT)
        for counts, bases, spans, strides in nests:
            for t in range(TERMS):
                ctx.set(dut.count[t], counts[t])
            for s in range(STREAMS):
                ctx.set(dut.base[s], bases[s])
                ctx.set(dut.span[s], spans[s])
                for t in range(TERMS):
                    ctx.set(dut.stride[s][t], strides[s][t])
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            waited = 1
            while not ctx.get(dut.done):
                await ctx.tick()
                waited += 1
                assert waited <= 100, "BoundCheck never raised done"
            results.append((waited, ctx.get(dut.ok)))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    for nest, (waited, ok) in zip(nests, results):
        assert waited == dut.CYCLES, (nest, waited)
        counts, bases, spans, strides = nest
        expect = brute_force_ok(counts, bases, spans, strides, LIMIT)
        assert bool(ok) == expect, (nest, ok, expect)
    assert [ok for _, ok in results[:4]] == [1, 1, 0, 0]   # exact fit, then one past
    assert 0 < sum(ok for _, ok in results) < len(results)
