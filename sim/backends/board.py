"""The ``board`` backend: the accelerator on an FPGA board (or a simulated board) over
the UART link of ``fetta.boards.host_driver`` (framing, retries, the byte transports).
"""

from __future__ import annotations

from typing import Sequence

from fetta.boards.host_driver import Link, SerialTransport
from fetta.errors import FettaError, RunTimeout
from fetta.api_checks import check_bus_read, check_bus_write
from fetta.sim.backends.base import Backend, RunStatus
from fetta.sw_model.accel.hostmap import COUNTERS, MAGIC, REG_BASE, Reg, Status, ctrl_start

__all__ = ["BoardBackend"]


class BoardBackend(Backend):
    """The accelerator on a board (or a simulated board) over the UART link.

    ``BoardBackend(config, port="/dev/ttyUSB1", baud=115200)`` opens the port, PINGs
    the bridge and checks ``Reg.ID`` reads ``MAGIC`` and ``Reg.CONFIG_HASH`` matches
    ``config`` (the compiler plans for it). Pass ``transport=`` instead of
    ``port`` to use another byte transport (``PysimUART`` in the tests).

    ``run_until_idle(max_cycles, start=0)`` writes ``Ctrl.START`` (``ctrl_start``) and polls ``STATUS`` until
    BUSY drops; it returns the run's cycles from the ``BUSY`` counter (cycles with busy
    high, which is what the simulators count) and raises ``FettaError`` when
    ``max_cycles`` at ``clk_hz`` have passed (plus the polling time).
    """

    name = "board"

    def __init__(self, config, port: str | None = None, baud: int = 115200, *,
                 transport=None, clk_hz: float | None = None, retries: int = 4,
                 margin_s: float | None = None, resync_s: float | None = None,
                 check_id: bool = True):
        super().__init__(config)
        self.transport = transport if transport is not None else SerialTransport(port, baud)
        self.clk_hz = clk_hz or getattr(self.transport, "clk_hz", None) or 12e6
        # Default margins: a board needs slack for USB latency; the pysim transport
        # only for the bridge's own execution time (its clock runs in simulated time).
        simulated = hasattr(self.transport, "sim")
        if margin_s is None:
            margin_s = 2000 / self.clk_hz if simulated else 0.2
        if resync_s is None:
            timeout_cycles = getattr(getattr(self.transport, "top", None), "bridge", None)
            timeout_cycles = timeout_cycles.timeout if timeout_cycles is not None else None
            resync_s = 1.5 * timeout_cycles / self.clk_hz if timeout_cycles else 0.05
        self.link = Link(self.transport, retries=retries, margin_s=margin_s,
                         resync_s=resync_s)
        try:
            self.info = self.link.ping()
        except FettaError as exc:
            self.transport.close()
            raise FettaError(f"no fetta bridge answered on {self.transport.name} at "
                             f"{self.transport.baud:g} baud ({exc}); is the bitstream "
                             f"loaded and the baud right?") from None
        if check_id:
            ident = self.read_reg(Reg.ID)
            if ident != MAGIC:
                raise FettaError(f"board on {self.transport.name}: Reg.ID reads "
                                 f"0x{ident:08x}, not the accelerator's 0x{MAGIC:08x}")
            self._check_config_hash()

    def _check_config_hash(self):
        """The compiler plans for ``self.config``: refuse a bitstream built for another."""
        try:
            from fetta.rtl.top import config_hash
        except ImportError:
            return
        want = config_hash(self.config) & 0xFFFFFFFF
        got = self.read_reg(Reg.CONFIG_HASH)
        if got != want:
            raise FettaError(f"board on {self.transport.name} was built for another "
                             f"configuration (CONFIG_HASH 0x{got:08x}; config "
                             f"'{self.config.name}' is 0x{want:08x}); rebuild with "
                             f"`fetta synth --config {self.config.name}` or pass its config")

    @property
    def stats(self) -> dict:
        return self.link.stats.as_dict()

    def write(self, addr: int, words: Sequence[int]) -> None:
        addr, words = check_bus_write(addr, words)
        self.note_write(addr, words)
        self.link.write(addr, words.tolist())

    def read(self, addr: int, count: int) -> list[int]:
        addr, count = check_bus_read(addr, count)
        return self.link.read(addr, count)

    def _busy_counter(self) -> int:
        lo, hi = self.read(REG_BASE + Reg.BUSY, 2)
        return lo | (hi << 32)

    def _start_and_wait(self, max_cycles: int, start: int = 0) -> None:
        self.write_reg(Reg.CTRL, ctrl_start(start))
        deadline = self.transport.now() + max_cycles / self.clk_hz
        while self.read_reg(Reg.STATUS) & Status.BUSY:
            if self.transport.now() > deadline:
                self.known_idle = False
                raise RunTimeout(f"{self.name}: accelerator still busy after "
                                 f"{max_cycles} cycles")
            self.transport.idle(min(0.01, max(1e-6, max_cycles / self.clk_hz / 16)))

    def run_until_idle(self, max_cycles: int, start: int = 0) -> int:
        before = self._busy_counter()
        self._start_and_wait(max_cycles, start)
        return (self._busy_counter() - before) & ((1 << 64) - 1)

    # Every frame costs a round trip on the line: read register blocks in one burst.
    def counters(self, which: dict = COUNTERS) -> dict[str, int]:
        lo = min(which.values())
        words = self.read(REG_BASE + lo, max(which.values()) + 2 - lo)
        return {name: words[reg - lo] | (words[reg - lo + 1] << 32)
                for name, reg in which.items()}

    def run(self, max_cycles: int, counters: bool = True, start: int = 0) -> RunStatus:
        if not counters and self._lean is None:
            raise FettaError("a lean run outside a lean series (begin_lean first)")
        self.check_start(start)
        try:
            self._start_and_wait(max_cycles, start)
        except RunTimeout as exc:
            self.abort()
            raise RunTimeout(f"{exc}; the run was aborted (Ctrl.ABORT) and no result "
                             f"is returned") from None
        status, _pc, err_pc = self.read(REG_BASE + Reg.STATUS, 3)
        if status & Status.BUSY:
            raise FettaError(f"{self.name}: accelerator still busy after {max_cycles} cycles")
        return RunStatus(status, self.counters() if counters else None, err_pc)

    def close(self) -> None:
        self.transport.close()
