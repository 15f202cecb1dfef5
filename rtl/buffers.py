"""Banked on-chip buffers."""

from amaranth import *
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from fetta.sw_model.accel.hostmap import BUFFER_WORD_BITS

__all__ = ["BankedBuffer", "WORD_BITS"]

WORD_BITS = BUFFER_WORD_BITS     # one operand/result word (sw_model.accel.hostmap)


class BankedBuffer(wiring.Component):
    """``lanes`` independent banks of ``depth`` 16-bit words; a *row* is the word at
    the same address in every bank, so one row (one lane-vector) moves per cycle.

    Computes: ``rd_data[l] = bank[l][rd_addr]`` one cycle after ``rd_en`` (synchronous
    read, latency 1; data holds while ``rd_en`` is low); on a clock edge with
    ``wr_en``, ``bank[l][wr_addr] = wr_data[l]`` for every lane with ``wr_mask[l]``.
    A read of the row being written in the same cycle is not performed (``rd_data``
    holds; with ``lane_collision`` only in the lanes being written, ``wr_mask``, so
    the other lanes of the row read normally — the MOVE unit's VEC reads a
    destination word beside the one written), so a bank never sees a read-write
    collision: the memories carry yosys'
    ``no_rw_check`` and map to bare block RAMs (no collision bypass registers; on the
    iCE40, 2 CEs x 4x1, the emulation cost the buffers 243 LUT4s and 176 flip-flops,
    56 and 0 without it: ``scripts/area_breakdown.py``).

    Members:
        rd_addr, rd_en:   row read request.
        rd_data:          ``lanes`` words of the row read the previous cycle.
        wr_addr, wr_en:   row write.
        wr_data, wr_mask: per-lane data and write enables.
    """

    LATENCY = 1

    def __init__(self, lanes: int, depth: int, lane_collision: bool = False):
        self.lanes, self.depth = lanes, depth
        self.lane_collision = lane_collision
        self.addr_bits = max(1, (depth - 1).bit_length())
        super().__init__({
            "rd_addr": In(self.addr_bits),
            "rd_en": In(1),
            "rd_data": Out(WORD_BITS).array(lanes),
            "wr_addr": In(self.addr_bits),
            "wr_en": In(1),
            "wr_data": In(WORD_BITS).array(lanes),
            "wr_mask": In(lanes),
        })
        self.banks = [Memory(shape=WORD_BITS, depth=depth, init=[],
                             attrs={"no_rw_check": 1}) for _ in range(lanes)]

    def elaborate(self, platform):
        m = Module()
        collide = self.wr_en & (self.wr_addr == self.rd_addr)
        for lane, mem in enumerate(self.banks):
            m.submodules[f"bank{lane}"] = mem
            rd = mem.read_port()
            wr = mem.write_port()
            m.d.comb += [
                rd.addr.eq(self.rd_addr),
                rd.en.eq(self.rd_en & ~(collide & self.wr_mask[lane] if self.lane_collision
                                        else collide)),
                self.rd_data[lane].eq(rd.data),
                wr.addr.eq(self.wr_addr), wr.data.eq(self.wr_data[lane]),
                wr.en.eq(self.wr_en & self.wr_mask[lane]),
            ]
        return m
