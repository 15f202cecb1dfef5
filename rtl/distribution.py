"""Butterfly (Benes) distribution network: permutation and multicast between buffer
banks and CE inputs."""

from amaranth import *
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from fetta.sw_model.accel.benes import (DISTRIBUTION_LATENCY, benes_wiring,
                                        distribution_n_switch_bits, distribution_stages)
from fetta.sw_model.accel.switch_settings import lanes_log2

__all__ = ["DistributionNetwork"]


class DistributionNetwork(wiring.Component):
    """An ``N``-lane Benes network of 2x2 switches that pass, swap or broadcast.

    Computes ``outputs[d] = inputs[src(d)]`` for the lane mapping ``src`` encoded in
    ``config``: any permutation, and the multicasts the CE-array mappings use (one
    vector to all CEs, tiles to groups of CEs). Settings come from
    ``sw_model.accel.benes.route_distribution`` and are packed by ``pack_distribution``;
    ``sw_model.accel.benes.apply_distribution`` is the bit-exact functional model.

    Topology: ``2*log2(N) - 1`` stages of ``N/2`` switches. A Benes network of ``N``
    lanes is one switch column, two Benes networks of ``N/2`` lanes, one switch column;
    unrolling the recursion down to 2 lanes (one stage) gives ``2*(log2 N - 1) + 1``
    stages. The wiring between stages is ``sw_model.accel.benes.benes_wiring(N)``.

    Switch ``s`` of stage ``t`` has setting ``config[2*(t*N/2 + s) : +2]``:
    0 pass, 1 swap, 2 upper input to both outputs, 3 lower input to both outputs.

    Latency: ``LATENCY = 1 + pipeline`` cycles. With ``pipeline = 0`` the switch
    stages are combinational and ``outputs`` is one register, so ``outputs`` shows in
    cycle ``k + 1`` what ``inputs`` held in cycle ``k``. Each extra pipeline register
    cuts the switch stages into evenly long runs (for clock rate on wide networks);
    ``config`` is not pipelined (it is held steady while data flows).

    Parameters
    ----------
    lanes : int
        ``N``, a power of two in 2..64.
    width : int
        Bits per lane (raw data, carried unchanged).
    pipeline : int
        Extra register stages inside the network, 0..(stages - 1) (default 0).

    Members
    -------
    inputs : In(ArrayLayout(unsigned(width), lanes))
        One value per input lane (buffer bank).
    config : In(unsigned(lanes * (2*log2(lanes) - 1)))
        Packed switch settings, stage-major, 2 bits per switch, LSB first.
    outputs : Out(ArrayLayout(unsigned(width), lanes))
        Registered output lanes (CE inputs).
    """

    def __init__(self, lanes, width, pipeline: int = 0):
        lanes_log2(lanes)
        if isinstance(width, bool) or not isinstance(width, int) or not 1 <= width <= 64:
            raise ValueError(f"width={width!r} out of range; allowed 1..64")
        self.lanes = lanes
        self.width = width
        self.n_stages = distribution_stages(lanes)
        if isinstance(pipeline, bool) or not isinstance(pipeline, int) or \
                not 0 <= pipeline < self.n_stages:
            raise ValueError(f"pipeline={pipeline!r} out of range; allowed "
                             f"0..{self.n_stages - 1} for {lanes} lanes")
        self.pipeline = pipeline
        self.LATENCY = DISTRIBUTION_LATENCY + pipeline
        # register after these stages: evenly spaced cuts
        self.cuts = {(k * self.n_stages) // (pipeline + 1) - 1
                     for k in range(1, pipeline + 1)}
        super().__init__({
            "inputs": In(data.ArrayLayout(unsigned(width), lanes)),
            "config": In(unsigned(distribution_n_switch_bits(lanes))),
            "outputs": Out(data.ArrayLayout(unsigned(width), lanes)),
        })

    def elaborate(self, platform):
        m = Module()
        n_lanes, half = self.lanes, self.lanes // 2
        wiring_ = benes_wiring(n_lanes)
        cur = [self.inputs[p] for p in range(n_lanes)]
        for t in range(self.n_stages):
            out = [Signal(self.width, name=f"stage{t}_out{p}") for p in range(n_lanes)]
            for s in range(half):
                code = self.config[2 * (t * half + s):2 * (t * half + s) + 2]
                upper, lower = cur[2 * s], cur[2 * s + 1]
                # upper out: lower input for codes 1, 3; lower out: upper input for 1, 2
                m.d.comb += [
                    out[2 * s].eq(Mux(code[0], lower, upper)),
                    out[2 * s + 1].eq(Mux(code[0] ^ code[1], upper, lower)),
                ]
            if t in self.cuts:
                regs = [Signal(self.width, name=f"stage{t}_reg{p}", reset_less=True)
                        for p in range(n_lanes)]
                m.d.sync += [r.eq(o) for r, o in zip(regs, out)]
                out = regs
            if t < self.n_stages - 1:
                nxt = [None] * n_lanes
                for p, q in enumerate(wiring_[t]):
                    nxt[q] = out[p]
                cur = nxt
            else:
                cur = out
        for p in range(n_lanes):
            m.d.sync += self.outputs[p].eq(cur[p])
        return m
