"""The reconfigurable compute fabric: CE array with butterfly distribution and
reduction networks and the shared output stages."""

from amaranth import *
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from fetta.sw_model.accel.config import AccelConfig
from fetta.sw_model.accel.timing import timing

from .buffers import WORD_BITS
from .ce import ContractionEngine
from .distribution import DistributionNetwork
from .fabric_control import FabricControlSignature
from .output_stage import OutputStage
from .reduction import ReductionNetwork

__all__ = ["CEArray"]


def _delay(m, sig, cycles, name):
    """``sig`` delayed by ``cycles`` registers."""
    cur = sig
    for i in range(cycles):
        nxt = Signal.like(sig, name=f"{name}_d{i + 1}")
        m.d.sync += nxt.eq(cur)
        cur = nxt
    return cur


class CEArray(wiring.Component):
    """``n_ce`` contraction engines between two Benes distribution networks (A rows,
    B columns) and a reduction network feeding ``c_lanes`` output stages.

    Run-time mapping: the network settings (``a_net_cfg``, ``b_net_cfg``,
    ``red_cfg``) are registers, not elaboration parameters. With CE ``c = (ia*gk +
    ik)*gb + ib`` (see ``sw_model.accel.isa.Mapping``): the A network delivers A lane
    ``(ia*gk + ik)*pe_rows + r`` to row ``r`` of every CE with that ``(ia, ik)``
    (multicast over ``ib``); the B network delivers B lane ``(ib*gk + ik)*pe_cols + j``
    to column ``j`` (multicast over ``ia``); the reduction network adds the ``gk``
    partial tiles of each ``(ia, ib)`` and places column ``j`` of that sum on output
    lane ``(ia*gb + ib)*pe_cols + j``. Any other settings the routers produce
    (permutations, other groupings) run the same way.

    Output stages: ``config.out_lanes = c_lanes / out_share``. With ``out_share = S``
    each output stage ``o`` serves C lanes ``o, o + out_lanes, ...`` in turn: a shadow
    row stays on the reduction network's inputs for ``S`` cycles (phases), and in
    phase ``p`` stage ``o`` takes lane ``p*out_lanes + o``; ``out_mask`` marks the
    lanes of the phase (all lanes when ``S = 1``).

    Latency (cycles), from an operand row on ``a_vec``/``b_vec`` to its products in
    the accumulators: ``DIST = DistributionNetwork.LATENCY + config.mac_pipeline``
    (``self.dist_latency``). A tile whose last step enters at cycle ``t`` has its
    sums in the accumulators after cycle ``t + DIST``; the shadows take them in cycle
    ``t + DIST + 1`` (``capture``), and rows drain into the reduction network in
    cycles ``t+DIST+2 .. t+DIST+1+pe_rows*S`` (``config.drain_cycles``); phase ``p``
    of row ``r`` leaves the output stages at
    ``t + DIST + 2 + r*S + p + ReductionNetwork.LATENCY + OutputStage.LATENCY``
    (``out_valid``), together with its C row address and flat index: the tile's
    first row and index arrive on ``tile_addr``/``tile_idx`` with its last step
    (``in_last``) and hold until the next tile's last step (at least
    ``drain_cycles`` later), are sampled at the capture, and each later row adds 1 and
    ``row_stride_idx`` (``row_addr``/``row_idx`` step on the cycle ``drain_step`` is
    high: a row's last phase).

    Members:
        a_vec[a_lanes], b_vec[b_lanes]: one operand row each (from the buffers).
        ctl:                            the controller's control, flipped
                                        ``FabricControlSignature`` (rtl/fabric_control.py):
                                        ``in_valid``/``in_first``/``in_last`` step control
                                        aligned with the rows, packed network settings,
                                        per-lane flat-index offsets, the output-stage
                                        parameters, ``tile_addr``/``tile_idx`` (sampled
                                        with ``in_last``), ``row_stride_idx``, and
                                        ``pe_active`` back to the controller.
        drain_step:                     a shadow row's last phase enters the network.
        out[c_lanes], out_valid, out_addr: one finished output row (or phase of it).
        out_mask:                       C lanes of ``out`` written this cycle.
        draining:                       a drain is in progress.
    """

    def __init__(self, config: AccelConfig):
        self.config = config
        cfg = config
        self.a_net = DistributionNetwork(cfg.a_lanes, WORD_BITS, cfg.dist_pipeline)
        self.b_net = DistributionNetwork(cfg.b_lanes, WORD_BITS, cfg.dist_pipeline)
        assert self.a_net.LATENCY == self.b_net.LATENCY
        self.red_net = ReductionNetwork(cfg.c_lanes, cfg.acc_bits)
        # operand latency: distribution registers + the PEs' product register
        self.dist_latency = self.a_net.LATENCY + cfg.mac_pipeline
        self.red_latency = self.red_net.LATENCY
        self.os_latency = OutputStage.LATENCY
        # the pipeline built here is the one the cycle model and the controller assume
        self.timing = timing(cfg)
        if (self.dist_latency, self.red_latency, self.os_latency) != \
                (self.timing.dist, self.timing.red, self.timing.output):
            raise AssertionError(
                f"fabric latencies (dist, red, output) = {self.dist_latency, self.red_latency, self.os_latency}"
                f" differ from sw_model.accel.timing {self.timing.dist, self.timing.red, self.timing.output}")
        super().__init__({
            "a_vec": In(WORD_BITS).array(cfg.a_lanes),
            "b_vec": In(WORD_BITS).array(cfg.b_lanes),
            "ctl": In(FabricControlSignature(cfg)),
            "drain_step": Out(1),
            "out": Out(signed(16)).array(cfg.c_lanes),
            "out_valid": Out(1), "out_addr": Out(16), "out_mask": Out(cfg.c_lanes),
            "draining": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        R, C = cfg.pe_rows, cfg.pe_cols
        m.submodules.a_net = self.a_net
        m.submodules.b_net = self.b_net
        m.submodules.red_net = self.red_net
        m.d.comb += [self.a_net.config.eq(self.ctl.a_net_cfg),
                     self.b_net.config.eq(self.ctl.b_net_cfg),
                     self.red_net.config.eq(self.ctl.red_cfg)]
        for i in range(cfg.a_lanes):
            m.d.comb += self.a_net.inputs[i].eq(self.a_vec[i])
        for i in range(cfg.b_lanes):
            m.d.comb += self.b_net.inputs[i].eq(self.b_vec[i])

        valid = _delay(m, self.ctl.in_valid, self.dist_latency, "pe_valid")
        first = _delay(m, self.ctl.in_first, self.dist_latency, "pe_first")
        last = _delay(m, self.ctl.in_last, self.dist_latency, "pe_last")
        # the cycle after a tile's last step the shadows take the accumulators
        capture = _delay(m, valid & last, 1, "capture")
        # The tile's C row and index are sampled at the capture, dist_latency + 2
        # cycles after the controller registers them with in_last; the controller
        # changes them again no sooner than drain_cycles later (its drain stall), so
        # they only need delaying by what that spacing does not cover.
        hold = max(0, self.dist_latency + 2 - cfg.drain_cycles)
        tile_addr = _delay(m, self.ctl.tile_addr[:cfg.addr_bits], hold, "tile_addr")
        tile_idx = _delay(m, self.ctl.tile_idx, hold, "tile_idx")
        m.d.comb += self.ctl.pe_active.eq(valid)

        # Drain sequencer: after a tile's last step, one shadow row per S cycles.
        S, O = cfg.out_share, cfg.out_lanes
        draining = Signal()
        row = Signal(range(max(R, 2)))
        if S == 1:
            row_done = Const(1)
            phase = None
        else:
            phase = Signal(range(S))
            row_done = phase == S - 1
        row_addr = Signal(cfg.addr_bits)
        row_idx = Signal(32)
        with m.If(capture):
            m.d.sync += [draining.eq(1), row.eq(0), row_addr.eq(tile_addr),
                         row_idx.eq(tile_idx)]
            if phase is not None:
                m.d.sync += phase.eq(0)
        with m.Elif(draining):
            if phase is not None:
                m.d.sync += phase.eq(phase + 1)
            with m.If(row_done):
                m.d.sync += [row.eq(row + 1), row_addr.eq(row_addr + 1),
                             row_idx.eq(row_idx + self.ctl.row_stride_idx)]
                with m.If(row == R - 1):
                    m.d.sync += draining.eq(0)
        m.d.comb += [self.drain_step.eq(draining & row_done), self.draining.eq(draining)]

        for c in range(cfg.n_ce):
            ce = ContractionEngine(cfg)
            m.submodules[f"ce{c}"] = ce
            m.d.comb += [ce.valid.eq(valid), ce.first.eq(first), ce.last.eq(last),
                         ce.capture.eq(capture),
                         ce.drain_shift.eq(draining & row_done)]
            for r in range(R):
                m.d.comb += ce.a_in[r].eq(self.a_net.outputs[c * R + r])
            for j in range(C):
                m.d.comb += [ce.b_in[j].eq(self.b_net.outputs[c * C + j]),
                             self.red_net.inputs[c * C + j].eq(ce.row_out[j])]
        m.d.comb += self.red_net.valid.eq(draining)

        # The output stages' dither index ``idx + lane_index`` is added one cycle
        # ahead, from the delay lines' second-to-last taps, and registered: the
        # output stage's first pipeline stage then starts from a register.
        idx_early = _delay(m, row_idx, self.red_latency - 1, "row_idx")
        addr = _delay(m, row_addr, self.red_latency, "row_addr")
        if phase is not None:
            phase_early = _delay(m, phase, self.red_latency - 1, "red_phase")
            red_phase = _delay(m, phase_early, 1, "red_phase_last")
            out_phase = _delay(m, red_phase, self.os_latency, "out_phase")
        for o in range(O):
            os_ = OutputStage(acc_bits=cfg.acc_bits, steady_seed=True)  # one per instruction
            m.submodules[f"os{o}"] = os_
            if S == 1:
                acc, lane_index = self.red_net.outputs[o], self.ctl.lane_index[o]
            else:
                acc = Array(self.red_net.outputs[p * O + o] for p in range(S))[red_phase]
                lane_index = Array(self.ctl.lane_index[p * O + o]
                                   for p in range(S))[phase_early]
            index = Signal(32, name=f"os{o}_index", reset_less=True)
            m.d.sync += index.eq(idx_early + lane_index)
            m.d.comb += [
                os_.acc.eq(acc), os_.valid.eq(self.red_net.out_valid),
                os_.shift.eq(self.ctl.shift), os_.rounding.eq(self.ctl.rounding),
                os_.out_bits.eq(self.ctl.out_bits), os_.seed.eq(self.ctl.seed),
                os_.index.eq(index),
            ]
            for p in range(S):
                m.d.comb += self.out[p * O + o].eq(os_.out)
            if o == 0:
                m.d.comb += self.out_valid.eq(os_.out_valid)
        if S == 1:
            m.d.comb += self.out_mask.eq((1 << cfg.c_lanes) - 1)
        else:
            group = (1 << O) - 1
            m.d.comb += self.out_mask.eq(Array(Const(group << (p * O), cfg.c_lanes)
                                               for p in range(S))[out_phase])
        m.d.comb += self.out_addr.eq(_delay(m, addr, self.os_latency, "out_addr"))
        return m
