"""Contraction engine (CE): a PE array computing one GEMM tile."""

from amaranth import *
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from fetta.sw_model.accel.config import AccelConfig

from .buffers import WORD_BITS
from .mac import MAC
from .shift_mac import ShiftMAC

__all__ = ["ContractionEngine"]


class ContractionEngine(wiring.Component):
    """A ``pe_rows x pe_cols`` PE array computing the tile ``C += A_col (x) B_row``
    (an outer product per cycle): PE ``(i, j)`` receives ``a_in[i]`` (broadcast along
    row ``i``) and ``b_in[j]`` (broadcast along column ``j``) and accumulates
    ``a_in[i] * b_in[j]`` into its ``acc_bits`` accumulator (wrap-around). With
    ``mac_kind == "shift"`` the B inputs carry power-of-two codes (shift MACs).

    Double-buffered accumulators: the cycle after a step with ``last`` was processed
    (``capture``), each PE's registered accumulator, now the tile's final sum, is
    copied into its *shadow* register, while the next tile's first step already
    restarts the working accumulator (``first``). The shadows load from flip-flops
    (the accumulators), not from the multiply-add's combinational output, so that
    output has one load and the shadow inputs are a register-to-register path; it
    costs one cycle of drain latency per instruction (the cycle model counts it).
    The shadow rows form a shift register that drains one PE row at a time: ``row_out[j] = shadow[0][j]``
    (combinational), and each cycle with ``drain_shift`` moves row ``i + 1`` into row
    ``i`` (a ``capture`` wins). No read multiplexer; on FPGAs each shadow bit's
    load/shift selector packs with its flip-flop.

    Cycle budget of one tile with ``K`` reduction steps (derivation):

    * fill: operands reach the PEs ``1 + DistributionNetwork.LATENCY`` cycles after
      their row is addressed (one buffer read cycle + the network's registers), and
      their products the accumulators ``config.mac_pipeline`` cycles later (``valid``,
      ``first`` and ``last`` arrive aligned with the products);
    * compute: ``K`` cycles, one outer product per cycle; the shadow is written one
      cycle after the ``K``-th;
    * drain: ``pe_rows`` cycles (one row per cycle) into the reduction network, then
      ``ReductionNetwork.LATENCY + OutputStage.LATENCY`` cycles to the C-buffer write.

    Back-to-back tiles overlap drain with the next tile's compute, so a tile costs
    ``max(K, pe_rows)`` cycles in steady state.

    Members:
        a_in[pe_rows], b_in[pe_cols]: operand words (16-bit; B may be pow2 codes).
        valid, first, last:           this cycle is a reduction step; first/last of tile.
        capture:                      the previous cycle was a tile's last step.
        drain_shift:                  advance the shadow to the next row.
        row_out[pe_cols]:             the shadow row being drained.
    """

    def __init__(self, config: AccelConfig):
        self.config = config
        R, C = config.pe_rows, config.pe_cols
        super().__init__({
            "a_in": In(WORD_BITS).array(R),
            "b_in": In(WORD_BITS).array(C),
            "valid": In(1), "first": In(1), "last": In(1), "capture": In(1),
            "drain_shift": In(1),
            "row_out": Out(signed(config.acc_bits)).array(C),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        R, C = cfg.pe_rows, cfg.pe_cols
        shadow = [[Signal(signed(cfg.acc_bits), name=f"shadow_{i}_{j}") for j in range(C)]
                  for i in range(R)]
        for i in range(R):
            for j in range(C):
                if cfg.mac_kind == "shift":
                    pe = ShiftMAC(operand_bits=cfg.operand_bits, pow2_bits=cfg.pow2_bits,
                                  acc_bits=cfg.acc_bits)
                    b = self.b_in[j][:cfg.pow2_bits]
                else:
                    pe = MAC(operand_bits=cfg.operand_bits, acc_bits=cfg.acc_bits,
                             pipeline=cfg.mac_pipeline)
                    b = self.b_in[j][:cfg.operand_bits].as_signed()
                m.submodules[f"pe_{i}_{j}"] = pe
                m.d.comb += [
                    pe.a.eq(self.a_in[i][:cfg.operand_bits].as_signed()),
                    pe.b.eq(b),
                    pe.en.eq(self.valid),
                    pe.clear.eq(self.valid & self.first),
                ]
                with m.If(self.capture):
                    m.d.sync += shadow[i][j].eq(pe.acc)
                if i + 1 < R:
                    with m.Elif(self.drain_shift):
                        m.d.sync += shadow[i][j].eq(shadow[i + 1][j])
        for j in range(C):
            m.d.comb += self.row_out[j].eq(shadow[0][j])
        return m
