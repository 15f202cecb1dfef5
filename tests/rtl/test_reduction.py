"""ReductionNetwork in Amaranth's simulator, bit-exact against
``sw_model.accel.reduction_net.apply_reduction``; latency; Verilog lint."""

import gc
import random
import subprocess
import warnings

import pytest
from amaranth.back import verilog
from amaranth.hdl import UnusedElaboratable
from amaranth.sim import Simulator

from fetta.rtl.reduction import ReductionNetwork
from fetta.sw_model.accel.ce_patterns import factorizations, pattern_k_reduction
from fetta.sw_model.accel.reduction_net import (apply_reduction, pack_reduction,
                                                route_reduction)

WIDTH = 16
BURST = 2  # data vectors streamed back to back under one config


def _wrap(v, width=WIDTH):
    v &= (1 << width) - 1
    return v - (1 << width) if v >> (width - 1) else v


def _random_partition(rng, lanes):
    order = list(range(lanes))
    rng.shuffle(order)
    used = order[:rng.randint(1, lanes)]
    groups, i = [], 0
    while i < len(used):
        size = max(1, min(rng.choice([1, 2, 3, 4, len(used) - i]), len(used) - i))
        groups.append(used[i:i + size])
        i += size
    return groups, rng.sample(range(lanes), len(groups))


def _requests(lanes, n_random, seed):
    rng = random.Random(seed)
    reqs = [_random_partition(rng, lanes) for _ in range(n_random)]
    n_ce, per_ce = lanes, 1
    while n_ce >= 2:
        for f in factorizations(n_ce):
            reqs.append(pattern_k_reduction(n_ce, per_ce, *f))
        n_ce, per_ce = n_ce // 2, per_ce * 2
    return reqs


def _run(dut, jobs):
    """For each (config, [data vectors]): hold config, stream the vectors on
    consecutive cycles with valid=1, then collect one output per out_valid cycle."""
    seen = []

    async def bench(ctx):
        sent = 0
        for config, burst in jobs:
            ctx.set(dut.config, config)
            for values in burst:
                ctx.set(dut.inputs, values)
                ctx.set(dut.valid, 1)
                await ctx.tick()
                sent += 1
                if ctx.get(dut.out_valid):
                    seen.append(list(ctx.get(dut.outputs)))
            ctx.set(dut.valid, 0)
            while len(seen) < sent:  # drain before the next config
                await ctx.tick()
                if ctx.get(dut.out_valid):
                    seen.append(list(ctx.get(dut.outputs)))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return seen


@pytest.mark.parametrize("lanes,n_random", [
    (2, 10), (4, 70), (8, 70), (16, 70),
    pytest.param(32, 40, marks=pytest.mark.slow),
    pytest.param(64, 40, marks=pytest.mark.slow),
])
def test_random_groupings_bit_exact(lanes, n_random):
    """Random partitions with random destinations, and the CE-array K-split pattern for
    every factorization, agree with the functional model on every output lane."""
    rng = random.Random(1000 + lanes)
    jobs, expected, reqs = [], [], []
    for groups, dests in _requests(lanes, n_random, seed=lanes):
        settings = route_reduction(lanes, groups, dests)
        burst = [[rng.randrange(-2 ** (WIDTH - 1), 2 ** (WIDTH - 1)) for _ in range(lanes)]
                 for _ in range(BURST)]
        for values in burst:
            model = apply_reduction(lanes, settings, values, WIDTH)
            for members, d in zip(groups, dests):
                assert model[d] == _wrap(sum(values[l] for l in members))
            expected.append(model)
            reqs.append((groups, dests))
        jobs.append((pack_reduction(lanes, settings), burst))
    seen = _run(ReductionNetwork(lanes, WIDTH), jobs)
    assert len(seen) == len(expected)
    for i, (got, want) in enumerate(zip(seen, expected)):
        assert got == want, f"vector {i} request {reqs[i]}: got {got}, want {want}"


def test_latency_n8_is_13_cycles():
    """N=8: gather Benes 2*3-1 = 5 stages, butterfly 3, scatter Benes 5: 13 registered
    stages, so a vector applied in cycle 0 appears (with out_valid) after 13 edges."""
    lanes = 8
    dut = ReductionNetwork(lanes, WIDTH)
    assert dut.LATENCY == 13
    groups, dests = [[0, 3, 5], [1, 2], [7]], [6, 0, 3]
    config = pack_reduction(lanes, route_reduction(lanes, groups, dests))
    values = [1, 20, 300, -4, 50, 600, 7, -8]
    arrival = []

    async def bench(ctx):
        ctx.set(dut.config, config)
        ctx.set(dut.inputs, values)
        ctx.set(dut.valid, 1)
        for cycle in range(1, 20):
            await ctx.tick()
            ctx.set(dut.valid, 0)
            ctx.set(dut.inputs, [0] * lanes)
            if ctx.get(dut.out_valid):
                arrival.append((cycle, list(ctx.get(dut.outputs))))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert len(arrival) == 1
    cycle, out = arrival[0]
    assert cycle == 13
    assert (out[6], out[0], out[3]) == (1 - 4 + 600, 20 + 300, -8)


@pytest.mark.parametrize("lanes,width", [(12, 8), (128, 8), (8, 0)])
def test_bad_parameters(lanes, width):
    # the half-built component is garbage: collect it here, without its unused warning
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnusedElaboratable)
        with pytest.raises(ValueError, match="lanes=|width="):
            ReductionNetwork(lanes, width)
        gc.collect()


@pytest.mark.parametrize("lanes", [8, 16])
def test_verilator_lint(lanes, tmp_path, verilator_cmd):
    dut = ReductionNetwork(lanes, 32)
    path = tmp_path / "reduction.v"
    path.write_text(verilog.convert(dut, name="reduction"))
    result = subprocess.run([*verilator_cmd, "--lint-only", "-Wno-fatal", str(path)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "%Error" not in result.stderr, result.stderr
