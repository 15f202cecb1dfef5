"""CE array: hand-derived tile latency and Verilog emission of the presets."""

import subprocess

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.sim import Simulator

from fetta.rtl.ce_array import CEArray
from fetta.rtl.output_stage import OutputStage
from fetta.sw_model.accel import benes, reduction_net
from fetta.sw_model.accel.timing import OUTPUT_STAGE_LATENCY, timing
from fetta.sw_model.accel.config import PRESETS, AccelConfig
from fetta.sw_model.arith.fixedpoint import wrap


def test_timing_matches_rtl():
    """sw_model.accel.timing is what the RTL is built with: the fabric's pipeline
    latencies, the bound check's longest run, the controller's tail."""
    from fetta.rtl.bound_check import BoundCheck
    from fetta.rtl.controller import Controller
    from fetta.rtl.reduction import ReductionNetwork
    from fetta.sw_model.accel.isa import COUNT_BITS, COUNT_MAX, N_LEVELS
    assert OUTPUT_STAGE_LATENCY == OutputStage.LATENCY
    shared = {"tiny-share4": PRESETS["tiny"].replace(out_share=4),
              "tiny-dist2": PRESETS["tiny"].replace(dist_pipeline=2),
              "tiny-mac1": PRESETS["tiny"].replace(mac_pipeline=1)}
    for name, cfg in {**PRESETS, **shared}.items():
        tm = timing(cfg)
        arr = CEArray(cfg)
        ctl = Controller(cfg, arr.timing)
        assert (arr.dist_latency, arr.red_latency, arr.os_latency) == \
            (tm.dist, tm.red, tm.output), name
        assert arr.dist_latency == 1 + cfg.dist_pipeline + cfg.mac_pipeline, name
        assert arr.red_latency == ReductionNetwork(cfg.c_lanes, cfg.acc_bits).LATENCY, name
        check = BoundCheck(COUNT_BITS, cfg.addr_bits, cfg.bank_depth, cfg.pe_rows - 1, then_word=5)
        assert check.CYCLES == tm.check_cycles((COUNT_MAX,) * (N_LEVELS + 1)), name
        assert tm.tail == ctl.tail_cycles == (1 + tm.dist + 1 + cfg.drain_cycles + tm.red
                                              + OutputStage.LATENCY), name


def test_fabric_refuses_a_timing_it_does_not_build(monkeypatch):
    """A pipeline change in the RTL that the timing model does not know stops the
    build instead of letting the cycle model drift."""
    monkeypatch.setattr(OutputStage, "LATENCY", OutputStage.LATENCY + 1)
    with pytest.raises(AssertionError, match="differ from sw_model.accel.timing"):
        CEArray(PRESETS["tiny"])


def _setup_gk2_tile(ctx, dut, dests):
    """Network settings of the gk=2 mapping on 2 CEs of 4x4 PEs (CE c = ik; A lane
    ik*4 + r, B lane ik*4 + j; column j's two partial sums to C lane dests[j])."""
    a_set = benes.route_distribution(8, [(c * 4 + r) for c in range(2) for r in range(4)])
    b_set = benes.route_distribution(8, [(c * 4 + j) for c in range(2) for j in range(4)])
    r_set = reduction_net.route_reduction(8, [[j, 4 + j] for j in range(4)], dests)
    ctx.set(dut.ctl.a_net_cfg, benes.pack_distribution(8, a_set))
    ctx.set(dut.ctl.b_net_cfg, benes.pack_distribution(8, b_set))
    ctx.set(dut.ctl.red_cfg, reduction_net.pack_reduction(8, r_set))
    ctx.set(dut.ctl.out_bits, 16)


def _feed_gk2_tile(ctx, dut, cyc, A, B):
    """Cycles 0..3 present the tile's 4 reduction steps (2 K values each)."""
    if cyc < 4:
        for ik in range(2):
            k = cyc * 2 + ik
            for r in range(4):
                ctx.set(dut.a_vec[ik * 4 + r], int(A[r, k]) & 0xFFFF)
            for j in range(4):
                ctx.set(dut.b_vec[ik * 4 + j], int(B[k, j]) & 0xFFFF)
        ctx.set(dut.ctl.in_valid, 1)
        ctx.set(dut.ctl.in_first, cyc == 0)
        ctx.set(dut.ctl.in_last, cyc == 3)
    else:
        ctx.set(dut.ctl.in_valid, 0)


def test_4x4_tile_k8_latency_and_values():
    """Two CEs of 4x4 PEs, K split over both (gk=2): a 4x4 output tile with K = 8
    (4 steps per CE). Hand derivation, cycles counted from the first operand row
    entering the fabric (cycle 0):
      rows enter at cycles 0..3 (4 steps), the last with in_last;
      distribution output register: +1  -> PEs see the last step at cycle 4;
      the shadows take the accumulators at cycle 5;
      drain rows 0..3 enter the reduction network at cycles 6..9;
      reduction network, 8 lanes: 5*3-2 = 13 registered stages -> 19..22;
      output stage: 4 -> row r leaves at cycle 23 + r; the tile's last row at 26.
    """
    cfg = AccelConfig(n_ce=2, pe_rows=4, pe_cols=4)
    dut = CEArray(cfg)
    assert dut.dist_latency == 1 and dut.red_latency == 13 and dut.os_latency == 4
    rng = np.random.default_rng(0)
    A = rng.integers(-1000, 1000, (4, 8))
    B = rng.integers(-1000, 1000, (8, 4))
    seen = []

    async def tb(ctx):
        _setup_gk2_tile(ctx, dut, list(range(4)))
        for cyc in range(30):
            _feed_gk2_tile(ctx, dut, cyc, A, B)
            ctx.set(dut.ctl.tile_addr, 100)      # sampled with in_last (cycle 3)
            if ctx.get(dut.out_valid):
                seen.append((cyc, ctx.get(dut.out_addr),
                             [ctx.get(dut.out[d]) for d in range(4)]))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    assert [c for c, _, _ in seen] == [23, 24, 25, 26]
    expect = np.clip(wrap(A @ B, 32), -32768, 32767)
    for r, (_, addr, row) in enumerate(seen):
        assert addr == 100 + r
        assert row == list(expect[r])


def test_shared_output_stage_drains_a_row_in_out_share_phases():
    """The tile of the test above with ``out_share = 2`` (4 output stages for 8 C
    lanes; tile columns 0..3 routed to lanes 0, 1, 4, 5): the drain holds each shadow
    row for 2 cycles, so row r's phases enter the reduction network at 6 + 2r and
    7 + 2r; phase p leaves the output stages 17 cycles later (13 + 4) with lanes
    4p..4p+3 masked in; the C row address advances once per row (drain_step on the
    row's last phase)."""
    cfg = AccelConfig(n_ce=2, pe_rows=4, pe_cols=4, out_share=2)
    assert cfg.out_lanes == 4 and cfg.drain_cycles == 8
    dut = CEArray(cfg)
    rng = np.random.default_rng(1)
    A = rng.integers(-1000, 1000, (4, 8))
    B = rng.integers(-1000, 1000, (8, 4))
    lanes_of = [0, 1, 4, 5]
    seen, steps = [], []

    async def tb(ctx):
        _setup_gk2_tile(ctx, dut, lanes_of)
        for cyc in range(40):
            _feed_gk2_tile(ctx, dut, cyc, A, B)
            ctx.set(dut.ctl.tile_addr, 100 if cyc >= 3 else 0)   # from in_last on, held
            if ctx.get(dut.drain_step):
                steps.append(cyc)   # the row address advances after the last phase
            if ctx.get(dut.out_valid):
                seen.append((cyc, ctx.get(dut.out_addr), ctx.get(dut.out_mask),
                             [ctx.get(dut.out[d]) for d in range(8)]))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    assert steps == [7, 9, 11, 13]                       # last phase of rows 0..3
    assert [c for c, _, _, _ in seen] == list(range(23, 31))
    expect = np.clip(wrap(A @ B, 32), -32768, 32767)
    for i, (_, addr, mask, lanes) in enumerate(seen):
        r, p = divmod(i, 2)
        assert addr == 100 + r
        assert mask == 0xF << (4 * p)
        for j in (2 * p, 2 * p + 1):
            d = lanes_of[j]
            assert lanes[d] == expect[r, j], (r, p, j, lanes[d], expect[r, j])


@pytest.mark.parametrize("preset", ["tiny", "ice40", "ecp5"])
def test_fabric_converts_to_verilog_and_lints(preset, tmp_path, verilator_cmd):
    text = verilog.convert(CEArray(PRESETS[preset]), name="fetta_fabric")
    path = tmp_path / "fabric.v"
    path.write_text(text)
    proc = subprocess.run([*verilator_cmd, "--lint-only", "-Wno-fatal", "-Wno-WIDTH",
                           "-Wno-UNUSEDSIGNAL", "--top-module", "fetta_fabric", str(path)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "%Error" not in proc.stderr
