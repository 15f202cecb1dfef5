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
from fetta.sw_model.accel.hostmap import (ALL_COUNTERS, COUNTERS, REG_BASE, Ctrl, ErrorCode,
                                         Reg, Status, is_memory_address)

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
    * ``run_until_idle(max_cycles, start=0)``: write ``Ctrl.START`` with program word
      ``start`` (``hostmap.ctrl_start``), clock until STATUS.BUSY drops; returns the
      clock cycles spent; raises ``RunTimeout`` if ``max_cycles`` pass first (the
      simulator never hangs).

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
        self._lean = None              # an open series of lean runs: predicted sums
        self._lean_checked = set()
        self.settle_reads = 0          # host words settle_counters has read so far

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
    def run_until_idle(self, max_cycles: int, start: int = 0) -> int:
        """See the class docstring."""

    def close(self) -> None:
        pass

    # -- shared helpers -----------------------------------------------------------
    def write_reg(self, reg: Reg, value: int) -> None:
        self.write(REG_BASE + reg, [value & 0xFFFFFFFF])

    def read_reg(self, reg: Reg) -> int:
        return self.read(REG_BASE + reg, 1)[0]

    def counters(self, which: dict = COUNTERS) -> dict[str, int]:
        """The counters ``which`` (``hostmap.COUNTERS``: every run reads them;
        ``UNIT_COUNTERS``, ``ALL_COUNTERS``), 2 words each."""
        out = {}
        for name, reg in which.items():
            lo, hi = self.read(REG_BASE + reg, 2)
            out[name] = lo | (hi << 32)
        return out

    def clear(self) -> None:
        """``Ctrl.CLEAR`` (counters, error, done), after ``settle_counters`` has checked
        what lean runs left in the counters."""
        self.settle_counters()
        self.write_reg(Reg.CTRL, Ctrl.CLEAR)

    # -- lean runs: the counters checked in aggregate ---------------------------------
    def begin_lean(self) -> int:
        """Start a series of lean runs (``run(..., counters=False)``): CLEAR once (1
        host word, returned; 0 when a series is already open)."""
        if self._lean is not None:
            return 0
        self.clear()
        self._lean = {"programs": 0, **{k: 0 for k in ALL_COUNTERS}}
        return 1

    def expect_counters(self, programs: int, **counts: int) -> None:
        """Add what the model predicts ``programs`` lean runs add to the counters
        named in ``counts`` (``hostmap.ALL_COUNTERS`` names)."""
        if self._lean is None:
            raise FettaError("expect_counters outside a lean series (begin_lean first)")
        bad = [k for k in counts if k not in ALL_COUNTERS]
        if bad:
            raise ValueError(f"counter {bad[0]!r} unknown; allowed "
                             f"{', '.join(ALL_COUNTERS)}")
        self._lean["programs"] += programs
        self._lean.update({k: self._lean[k] + int(v) for k, v in counts.items()})
        self._lean_checked.update(counts)

    def settle_counters(self) -> int:
        """Close a lean series: read the counters (``2 * len(ALL_COUNTERS)`` words,
        returned; 0 without a series) and compare the ones ``expect_counters`` named
        with the sums predicted; a difference raises ``FettaError`` naming the
        counter, both values and the runs it covers."""
        if self._lean is None:
            return 0
        want, checked = self._lean, self._lean_checked
        self._lean, self._lean_checked = None, set()
        got = self.counters(ALL_COUNTERS)
        self.settle_reads += 2 * len(ALL_COUNTERS)
        for k in ALL_COUNTERS:
            if k in checked and got[k] != want[k]:
                raise FettaError(f"{self.name}: counter {k} after {want['programs']} lean "
                                 f"runs: {got[k]} counted != {want[k]} predicted by the "
                                 f"cycle model")
        return 2 * len(ALL_COUNTERS)

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

    def check_start(self, start: int) -> None:
        """A start word must lie in program memory (the hardware would halt at once
        with ``PROGRAM_RANGE``; the host says so before writing CTRL)."""
        depth = self.config.prog_depth
        if not 0 <= int(start) < depth:
            raise ValueError(f"start word {start} out of range; allowed 0..{depth - 1} "
                             f"(program depth of {self.config.name})")

    def start_and_wait(self, max_cycles: int, start: int = 0) -> None:
        """``run_until_idle``; on a timeout abort the program, then raise."""
        self.check_start(start)
        self.known_idle = False
        try:
            self.run_until_idle(max_cycles, start)
        except RunTimeout as exc:
            self.abort()
            raise RunTimeout(f"{exc}; the run was aborted (Ctrl.ABORT) and no result "
                             f"is returned") from None
        self.known_idle = True

    def run(self, max_cycles: int, counters: bool = True, start: int = 0) -> RunStatus:
        """Start the loaded program at program word ``start``, wait for it to halt,
        return status + counters
        (STATUS, the counters, ERR_PC: ``hostmap.CONTROL_READS`` words). A run that
        times out is aborted (``RunTimeout``). ``counters=False`` (a lean run, in a
        series ``begin_lean`` opened): STATUS only (``LEAN_READS`` words; ERR_PC too
        when it reports an error), ``RunStatus.counters`` None."""
        if not counters and self._lean is None:
            raise FettaError("a lean run outside a lean series (begin_lean first)")
        self.start_and_wait(max_cycles, start)
        status = self.read_reg(Reg.STATUS)
        if status & Status.BUSY:
            raise FettaError(f"{self.name}: accelerator still busy after {max_cycles} cycles")
        if not counters:
            err = self.read_reg(Reg.ERR_PC) if status & Status.ERROR else 0
            return RunStatus(status, None, err)
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
