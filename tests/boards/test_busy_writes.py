"""The busy rule through the board link: the UART bridge forwards a host write that
arrives while a program runs to the bus, where the accelerator drops it and records it
(STATUS bit 3, error code BUS_WHILE_BUSY, the run goes on) -- the same as every
simulator backend (tests/sim/test_busy_writes.py)."""

import pytest

from fetta.boards.host_driver import PysimUART
from fetta.sim.backends.board import BoardBackend
from fetta.boards.top import LinkTop
from fetta.sw_model.program.compiler import compile_contraction
from fetta.sw_model.accel.hostmap import PROG_BASE, Ctrl, ErrorCode, Reg, Status, buffer_base

pytest.importorskip("fetta.rtl.top")


def test_board_write_while_busy_is_dropped_and_reported():
    from fetta.rtl.top import Accelerator
    uart = PysimUART(LinkTop(Accelerator("tiny"), divisor=4, timeout=400, max_burst=64))
    be = BoardBackend("tiny", transport=uart)
    # a long program (2,048 issue cycles) on whatever the buffers hold: only the
    # program crosses the link
    cc = compile_contraction("mk,kn->mn", (32, 32), (32, 32), "tiny")
    be.clear()
    be.write(PROG_BASE, cc.program)
    before = be.read(buffer_base(0), 1)
    be.write_reg(Reg.CTRL, Ctrl.START)
    assert be.read_reg(Reg.STATUS) & Status.BUSY
    be.write(buffer_base(0), [before[0] ^ 0x5A5A])
    while (status := be.read_reg(Reg.STATUS)) & Status.BUSY:
        pass
    assert status & Status.DONE and status & Status.BUS_WHILE_BUSY
    assert (status >> 8) & 0xFF == ErrorCode.BUS_WHILE_BUSY
    assert be.read(buffer_base(0), 1) == before
