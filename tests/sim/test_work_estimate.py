"""Big work is announced and refused (issue: a 3000^3 product on Verilator ran > 40
minutes at 2.3 GB with no estimate or progress), and `fetta bench sim` defaults to
the fastest backend."""

import subprocess
import sys
import time

import numpy as np

from fetta.sim.harness import Session
from fetta.sim.work_estimate import MAX_SECONDS, estimate
from fetta.sw_model.accel.config import AccelConfig, get_config
from fetta.sw_model.arith.einsum_spec import parse_spec


def fetta(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "fetta.sim.cli", *args],
                          capture_output=True, text=True, timeout=timeout)


def test_huge_contraction_is_refused_quickly_without_force():
    t0 = time.perf_counter()
    proc = fetta("contract", "ij,jk->ik", "--shape", "A=3000,3000", "--shape",
                 "B=3000,3000", "--backend", "verilator")
    assert time.perf_counter() - t0 < 60
    assert proc.returncode == 2
    err = proc.stderr.strip().splitlines()
    assert err[0].startswith("estimate") and "at least 1,687,500,000 cycles" in err[0]
    assert len(err) == 2 and "--force" in err[1] and "Traceback" not in proc.stderr


def test_small_contraction_prints_its_exact_estimate():
    proc = fetta("contract", "ij,jk->ik", "--shape", "A=4,5", "--shape", "B=5,3")
    assert proc.returncode == 0, proc.stderr
    est = estimate(parse_spec("ij,jk->ik"), (4, 5), (5, 3), get_config("tiny"), "pysim")
    assert est.exact and f"{est.cycles:,} cycles" in proc.stderr
    cycles = int(next(ln for ln in proc.stdout.splitlines()
                      if ln.startswith("cycles")).split()[1])
    assert cycles == est.cycles


def test_estimate_threshold():
    cfg = get_config("tiny")
    sp = parse_spec("ij,jk->ik")
    assert estimate(sp, (3000, 3000), (3000, 3000), cfg, "verilator").too_big
    small = estimate(sp, (64, 96), (96, 64), cfg, "verilator")
    assert not small.too_big and small.exact and small.seconds < MAX_SECONDS


def test_chunked_contraction_reports_progress():
    cfg = AccelConfig(name="tiny-d64", n_ce=4, pe_rows=2, pe_cols=2, bank_depth=64)
    rng = np.random.default_rng(0)
    a, b = rng.integers(-9, 9, (24, 40)), rng.integers(-9, 9, (40, 8))
    seen = []
    with Session(cfg, "pysim") as s:
        res = s.contract("ij,jk->ik", a, b, progress=lambda d, n: seen.append((d, n)))
    assert res.chunks > 1 and seen == [(i, res.chunks) for i in range(1, res.chunks + 1)]
    np.testing.assert_array_equal(res.output, a @ b)


def test_bench_sim_defaults_to_the_fastest_backend_and_tiny():
    proc = fetta("bench", "sim", "--help")
    assert proc.returncode == 0
    text = " ".join(proc.stdout.split())
    assert "(default verilator" in text and "(default tiny" in text


def test_bad_input_is_one_line_before_any_estimate():
    for extra in (["--seed", "-1"], ["--range", "40000"], ["--backend", "foo"]):
        proc = fetta("contract", "ij,jk->ik", "--shape", "A=3,3", "--shape", "B=3,3", *extra)
        assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, \
            (extra, proc.stderr)
