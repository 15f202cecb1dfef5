"""The build cache of the compiled models: one ``model.so`` per key, built once.

``cached_build(kind, key_parts, files, steps)``: the key is the SHA-256 (24 hex digits)
of ``key_parts``; a hit returns ``<cache>/<kind>/<key>/model.so``; a miss writes
``files()`` into a temporary directory inside the cache, runs ``steps`` (argv lists
and Python callables, in order) there, and moves the directory into place with an
atomic ``rename``. One builder per key at a time (an ``flock`` on
``<cache>/<kind>/.lock-<key>``); the others wait and load its result. A failed build
raises ``FettaError`` with the first error line and keeps its directory as
``failed-<key>`` with ``build.log``.

``cached_model(kind, make_top, build, token=...)``: the first-level index. Elaborating
the real top is itself slow (seconds for ``tiny``, over a minute for ``large``), so
for ``rtl.top.Accelerator`` a *source token* (``source_token``: the config plus the
text of every file of ``rtl/`` and ``sw_model/``) maps to the design key under
``<cache>/<kind>/index/``; a warm start then elaborates nothing. An index miss falls
through to the design key.

Cache directory (``cache_root``): ``$FETTA_CACHE_DIR`` if set, else
``~/.cache/fetta-hdl``.
"""

import fcntl
import hashlib
import os
import shlex
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from amaranth.hdl import Elaboratable

from fetta.errors import FettaError
from fetta.sim.compiled.toolchain import toolchain_identity

__all__ = ["BuiltModel", "cache_root", "build_status", "cached_build", "index_lookup",
           "index_record", "source_token", "cached_model"]


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """Where compiled models are cached (created on demand)."""
    if cache_dir is not None:
        return Path(cache_dir)
    env = os.environ.get("FETTA_CACHE_DIR")
    if env:
        return Path(env)
    return Path.home() / ".cache" / "fetta-hdl"


@dataclass
class BuiltModel:
    """A compiled model on disk: its shared library and whether this call built it."""
    key: str
    path: Path
    built: bool
    seconds: float


def build_status(verbose: bool, message: str):
    """A console status line for a long build step when ``verbose``, else a no-op
    context."""
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
        with build_status(verbose, f"[{kind}] waiting for another build of {label} ..."):
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
        with build_status(verbose, f"[{kind}] compiling {label} ({size} KiB of source) "
                                   f"with {tool} ..."):
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
    digest = hashlib.sha256(token.encode()).hexdigest()[:24]
    return cache_root(cache_dir) / kind / "index" / digest


def index_lookup(kind: str, token: str, cache_dir=None) -> BuiltModel | None:
    """The cached model recorded for a source token, if it is still in the cache."""
    try:
        key = _index_file(kind, token, cache_dir).read_text().strip()
    except OSError:
        return None
    so = cache_root(cache_dir) / kind / key / "model.so"
    return BuiltModel(key, so, False, 0.0) if key and so.is_file() else None


def index_record(kind: str, token: str, key: str, cache_dir=None) -> None:
    """Record (atomically) that ``token`` maps to the design key ``key``."""
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
    return f"fetta.rtl.top.Accelerator {cfg} {toolchain_identity()} {h.hexdigest()}"


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
