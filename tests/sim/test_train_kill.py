"""Fault injection for long runs: ``fetta train`` with a checkpoint is killed with
SIGKILL at random points (start-up, mid-epoch, while a checkpoint is being written),
resumed each time, and finally run to completion: the final JSON equals that of an
uninterrupted run, and after every kill the checkpoint either does not exist yet or
loads completely (a partial checkpoint never loads: saves are atomic and verified).

Default tier: 3 kills (random fractions, from a fixed seed, of the time an
uninterrupted run takes on this machine); slow tier: 30."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from fetta.sw_model.train import checkpoint as ckpt

ROOT = Path(__file__).resolve().parents[2]
ARGS = ["train", "--backend", "numpy", "--precision", "fixed", "--epochs", "3",
        "--seed", "3"]


def _cmd(*extra):
    return [sys.executable, "-m", "fetta.sim.cli", *ARGS, *extra]


def _result(path):
    r = json.loads(Path(path).read_text())
    r.pop("wall_seconds")
    return r


def kill_and_resume(tmp_path, kills, seed):
    full = tmp_path / "full.json"
    t0 = time.perf_counter()
    p = subprocess.run(_cmd("--json", str(full)), cwd=ROOT, capture_output=True,
                       text=True, timeout=600)
    # kill delays scale with this machine's uninterrupted run (start-up included), so
    # the first kill, before any checkpoint exists, always lands mid-run
    whole = time.perf_counter() - t0
    assert p.returncode == 0, p.stderr
    ck, out = tmp_path / "ck.npz", tmp_path / "out.json"
    rng = np.random.default_rng(seed)
    killed = 0
    for _ in range(kills):
        proc = subprocess.Popen(_cmd("--checkpoint", str(ck), "--resume", "--json",
                                     str(out)), cwd=ROOT, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        time.sleep(float(rng.uniform(0.05, 0.9)) * whole)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            killed += 1
        proc.wait(timeout=60)
        if proc.returncode not in (0, -signal.SIGKILL):
            pytest.fail(f"train exited {proc.returncode}: {proc.stderr.read().decode()}")
        proc.stderr.close()
        if ck.exists():
            arrays, meta = ckpt.load(ck)          # complete and verified, or it raises
            assert arrays and 0 <= meta["epoch"] <= 3
    p = subprocess.run(_cmd("--checkpoint", str(ck), "--resume", "--json", str(out)),
                       cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    assert _result(out) == _result(full)
    return killed


def test_sigkill_resume_gives_the_same_json(tmp_path):
    assert kill_and_resume(tmp_path, 3, seed=1) >= 1


@pytest.mark.slow
def test_sigkill_resume_gives_the_same_json_slow(tmp_path):
    """Slow tier: 30 kills at random points (several minutes)."""
    assert kill_and_resume(tmp_path, 30, seed=2) >= 10
