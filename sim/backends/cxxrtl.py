"""The compiled backend: the accelerator top as a CXXRTL C++ model behind ``Backend``.

Python never ticks a clock here. It hands whole bursts of words to the C++ driver
(``sim/compiled/cxx_driver_template.cc``), which runs the host-bus protocol cycle by cycle
(one write strobe per cycle; read strobes pipelined, data taken when ``rvalid`` is
high), and ``run_until_idle`` writes ``Ctrl.START`` and clocks in C++ until ``busy``
drops. Build: ``sim/compiled/cxxrtl_build.py``; cache: ``sim/compiled/build_cache.py``.

Direct memory access: like the pysim backend, a write or read that lies entirely in
one buffer or in program memory goes straight into the model's memories (no clock
cycles) while the accelerator is known idle (``Backend.direct_ok``: the busy rule of
``sw_model/accel/hostmap.py``); everything else (registers, counters, mixed ranges)
uses the bus. ``bus_only=True`` sends everything over the bus. The memories are found
by name in the model's debug information: ``prog`` and ``buf_<a|b|c>`` or
``buf_<a|b|c> bank<i>`` (bus word ``j`` of a buffer is row ``j // lanes`` of bank
``j % lanes``, sw_model/accel/hostmap.py).

    with CxxrtlBackend("tiny") as be:        # builds once, then loads from the cache
        be.write(addr, words)
        cycles = be.run_until_idle(10**7)
        out = be.read(addr, n)

State persists between calls (load weights once, run many programs); ``reset()``
returns the model to its power-on state.
"""

from __future__ import annotations

import ctypes
import re
from typing import Callable, Sequence

import numpy as np

from fetta.sw_model.accel.hostmap import PROG_BASE, buffer_base, ctrl_start

from fetta.api_checks import check_bus_read, check_bus_write
from fetta.sim.backends.base import Backend
from fetta.sim.compiled.build_cache import source_token
from fetta.sim.compiled.cxxrtl_build import build_model
from fetta.sim.compiled.toolchain import find_compiler
from fetta.errors import FettaError, RunTimeout

__all__ = ["CxxrtlBackend", "default_top_factory"]


def default_top_factory(config):
    """``rtl.top.Accelerator(config)``, imported lazily."""
    try:
        from fetta.rtl.top import Accelerator
    except ImportError as exc:
        raise FettaError(f"accelerator top unavailable ({exc}); pass top_factory= to "
                         f"build another host-bus top") from None
    return Accelerator(config)


def _load(path) -> ctypes.CDLL:
    lib = ctypes.CDLL(str(path))
    vp, u32, u64, i64, sz = (ctypes.c_void_p, ctypes.c_uint32, ctypes.c_uint64,
                             ctypes.c_int64, ctypes.c_size_t)
    u32p = ctypes.POINTER(ctypes.c_uint32)
    i32p = ctypes.POINTER(ctypes.c_int32)
    for name, res, args in (
            ("fetta_create", vp, []),
            ("fetta_destroy", None, [vp]),
            ("fetta_reset", None, [vp]),
            ("fetta_cycles", u64, [vp]),
            ("fetta_step", None, [vp, u64]),
            ("fetta_bus_write_burst", None, [vp, u32, u32p, sz]),
            ("fetta_bus_read_burst", sz, [vp, u32, u32p, sz]),
            ("fetta_run_until_idle", i64, [vp, i64, u32]),
            ("fetta_run_repeat", i64, [vp, i64, i64]),
            ("fetta_mem_count", ctypes.c_int, [vp]),
            ("fetta_mem_name", ctypes.c_char_p, [vp, ctypes.c_int]),
            ("fetta_mem_shape", None, [vp, ctypes.c_int, u32p, u32p]),
            ("fetta_mem_poke", None, [vp, i32p, u32, u64, u32p, sz]),
            ("fetta_mem_peek", None, [vp, i32p, u32, u64, u32p, sz, ctypes.c_int])):
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

        bus_only: move buffer/program words over the host bus (one cycle per word)
            instead of directly into the memories.

    Attributes: ``built`` (this construction compiled the model rather than reusing
    the cache), ``build_seconds``, ``key`` (cache key), ``library`` (path of the .so),
    ``regions`` (the directly accessible bus regions found in the model).
    """

    name = "cxxrtl"
    _build_model = staticmethod(build_model)
    _check_tools = staticmethod(find_compiler)

    def __init__(self, config, *, top_factory: Callable | None = None, cache_dir=None,
                 verbose: bool = False, bus_only: bool = False):
        super().__init__(config)
        self._h = None
        self._check_tools()   # fail before elaborating anything
        # The default top is identified by its sources (no elaboration on a warm
        # start); any other factory is elaborated and keyed on its RTLIL.
        token = source_token(self.config) if top_factory is None else None
        factory = top_factory or default_top_factory
        name = "Accelerator" if top_factory is None else getattr(factory, "__name__", "top")
        # The accelerator top gets a profile-guided build (sim/pgo_train.py runs
        # contractions on it); other tops a plain one.
        model = self._build_model(lambda: factory(self.config), token=token,
                                  cache_dir=cache_dir, verbose=verbose,
                                  label=f"{name}({self.config.name})",
                                  train=self.config if top_factory is None else None)
        self.built = model.built
        self.build_seconds = model.seconds
        self.key = model.key
        self._attach(model.path, bus_only)

    def _attach(self, path, bus_only: bool) -> None:
        """Load the model library at ``path`` and create one model instance."""
        self.library = path
        self._lib = _load(path)
        self._h = self._lib.fetta_create()
        if not self._h:
            raise FettaError("compiled model could not be created (out of memory?)")
        self.bus_only = bus_only
        self.known_idle = True
        self.regions = self._find_regions()

    @classmethod
    def from_library(cls, config, path) -> "CxxrtlBackend":
        """A backend over an already-built model library at ``path`` (no build, no
        cache): the profile-guided build's training run (``sim/pgo_train.py``) and
        tests use it."""
        self = cls.__new__(cls)
        Backend.__init__(self, config)
        self._h = None
        self.built, self.build_seconds, self.key = False, 0.0, None
        self._attach(path, bus_only=False)
        return self

    def _find_regions(self) -> list[tuple[int, int, np.ndarray, int, bool]]:
        """(bus base, words, memory ids by lane, lanes, sign-extend) per memory region."""
        lib, h = self._lib, self._h
        mems = {}
        for i in range(lib.fetta_mem_count(h)):
            w, d = ctypes.c_uint32(), ctypes.c_uint32()
            lib.fetta_mem_shape(h, i, ctypes.byref(w), ctypes.byref(d))
            mems[lib.fetta_mem_name(h, i).decode()] = (i, w.value, d.value)
        regions = []
        if "prog" in mems and mems["prog"][1] <= 32:
            i, _, depth = mems["prog"]
            regions.append((PROG_BASE, depth, np.array([i], dtype=np.int32), 1, False))
        for n, buf in enumerate("abc"):
            banks = {}
            for name, (i, w, d) in mems.items():
                m = re.fullmatch(rf"buf_{buf}(?: bank(\d+))?", name)
                if m and w <= 32:
                    banks[int(m.group(1) or 0)] = (i, d)
            if not banks or sorted(banks) != list(range(len(banks))):
                continue
            depths = {d for _, d in banks.values()}
            if len(depths) != 1:
                continue
            ids = np.array([banks[k][0] for k in range(len(banks))], dtype=np.int32)
            regions.append((buffer_base(n), len(banks) * depths.pop(), ids, len(banks), True))
        return regions

    def _region(self, addr: int, count: int):
        if self.bus_only or not self.direct_ok(addr):
            return None
        for base, words, ids, lanes, sext in self.regions:
            if base <= addr and addr + count <= base + words:
                return addr - base, ids, lanes, sext
        return None

    # -- Backend --------------------------------------------------------------------
    def _handle(self):
        if not self._h:
            raise FettaError(f"{self.name} backend used after close()")
        return self._h

    def write(self, addr: int, words: Sequence[int]) -> None:
        addr, buf = check_bus_write(addr, words)
        buf = np.ascontiguousarray(buf)
        if not len(buf):
            return
        ptr = buf.ctypes.data_as(ctypes.POINTER(ctypes.c_uint32))
        region = self._region(addr, len(buf))
        if region is None:
            self.note_write(addr, buf)
            self._lib.fetta_bus_write_burst(self._handle(), addr, ptr, len(buf))
        else:
            j0, ids, lanes, _ = region
            self._lib.fetta_mem_poke(self._handle(),
                                     ids.ctypes.data_as(ctypes.POINTER(ctypes.c_int32)),
                                     lanes, j0, ptr, len(buf))

    def read_array(self, addr: int, count: int) -> np.ndarray:
        """``read`` as a uint32 NumPy array (no per-word Python objects)."""
        addr, count = check_bus_read(addr, count)
        out = np.zeros(count, dtype=np.uint32)
        if not count:
            return out
        ptr = out.ctypes.data_as(ctypes.POINTER(ctypes.c_uint32))
        region = self._region(addr, count)
        if region is not None:
            j0, ids, lanes, sext = region
            self._lib.fetta_mem_peek(self._handle(),
                                     ids.ctypes.data_as(ctypes.POINTER(ctypes.c_int32)),
                                     lanes, j0, ptr, count, int(sext))
        else:
            got = self._lib.fetta_bus_read_burst(self._handle(), addr, ptr, count)
            if got != count:
                raise FettaError(f"{self.name}: host-bus read at {addr:#x} returned {got} of "
                                 f"{count} words (rvalid missing)")
        return out

    def read(self, addr: int, count: int) -> list[int]:
        return self.read_array(addr, count).tolist()

    def run_until_idle(self, max_cycles: int, start: int = 0) -> int:
        cycles = self._lib.fetta_run_until_idle(self._handle(), int(max_cycles),
                                                ctrl_start(start))
        # After a timeout the program may still run: memories only over the bus then.
        self.known_idle = cycles >= 0
        if cycles < 0:
            raise RunTimeout(f"{self.name}: accelerator still busy after {max_cycles} cycles")
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
        self.known_idle = True

    def step(self, n: int = 1) -> None:
        """Clock ``n`` cycles with the bus idle."""
        self._lib.fetta_step(self._handle(), int(n))

    def run_repeat(self, reps: int, max_cycles: int) -> int:
        """Run the loaded program ``reps`` times back to back in C++ (the benchmark's
        minimal loop); returns the summed run cycles."""
        total = self._lib.fetta_run_repeat(self._handle(), int(reps), int(max_cycles))
        self.known_idle = total >= 0
        if total < 0:
            raise RunTimeout(f"{self.name}: accelerator still busy after {max_cycles} cycles")
        return total
