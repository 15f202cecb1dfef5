"""The backend interface: everything the harness needs from a simulator or a board.

A backend owns one running instance of the accelerator top (``rtl.top.Accelerator``)
for one ``AccelConfig`` and speaks the host bus (``sw_model/accel/hostmap.py``) to it. The
harness only ever calls the methods below, so pysim, the compiled model and a board over
UART are interchangeable (``get_backend(name, config, **options)``).

Backends register themselves in ``BACKENDS`` by name with a factory; the factory is
imported lazily so that, e.g., pysim works on a machine without a C++ compiler.
"""

from __future__ import annotations

import abc
import importlib
from typing import Sequence

from fetta.sw_model.accel.config import AccelConfig, get_config
from fetta.sw_model.accel.hostmap import (COUNTERS, REG_BASE, Ctrl, ErrorCode, Reg, Status,
                                         is_memory_address)

from fetta.errors import FettaError, RunTimeout

__all__ = ["Backend", "BACKENDS", "get_backend", "RunStatus"]

# name -> "module:factory" (lazy import)
BACKENDS = {
    "pysim": "fetta.sim.backends.pysim:PysimBackend",
    "cxxrtl": "fetta.sim.backends.cxxrtl:CxxrtlBackend",
    # The same C++ host-bus driver over a Verilator model of the emitted Verilog: the
    # fastest backend (README, "Compiled simulation").
    "verilator": "fetta.sim.backends.verilator:VerilatorBackend",
    "board": "fetta.sim.backends.board:BoardBackend",
}


class RunStatus:
    """What a finished run reports: status bits, error code, counters."""

    def __init__(self, status: int, counters: dict[str, int], err_pc: int = 0):
        self.status = status
        self.error = ErrorCode((status >> 8) & 0xFF)
        self.counters = counters
        self.err_pc = err_pc

    @property
    def ok(self) -> bool:
        return self.error == ErrorCode.NONE and bool(self.status & Status.DONE)


class Backend(abc.ABC):
    """Base class. Subclasses implement ``write``, ``read``, ``run_until_idle``, ``close``.

    * ``write(addr, words)``: write consecutive 32-bit words starting at ``addr``.
    * ``read(addr, count)``: read ``count`` consecutive words (unsigned 32-bit ints).
    * ``run_until_idle(max_cycles)``: write ``Ctrl.START``, clock until STATUS.BUSY
      drops; returns the clock cycles spent; raises ``RunTimeout`` if ``max_cycles``
      pass first (the simulator never hangs).

    ``run`` and ``abort`` are shared: a run that times out is stopped with
    ``Ctrl.ABORT`` before ``RunTimeout`` reaches the caller.

    Host writes while busy follow the one rule of ``sw_model/accel/hostmap.py`` (dropped,
    recorded, the run goes on). Backends with a direct-memory path (pysim, CXXRTL,
    Verilator poke their memories without clocking) use it only while
    ``direct_ok(addr)``: the accelerator is known to be idle (after construction, a
    finished run or an abort) and has not been started since by a CTRL write; any
    other memory write goes over the host bus, where the RTL applies the rule. So every
    backend does what the hardware does.
    """

    name = "base"
    # Polls of STATUS after ABORT before giving up: the controller drains for its
    # fixed tail (< 100 cycles on every preset), each poll takes >= 3 cycles.
    ABORT_POLLS = 200

    def __init__(self, config: AccelConfig | str):
        self.config = get_config(config)
        self.known_idle = True

    def direct_ok(self, addr: int) -> bool:
        """A memory access at ``addr`` may bypass the bus (see the class docstring)."""
        return self.known_idle and is_memory_address(addr)

    def note_write(self, addr: int, words: Sequence[int]) -> None:
        """Track the idle state across a bus write (a CTRL word with START may start
        a program). Subclasses call this from ``write``."""
        ctrl = REG_BASE + Reg.CTRL
        if addr <= ctrl < addr + len(words) and int(words[ctrl - addr]) & Ctrl.START:
            self.known_idle = False

    # -- to implement -------------------------------------------------------------
    @abc.abstractmethod
    def write(self, addr: int, words: Sequence[int]) -> None:
        """See the class docstring."""

    @abc.abstractmethod
    def read(self, addr: int, count: int) -> list[int]:
        """See the class docstring."""

    @abc.abstractmethod
    def run_until_idle(self, max_cycles: int) -> int:
        """See the class docstring."""

    def close(self) -> None:
        pass

    # -- shared helpers -----------------------------------------------------------
    def write_reg(self, reg: Reg, value: int) -> None:
        self.write(REG_BASE + reg, [value & 0xFFFFFFFF])

    def read_reg(self, reg: Reg) -> int:
        return self.read(REG_BASE + reg, 1)[0]

    def counters(self) -> dict[str, int]:
        out = {}
        for name, reg in COUNTERS.items():
            lo, hi = self.read(REG_BASE + reg, 2)
            out[name] = lo | (hi << 32)
        return out

    def clear(self) -> None:
        self.write_reg(Reg.CTRL, Ctrl.CLEAR)

    def abort(self) -> int:
        """Stop a running program (``Ctrl.ABORT``) and wait until the accelerator is
        idle; returns the STATUS word read then. Raises ``FettaError`` if it stays
        busy (a hardware fault: the controller returns to idle in a fixed tail)."""
        self.write_reg(Reg.CTRL, Ctrl.ABORT)
        for _ in range(self.ABORT_POLLS):
            status = self.read_reg(Reg.STATUS)
            if not status & Status.BUSY:
                self.known_idle = True
                return status
        raise FettaError(f"{self.name}: accelerator still busy after ABORT "
                         f"({self.ABORT_POLLS} status polls)")

    def start_and_wait(self, max_cycles: int) -> None:
        """``run_until_idle``; on a timeout abort the program, then raise."""
        self.known_idle = False
        try:
            self.run_until_idle(max_cycles)
        except RunTimeout as exc:
            self.abort()
            raise RunTimeout(f"{exc}; the run was aborted (Ctrl.ABORT) and no result "
                             f"is returned") from None
        self.known_idle = True

    def run(self, max_cycles: int) -> RunStatus:
        """Start the loaded program, wait for it to halt, return status + counters.
        A run that times out is aborted (``RunTimeout``)."""
        self.start_and_wait(max_cycles)
        status = self.read_reg(Reg.STATUS)
        if status & Status.BUSY:
            raise FettaError(f"{self.name}: accelerator still busy after {max_cycles} cycles")
        return RunStatus(status, self.counters(), self.read_reg(Reg.ERR_PC))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def get_backend(name: str, config, **options) -> Backend:
    if name not in BACKENDS:
        raise ValueError(f"backend {name!r} unknown; allowed {', '.join(BACKENDS)}")
    modname, factory = BACKENDS[name].split(":")
    try:
        mod = importlib.import_module(modname)
    except ModuleNotFoundError as exc:
        raise FettaError(f"backend {name!r} is not available: {exc}") from None
    return getattr(mod, factory)(config, **options)
