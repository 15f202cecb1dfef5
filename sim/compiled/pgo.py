"""Profile-guided builds of the compiled models.

A profile-guided build compiles an instrumented model, runs the training workload
``sim/pgo_train.py`` on it in a subprocess (the library writes its profile when that
process exits), then compiles again with the profile. ``pgo_setup(train)`` is the part
of the build key that says whether and how (off, or the training config and the
workload's source); ``pgo_train_step`` is the training run as a ``cached_build`` step.
``$FETTA_PGO=0`` turns profile-guided builds off.
"""

import os
import subprocess
from pathlib import Path

from fetta.sim.compiled.build_cache import build_status

__all__ = ["PGO_TRAINER", "pgo_enabled", "pgo_setup", "pgo_train_step"]

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
        with build_status(verbose, f"[{kind}] training run for the profile-guided build "
                                   f"of {label} ..."):
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
