"""Butterfly reduction network: grouped reduction and reordering between CE outputs and
output banks, pipelined."""

from amaranth import *
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from fetta.sw_model.accel.benes import benes_wiring
from fetta.sw_model.accel.reduction_net import (RED_ADD_LOWER, RED_ADD_UPPER, RED_PASS,
                                                RED_SWAP, butterfly_pair, reduction_latency,
                                                reduction_n_switch_bits,
                                                reduction_stage_kinds)
from fetta.sw_model.accel.switch_settings import lanes_log2

__all__ = ["ReductionNetwork"]


class ReductionNetwork(wiring.Component):
    """An ``N``-lane pipelined network of 2x2 pass/swap/add switches that sums any
    partition of (a subset of) its input lanes into groups and puts each group's sum
    on any chosen distinct output lane, in one pass.

    Computes ``outputs[dests[g]] = sum(inputs[l] for l in groups[g])`` modulo
    ``2**width`` (two's complement wrap), for the ``(groups, dests)`` encoded in
    ``config`` by ``sw_model.accel.reduction_net.route_reduction`` /
    ``pack_reduction``. Other output lanes carry don't-care values, exactly those of
    the functional model ``sw_model.accel.reduction_net.apply_reduction``.

    Stage count, for ``n = log2(N)``:

    * ``2n - 1`` gather stages: a Benes network (pass/swap) that brings each group's
      members next to each other, groups in order;
    * ``n`` butterfly stages: stage ``b`` pairs lanes ``i`` and ``i + 2**b``; it is the
      transpose of Lee's broadcast-banyan copy network and reduces the back-to-back
      intervals to one lane per group, group ``g`` on lane ``g``;
    * ``2n - 1`` scatter stages: a Benes network moving lane ``g`` to ``dests[g]``.

    Total ``5n - 2`` stages (8 for N=4, 13 for N=8, 18 for N=16, 28 for N=64).

    Switch codes (2 bits): in the butterfly stages 0 pass, 1 swap, 2 add-upper (upper
    output ``a + b``, lower output passes ``b``), 3 add-lower (lower output ``a + b``,
    upper output passes ``a``), with ``a``/``b`` the upper/lower inputs. The Benes
    stages have no adders: code bit 0 selects swap, bit 1 is ignored. Switch ``s`` of
    stage ``t`` reads ``config[2*(t*N/2 + s) : +2]``. Benes wiring is
    ``sw_model.accel.benes.benes_wiring``; butterfly switch lanes are
    ``sw_model.accel.reduction_net.butterfly_pair``.

    Latency: every stage ends in a register, so ``LATENCY = 5*log2(N) - 2`` cycles from
    ``inputs``/``valid`` to ``outputs``/``out_valid``. A new input vector may enter
    every cycle. ``config`` is not pipelined: hold it steady while data flows.

    Parameters
    ----------
    lanes : int
        ``N``, a power of two in 2..64.
    width : int
        Bits per lane; sums wrap modulo ``2**width``.

    Members
    -------
    inputs : In(ArrayLayout(signed(width), lanes))
        Partial sums, one per lane (CE output columns).
    valid : In(1)
        ``inputs`` carries data this cycle.
    config : In(unsigned(lanes * (5*log2(lanes) - 2)))
        Packed switch settings, stage-major, 2 bits per switch, LSB first.
    outputs : Out(ArrayLayout(signed(width), lanes))
        Group sums on their destination lanes.
    out_valid : Out(1)
        ``valid`` delayed by ``LATENCY`` cycles.
    """

    def __init__(self, lanes, width):
        lanes_log2(lanes)
        if isinstance(width, bool) or not isinstance(width, int) or not 1 <= width <= 64:
            raise ValueError(f"width={width!r} out of range; allowed 1..64")
        self.lanes = lanes
        self.width = width
        super().__init__({
            "inputs": In(data.ArrayLayout(signed(width), lanes)),
            "valid": In(1),
            "config": In(unsigned(reduction_n_switch_bits(lanes))),
            "outputs": Out(data.ArrayLayout(signed(width), lanes)),
            "out_valid": Out(1),
        })

    @property
    def LATENCY(self):
        return reduction_latency(self.lanes)

    def elaborate(self, platform):
        m = Module()
        n_lanes, half, width = self.lanes, self.lanes // 2, self.width
        wiring_ = benes_wiring(n_lanes)
        kinds = reduction_stage_kinds(n_lanes)
        cur = [self.inputs[p] for p in range(n_lanes)]
        for t, (kind, idx) in enumerate(kinds):
            last = t == len(kinds) - 1
            if last:
                out = [self.outputs[p] for p in range(n_lanes)]
            else:
                out = [Signal(signed(width), name=f"stage{t}_out{p}")
                       for p in range(n_lanes)]
            for s in range(half):
                code = self.config[2 * (t * half + s):2 * (t * half + s) + 2]
                if kind == "butterfly":
                    i0, i1 = butterfly_pair(s, idx)
                    a, b = cur[i0], cur[i1]
                    total = Signal(signed(width), name=f"stage{t}_sum{s}")
                    m.d.comb += total.eq(a + b)  # truncation to width = wrap
                    with m.Switch(code):
                        with m.Case(RED_PASS):
                            m.d.sync += [out[i0].eq(a), out[i1].eq(b)]
                        with m.Case(RED_SWAP):
                            m.d.sync += [out[i0].eq(b), out[i1].eq(a)]
                        with m.Case(RED_ADD_UPPER):
                            m.d.sync += [out[i0].eq(total), out[i1].eq(b)]
                        with m.Case(RED_ADD_LOWER):
                            m.d.sync += [out[i0].eq(a), out[i1].eq(total)]
                else:
                    upper, lower = cur[2 * s], cur[2 * s + 1]
                    m.d.sync += [
                        out[2 * s].eq(Mux(code[0], lower, upper)),
                        out[2 * s + 1].eq(Mux(code[0], upper, lower)),
                    ]
            if kind != "butterfly" and idx < len(wiring_):
                nxt = [None] * n_lanes
                for p, q in enumerate(wiring_[idx]):
                    nxt[q] = out[p]
                cur = nxt
            else:
                cur = out

        valid = self.valid
        for t in range(self.LATENCY):
            nxt_valid = self.out_valid if t == self.LATENCY - 1 else Signal(
                name=f"stage{t}_valid")
            m.d.sync += nxt_valid.eq(valid)
            valid = nxt_valid
        return m
