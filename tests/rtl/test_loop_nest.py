"""LoopNest: the address sequence, at_max and last flags against nested Python loops
(deltas from ``sw_model.accel.isa.loop_deltas``, which this also checks)."""

import itertools

import numpy as np
from amaranth.sim import Simulator

from fetta.rtl.loop_nest import LoopNest
from fetta.sw_model.accel.isa import loop_deltas

LEVELS = 3


def expected(counts, base, strides, width):
    seq = []
    for idx in itertools.product(*(range(c) for c in counts)):
        addr = (base + sum(i * s for i, s in zip(idx, strides))) % (1 << width)
        at_max = [i == c - 1 for i, c in zip(idx, counts)]
        seq.append((addr, at_max, all(at_max)))
    return seq


def test_loop_nest_walks_every_element_in_order():
    rng = np.random.default_rng(5)
    nests = [([1, 1, 1], 7, [3, 4, 5]), ([2, 1, 3], 0, [100, 9, -1])]
    for _ in range(12):
        counts = [int(rng.integers(1, 5)) for _ in range(LEVELS)]
        nests.append((counts, int(rng.integers(0, 1 << 16)),
                      [int(rng.integers(-300, 300)) for _ in range(LEVELS)]))
    dut = LoopNest(LEVELS, {"a": 16, "b": 8, "c": 8}, count_bits=4, still={"c": [LEVELS - 1]})
    got = []

    async def tb(ctx):
        for n, (counts, base, strides) in enumerate(nests):
            da = loop_deltas(counts, strides, 16)
            db = loop_deltas(counts, [2 * s for s in strides], 8)
            ctx.set(dut.wr_en, 1)                  # fill the delta tables
            # c: the strides of a, but it stands still when the innermost level moves
            dc = loop_deltas(counts[:-1], strides[:-1], 8) + [0x5A]   # never added
            for k, table in enumerate((da, db, dc)):
                for i in range(LEVELS):
                    ctx.set(dut.wr_stream, k)
                    ctx.set(dut.wr_level, i)
                    ctx.set(dut.wr_data, table[i])
                    await ctx.tick()
            ctx.set(dut.wr_en, 0)
            for i in range(LEVELS):
                ctx.set(dut.n[i], counts[i] - 1)
            ctx.set(dut.base_a, base)
            ctx.set(dut.base_b, base & 0xFF)
            ctx.set(dut.base_c, base & 0xFF)
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            seq = []
            for cyc in range(200):
                step = (cyc + n) % 3 != 0          # idle cycles in between
                seq.append((ctx.get(dut.addr_a), (ctx.get(dut.addr_b), ctx.get(dut.addr_c)),
                            [bool(ctx.get(dut.at_max[i])) for i in range(LEVELS)],
                            bool(ctx.get(dut.last))))
                if seq[-1][3] and step:
                    break
                ctx.set(dut.step, step)
                await ctx.tick()
                if not step:
                    seq.pop()                      # no step: same element again
            ctx.set(dut.step, 0)
            got.append(seq)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    for (counts, base, strides), seq in zip(nests, got):
        exp_a = expected(counts, base, strides, 16)
        exp_b = expected(counts, base & 0xFF, [2 * s for s in strides], 8)
        assert [(a, m, l) for a, _, m, l in seq] == exp_a, (counts, base, strides)
        assert [b for _, (b, _), _, _ in seq] == [b for b, _, _ in exp_b]
        exp_c = expected(counts, base & 0xFF, strides[:-1] + [0], 8)
        assert [c for _, (_, c), _, _ in seq] == [c for c, _, _ in exp_c]


def test_loop_deltas_reproduce_the_strided_walk():
    """Adding the advancing level's delta at every step visits base + sum c_i s_i."""
    rng = np.random.default_rng(11)
    for _ in range(50):
        levels = int(rng.integers(1, 6))
        counts = [int(rng.integers(1, 5)) for _ in range(levels)]
        strides = [int(rng.integers(-50, 50)) for _ in range(levels)]
        deltas = loop_deltas(counts, strides)
        points = list(itertools.product(*(range(c) for c in counts)))
        addr = 0
        for prev, cur in zip(points, points[1:]):
            level = min(i for i in range(levels) if cur[i] != prev[i])   # it advanced
            addr += deltas[level]
            assert addr == sum(c * s for c, s in zip(cur, strides))
