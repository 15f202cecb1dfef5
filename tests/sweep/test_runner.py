"""Sweeps on Dask distributed: a 2-worker LocalCluster, a worker killed mid-sweep, a
client interrupted and resumed, stale results recomputed. Small spaces (seconds of
cycle-model work each); most of each test's time is starting the cluster."""

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time


from fetta.sw_model.accel.config import get_config
from fetta.sweep import tasks
from fetta.sweep.cost import cost_workload
from fetta.sweep.runner import run_sweep
from fetta.sweep.store import Store

SPACE = """
base = "tiny"
workloads = ["digits L2 128->16", "fc2 (on-FPGA 512->16)"]
[fields]
n_ce = [2, 4]
pe_rows = [1, 2, 3]
bank_depth = [256, 512, 1024]
"""
# 2 x 3 x 3 = 18 points; pe_rows=3 is invalid (6 points); 12 valid x 2 workloads
N_TASKS = 24


def _space(tmp_path, text=SPACE):
    p = tmp_path / "space.toml"
    p.write_text(text)
    return p


def _rows(db):
    con = sqlite3.connect(str(db), timeout=30)
    try:
        return con.execute("SELECT point_id, task, status, run_id, finished FROM results "
                           "WHERE task != '*'").fetchall()
    except sqlite3.OperationalError:        # not created yet
        return []
    finally:
        con.close()


def test_two_worker_local_cluster_sweep_resume_and_stale(tmp_path, monkeypatch):
    space, db = _space(tmp_path), tmp_path / "s.db"
    s = run_sweep(space, db, workers=2, progress=False)
    assert s["workers"] == 2 and s["points"] == 18 and s["invalid"] == 6
    assert s["tasks"] == N_TASKS and s["computed"] == N_TASKS and s["failed"] == 0
    with Store(db) as st:
        rows = st.rows()
    ok = [r for r in rows if r["status"] == "ok"]
    inv = [r for r in rows if r["status"] == "invalid"]
    assert len(ok) == N_TASKS and len(inv) == 6
    assert all("pe_rows=3 is not a power of two" in r["reason"] for r in inv)
    # a stored result is the cycle model's cost of that point
    r = next(r for r in ok if r["overrides"] == {"n_ce": 4, "pe_rows": 2,
                                                   "bank_depth": 1024}
             and r["task"] == "digits L2 128->16")
    assert r["result"] == cost_workload(get_config("tiny"), "digits L2 128->16", "macs")
    assert r["version"] == tasks.fingerprint("cost") and r["worker"].startswith("tcp://")
    # the same command again computes nothing
    s2 = run_sweep(space, db, workers=2, progress=False)
    assert s2["stored_fresh"] == N_TASKS and s2["to_compute"] == 0 and s2["computed"] == 0
    # a change of the cycle model's code makes every stored result stale
    monkeypatch.setitem(tasks._FP, "cost", "0" * 16)
    s3 = run_sweep(space, db, workers=2, progress=False)
    assert s3["stored_fresh"] == 0 and s3["computed"] == N_TASKS
    assert {r[3] for r in _rows(db)} == {s3["run_id"]}


def test_worker_killed_mid_sweep_completes_every_point(tmp_path):
    from distributed import Client, LocalCluster
    space = _space(tmp_path, SPACE.replace('"fc2 (on-FPGA 512->16)"',
                                           '"fc2 (on-FPGA 512->16)", "Novikov 1024->625"'))
    db = tmp_path / "s.db"
    n_tasks = 12 * 3
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      host="127.0.0.1", dashboard_address=None) as cluster, \
            Client(cluster) as client:
        out = {}
        th = threading.Thread(target=lambda: out.update(run_sweep(
            space, db, scheduler=cluster.scheduler_address, progress=False)))
        th.start()
        killed = None
        deadline = time.monotonic() + 300
        while killed is None and time.monotonic() < deadline and th.is_alive():
            busy = [w for w, keys in client.processing().items() if keys]
            if len(_rows(db)) >= 1 and busy:
                pids = client.run(os.getpid)
                stored = len(_rows(db))
                os.kill(pids[busy[0]], signal.SIGKILL)
                killed = busy[0]
            time.sleep(0.05)
        th.join(600)
    assert killed is not None, "the sweep finished before a worker could be killed"
    assert stored < n_tasks
    assert out["computed"] == n_tasks and out["failed"] == 0
    rows = _rows(db)
    assert len(rows) == n_tasks and {r[2] for r in rows} == {"ok"}
    assert len({(r[0], r[1]) for r in rows}) == n_tasks


def test_client_interrupted_then_resumed_without_recomputation(tmp_path):
    space = _space(tmp_path, SPACE.replace('"fc2 (on-FPGA 512->16)"',
                                           '"fc2 (on-FPGA 512->16)", "Novikov 1024->625"'))
    db = tmp_path / "s.db"
    n_tasks = 12 * 3
    log = open(tmp_path / "err.txt", "w")
    proc = subprocess.Popen([sys.executable, "-m", "fetta.sim.cli", "sweep", str(space),
                             "--workers", "2", "--store", str(db)],
                            stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 300
        while len(_rows(db)) < 2 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        rc = proc.wait(120)
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
    err = (tmp_path / "err.txt").read_text()
    assert rc == 130, err
    assert "fetta sweep: interrupted" in err
    first = {(r[0], r[1]): r for r in _rows(db)}
    assert 2 <= len(first) < n_tasks, err
    assert {r[2] for r in first.values()} == {"ok"}
    s = run_sweep(space, db, workers=2, progress=False)
    assert s["stored_fresh"] == len(first)
    assert s["computed"] == n_tasks - len(first) and s["failed"] == 0
    rows = {(r[0], r[1]): r for r in _rows(db)}
    assert len(rows) == n_tasks and {r[2] for r in rows.values()} == {"ok"}
    for key, r in first.items():         # not recomputed: same run, same commit time
        assert rows[key] == r
    assert {r[3] for k, r in rows.items() if k not in first} == {s["run_id"]}
