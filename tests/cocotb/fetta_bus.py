"""A small cocotb host-bus driver for the emitted accelerator top (module
``fetta_accel``), written from the bus contract in docs/isa.md: a one-cycle write
strobe (data lands on that rising edge); a one-cycle read strobe, ``rdata`` valid while
``rvalid`` is high exactly 2 cycles later; one strobe per cycle, never stalls. Inputs
change on the falling edge; reset is never asserted (power-up state).
"""

from cocotb.clock import Clock
from cocotb.triggers import FallingEdge

READ_LATENCY = 2
CTRL, STATUS, ERR_PC = 1, 2, 4          # register word addresses
START, CLEAR = 1, 2                     # CTRL bits
BUSY, DONE, ERROR = 1, 2, 4             # STATUS bits; error code in bits 15..8


class Bus:
    def __init__(self, dut):
        self.dut = dut
        for name in ("bus__write", "bus__read", "bus__addr", "bus__wdata", "rst"):
            getattr(dut, name).value = 0
        self.clock = Clock(dut.clk, 10, unit="ns")
        self.clock.start()

    async def write(self, addr, words):
        dut = self.dut
        await FallingEdge(dut.clk)
        dut.bus__write.value = 1
        for i, w in enumerate(words):
            dut.bus__addr.value = addr + i
            dut.bus__wdata.value = int(w) & 0xFFFFFFFF
            await FallingEdge(dut.clk)
        dut.bus__write.value = 0

    async def read(self, addr, n):
        """n consecutive words, one strobe per cycle (pipelined)."""
        dut = self.dut
        got = []
        await FallingEdge(dut.clk)
        for i in range(n + READ_LATENCY):
            dut.bus__read.value = int(i < n)
            dut.bus__addr.value = addr + min(i, n - 1)
            if i >= READ_LATENCY:
                assert dut.bus__rvalid.value == 1, f"no rvalid for word {i - 2}"
                got.append(int(dut.bus__rdata.value))
            await FallingEdge(dut.clk)
        dut.bus__read.value = 0
        return got

    async def run(self, max_cycles=200_000):
        """START, then clock until busy drops; returns (STATUS, ERR_PC)."""
        await self.write(CTRL, [START])
        n = 0
        while int(self.dut.busy.value):
            await FallingEdge(self.dut.clk)
            n += 1
            assert n < max_cycles, "still busy"
        status, = await self.read(STATUS, 1)
        err_pc, = await self.read(ERR_PC, 1)
        return status, err_pc
