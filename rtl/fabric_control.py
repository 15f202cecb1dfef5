"""The controller -> CE array interface as one ``wiring.Signature``.

``FabricControlSignature(config)`` from the controller's side (``Out`` members are
driven by the controller); the controller has it as member ``fabric``, the CE array
flipped as member ``ctl``, and the top joins them with one ``wiring.connect``.

Members:
    in_valid, in_first, in_last: one issue step; the first/last step of a tile (the
        accumulators restart / hand their sums to the drain). Aligned with the A and B
        rows the buffers return.
    a_net_cfg, b_net_cfg: packed switch settings of the A and B distribution networks
        (``routing.distribution_n_switch_bits`` wide).
    red_cfg: packed settings of the reduction network
        (``routing.reduction_n_switch_bits`` wide).
    lane_index[c_lanes]: per output lane, the flat-output-index offset (dither input).
    shift, rounding, out_bits, seed: the output stages' parameters (MODE, SEED words).
    tile_addr, tile_idx: C row and flat output index of the tile whose last step
        ``in_last`` marks (held until the next tile's last step).
    row_stride_idx: flat-index stride between the PE rows of a tile.
    pe_active (In): a step is in the PEs this cycle (the MAC_ACTIVE counter's event).
"""

from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from fetta.sw_model.accel.config import AccelConfig
from fetta.sw_model.accel.routing import distribution_n_switch_bits, reduction_n_switch_bits

__all__ = ["FabricControlSignature"]


class FabricControlSignature(wiring.Signature):
    """Controller -> fabric control (module doc), for ``config``."""

    def __init__(self, config: AccelConfig):
        cfg = config
        super().__init__({
            "in_valid": Out(1), "in_first": Out(1), "in_last": Out(1),
            "a_net_cfg": Out(distribution_n_switch_bits(cfg.a_lanes)),
            "b_net_cfg": Out(distribution_n_switch_bits(cfg.b_lanes)),
            "red_cfg": Out(reduction_n_switch_bits(cfg.c_lanes)),
            "lane_index": Out(32).array(cfg.c_lanes),
            "shift": Out(6), "rounding": Out(2), "out_bits": Out(5), "seed": Out(32),
            "tile_addr": Out(16), "tile_idx": Out(32), "row_stride_idx": Out(32),
            "pe_active": In(1),
        })
