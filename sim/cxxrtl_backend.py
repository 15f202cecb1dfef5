"""The compiled backend: the accelerator top as a CXXRTL C++ model behind ``Backend``.

Python never ticks a clock here. It hands whole bursts of words to the C++ driver
(``sim/cxx_driver_template.cc``), which runs the host-bus protocol cycle by cycle
(one write strobe per cycle; read strobes pipelined, data taken when ``rvalid`` is
high), and ``run_until_idle`` writes ``Ctrl.START`` and clocks in C++ until ``busy``
drops. Build and cache: ``sim/cxxrtl_build.py``.

    with CxxrtlBackend("tiny") as be:        # builds once, then loads from the cache
        be.write(addr, words)
        cycles = be.run_until_idle(10**7)
        out = be.read(addr, n)

State persists between calls (load weights once, run many programs); ``reset()``
returns the model to its power-on state.
"""

from __future__ import annotations

import ctypes
from typing import Callable, Sequence

import numpy as np

from sw_model.hostmap import ADDR_BITS

from .backend import Backend
from .cxxrtl_build import build_model, find_compiler
from .errors import FettaError

__all__ = ["CxxrtlBackend", "default_top_factory"]

_ADDR_MASK = (1 << ADDR_BITS) - 1


def default_top_factory(config):
    """``rtl.top.Accelerator(config)``, imported lazily."""
    try:
        from rtl.top import Accelerator
    except ImportError as exc:
        raise FettaError(f"accelerator top unavailable ({exc}); pass top_factory= to "
                         f"build another host-bus top") from None
    return Accelerator(config)


def _load(path) -> ctypes.CDLL:
    lib = ctypes.CDLL(str(path))
    vp, u32, u64, i64, sz = (ctypes.c_void_p, ctypes.c_uint32, ctypes.c_uint64,
                             ctypes.c_int64, ctypes.c_size_t)
    u32p = ctypes.POINTER(ctypes.c_uint32)
    for name, res, args in (
            ("fetta_create", vp, []),
            ("fetta_destroy", None, [vp]),
            ("fetta_reset", None, [vp]),
            ("fetta_cycles", u64, [vp]),
            ("fetta_step", None, [vp, u64]),
            ("fetta_bus_write_burst", None, [vp, u32, u32p, sz]),
            ("fetta_bus_read_burst", sz, [vp, u32, u32p, sz]),
            ("fetta_run_until_idle", i64, [vp, i64]),
            ("fetta_run_repeat", i64, [vp, i64, i64])):
        fn = getattr(lib, name)
        fn.restype = res
        fn.argtypes = args
    return lib


class CxxrtlBackend(Backend):
    """``Backend`` over a CXXRTL model of ``top_factory(config)``.

    Args:
        config: preset name or ``AccelConfig``.
        top_factory: ``config -> wiring.Component`` with ``bus: In(HostBusSignature())``
            and ``busy: Out(1)``; default ``rtl.top.Accelerator``.
        cache_dir: build cache (default ``$FETTA_CACHE_DIR`` or ``~/.cache/fetta-hdl``).
        verbose: print build progress on stderr.

    Attributes: ``built`` (this construction compiled the model rather than reusing
    the cache), ``build_seconds``, ``key`` (cache key), ``library`` (path of the .so).
    """

    name = "cxxrtl"
    _build_model = staticmethod(build_model)
    _check_tools = staticmethod(find_compiler)

    def __init__(self, config, *, top_factory: Callable | None = None, cache_dir=None,
                 verbose: bool = False):
        super().__init__(config)
        self._h = None
        self._check_tools()   # fail before elaborating anything
        factory = top_factory or default_top_factory
        top = factory(self.config)
        model = self._build_model(top, cache_dir=cache_dir, verbose=verbose,
                                  label=f"{type(top).__name__}({self.config.name})")
        self.built = model.built
        self.build_seconds = model.seconds
        self.key = model.key
        self.library = model.path
        self._lib = _load(model.path)
        self._h = self._lib.fetta_create()
        if not self._h:
            raise FettaError("compiled model could not be created (out of memory?)")

    # -- Backend --------------------------------------------------------------------
    def _handle(self):
        if not self._h:
            raise FettaError(f"{self.name} backend used after close()")
        return self._h

    def write(self, addr: int, words: Sequence[int]) -> None:
        buf = np.ascontiguousarray(np.asarray(words, dtype=np.int64) & 0xFFFFFFFF,
                                   dtype=np.uint32)
        if buf.ndim != 1:
            buf = buf.ravel()
        if addr < 0 or addr + len(buf) - 1 > _ADDR_MASK:
            raise ValueError(f"bus address range {addr:#x}+{len(buf)} out of range; "
                             f"allowed 0..{_ADDR_MASK:#x}")
        if len(buf):
            self._lib.fetta_bus_write_burst(
                self._handle(), addr, buf.ctypes.data_as(ctypes.POINTER(ctypes.c_uint32)),
                len(buf))

    def read_array(self, addr: int, count: int) -> np.ndarray:
        """``read`` as a uint32 NumPy array (no per-word Python objects)."""
        if addr < 0 or count < 0 or addr + count - 1 > _ADDR_MASK:
            raise ValueError(f"bus address range {addr:#x}+{count} out of range; "
                             f"allowed 0..{_ADDR_MASK:#x}")
        out = np.zeros(count, dtype=np.uint32)
        if count:
            got = self._lib.fetta_bus_read_burst(
                self._handle(), addr, out.ctypes.data_as(ctypes.POINTER(ctypes.c_uint32)),
                count)
            if got != count:
                raise FettaError(f"{self.name}: host-bus read at {addr:#x} returned {got} of "
                                 f"{count} words (rvalid missing)")
        return out

    def read(self, addr: int, count: int) -> list[int]:
        return self.read_array(addr, count).tolist()

    def run_until_idle(self, max_cycles: int) -> int:
        cycles = self._lib.fetta_run_until_idle(self._handle(), int(max_cycles))
        if cycles < 0:
            raise FettaError(f"{self.name}: accelerator still busy after {max_cycles} cycles")
        return cycles

    def close(self) -> None:
        if getattr(self, "_h", None):
            self._lib.fetta_destroy(self._h)
            self._h = None

    def __del__(self):
        self.close()

    # -- extras ---------------------------------------------------------------------
    @property
    def cycles(self) -> int:
        """Clock edges since construction or ``reset()`` (bus transfers included)."""
        return self._lib.fetta_cycles(self._handle())

    def reset(self) -> None:
        """Back to the power-on state (every flop and memory at its init value)."""
        self._lib.fetta_reset(self._handle())

    def step(self, n: int = 1) -> None:
        """Clock ``n`` cycles with the bus idle."""
        self._lib.fetta_step(self._handle(), int(n))

    def run_repeat(self, reps: int, max_cycles: int) -> int:
        """Run the loaded program ``reps`` times back to back in C++ (the benchmark's
        minimal loop); returns the summed run cycles."""
        total = self._lib.fetta_run_repeat(self._handle(), int(reps), int(max_cycles))
        if total < 0:
            raise FettaError(f"{self.name}: accelerator still busy after {max_cycles} cycles")
        return total
