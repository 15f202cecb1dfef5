"""BoundCheck: the serial range check and the deltas it derives, against a brute-force
walk of the nest and ``sw_model.accel.isa.loop_deltas``, reading a real CONTRACT payload;
its length equals ``sw_model.accel.isa.check_cycles`` of the CONTRACT's counts."""

import itertools

import numpy as np
from amaranth.sim import Simulator

from fetta.rtl.bound_check import BoundCheck
from fetta.sw_model.accel.isa import (CHECK_PASSES, CHECK_STREAMS, COUNT_BITS, COUNT_MAX, CW,
                                      N_LEVELS, Contract, Level, check_cycles, loop_deltas)

DEPTH, ADDR_BITS, C_SPAN = 256, 8, 3


def walk_ok(counts, base, strides, span):
    """Every address of the nest in [0, DEPTH - span)?  Brute force when small,
    else the box's extreme corners (a linear form is extreme at a corner)."""
    if np.prod(counts) <= 4096:
        addrs = [base + sum(i * s for i, s in zip(idx, strides))
                 for idx in itertools.product(*(range(c) for c in counts))]
        return min(addrs) >= 0 and max(addrs) + span < DEPTH
    lo = base + sum(min(0, (c - 1) * s) for c, s in zip(counts, strides))
    hi = base + sum(max(0, (c - 1) * s) for c, s in zip(counts, strides))
    return lo >= 0 and hi + span < DEPTH


def expected(ins: Contract):
    outer = [lv.count for lv in ins.levels]
    counts = outer + [ins.k_count]
    sa = [lv.stride_a for lv in ins.levels] + [ins.k_stride_a]
    sb = [lv.stride_b for lv in ins.levels] + [ins.k_stride_b]
    sc = [lv.stride_c for lv in ins.levels]
    si = [lv.stride_idx for lv in ins.levels]
    ok = (walk_ok(counts, ins.base_a, sa, 0) and walk_ok(counts, ins.base_b, sb, 0)
          and walk_ok(outer, ins.base_c, sc, C_SPAN))
    deltas = {"a": loop_deltas(counts, sa, ADDR_BITS), "b": loop_deltas(counts, sb, ADDR_BITS),
              "c": loop_deltas(outer, sc, ADDR_BITS), "idx": loop_deltas(outer, si, 32)}
    return ok, deltas


def random_contract(rng):
    def count():
        return int(rng.integers(1, COUNT_MAX + 1)) if rng.random() < 0.15 \
            else int(rng.integers(1, 5))

    def stride():
        return int(rng.choice([0, 1, -1, 3, -7, 40, -40, 32767, -32768])) \
            if rng.random() < 0.3 else int(rng.integers(-12, 13))

    levels = tuple(Level(count(), stride(), stride(), stride(),
                         int(rng.integers(-2**31, 2**31))) for _ in range(N_LEVELS))
    return Contract(base_a=int(rng.integers(0, DEPTH)), base_b=int(rng.integers(0, DEPTH)),
                    base_c=int(rng.integers(0, DEPTH - C_SPAN)), k_count=count(),
                    k_stride_a=stride(), k_stride_b=stride(), levels=levels)


def boundary_contracts():
    """Nests whose extreme address is exactly 0 / DEPTH - 1, and one past."""
    one = Level()
    for d in (0, 1):
        # A: hi = 10 + 4*7 + 3*20 + 5*31 = 253 (+d) ... limit 256 - 2 (+ d: one past)
        yield Contract(base_a=10 + d + 2, k_count=6, k_stride_a=31, k_stride_b=0,
                       levels=(Level(5, 7, 0, 0, 0), Level(4, 20, 0, 0, 0), one, one))
        # C: hi = 100 + 3*50 + span 3 = 253 ... + 2 + d
        yield Contract(base_c=100 + 2 + d, k_stride_a=0, k_stride_b=0,
                       levels=(Level(4, 0, 0, 50, 0), one, one, one))
        # B: lo = 120 - 4*30 = 0 (-d)
        yield Contract(base_b=120 - d, k_count=5, k_stride_a=0, k_stride_b=-30,
                       levels=(one, one, one, one))


# Counts all 1: every pass is its accumulate cycle alone. Mixed counts: outer levels
# 1, 2, 5, COUNT_MAX (count - 1 of 0, 1, 3, 13 bits; 4 passes each: a, b, c, idx) and
# k_count 3 (2 bits; 2 passes: a, b): 18 accumulate cycles + 4 * 17 + 2 * 2 Horner
# steps + 1.
SHORT = {Contract(k_stride_a=0, k_stride_b=0): len(CHECK_PASSES) + 1,
         Contract(k_count=3, k_stride_a=1, k_stride_b=0,
                  levels=(Level(1, 0, 0, 0, 0), Level(2, 1, 3, 4, 7), Level(5, 2, 0, 0, 1),
                          Level(COUNT_MAX, 0, 0, 0, 5))): 18 + 4 * 17 + 2 * 2 + 1}


def test_bound_check_matches_brute_force_and_deltas():
    rng = np.random.default_rng(7)
    contracts = list(boundary_contracts()) + list(SHORT) + \
        [random_contract(rng) for _ in range(40)]
    dut = BoundCheck(COUNT_BITS, ADDR_BITS, DEPTH, C_SPAN, then_word=CW.BASE_IDX)
    assert dut.CYCLES == check_cycles() == check_cycles([COUNT_MAX] * (N_LEVELS + 1))
    results = []

    async def tb(ctx):
        for ins in contracts:
            payload = ins.encode()[1:]
            counts = ins.counts
            for t, c in enumerate(counts):
                ctx.set(dut.n[t], c - 1)
            ctx.set(dut.base_a, ins.base_a)
            ctx.set(dut.base_b, ins.base_b)
            ctx.set(dut.base_c, ins.base_c)
            ctx.set(dut.start, 1)
            waited = 0
            deltas = {s: {} for s in CHECK_STREAMS}
            assert ctx.get(dut.word) == CHECK_PASSES[0].word    # idle: the first pass's
            while True:
                word = ctx.get(dut.word)
                if ctx.get(dut.delta_wr):
                    table = deltas[CHECK_STREAMS[ctx.get(dut.delta_stream)]]
                    level = ctx.get(dut.delta_level)
                    assert level not in table, "a delta written twice"
                    table[level] = ctx.get(dut.delta_data)
                await ctx.tick()
                ctx.set(dut.start, 0)
                ctx.set(dut.data, payload[word])     # a synchronous read port
                waited += 1
                if ctx.get(dut.done):
                    assert word == CW.BASE_IDX      # then_word, its data in the done cycle
                    break
                assert waited <= 2 * check_cycles(), "BoundCheck never raised done"
            widths = {"a": ADDR_BITS, "b": ADDR_BITS, "c": ADDR_BITS, "idx": 32}
            deltas = {s: [v % (1 << widths[s]) for _, v in sorted(t.items())]
                      for s, t in deltas.items()}
            results.append((waited, ctx.get(dut.ok), deltas))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    for ins, (waited, ok, deltas) in zip(contracts, results):
        assert waited == check_cycles(ins.counts) <= dut.CYCLES, (ins, waited)
        if ins in SHORT:
            assert waited == SHORT[ins], (ins, waited)
        want_ok, want_deltas = expected(ins)
        assert bool(ok) == want_ok, (ins, ok, want_ok)
        for s in want_deltas:
            assert deltas[s] == want_deltas[s], (s, ins, deltas[s], want_deltas[s])
    assert [ok for _, ok, _ in results[:6]] == [1, 1, 1, 0, 0, 0]   # exact fit, one past
    assert 0 < sum(ok for _, ok, _ in results) < len(results)
