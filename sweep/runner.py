"""Runs a sweep on Dask distributed and commits every finished task to the store.

``run_sweep(space, store, ...)``:

1. expands the space file (``space.load_space``); invalid points are written to the
   store at once with their one-line reason (task ``*``);
2. lists the tasks of every valid point — one cost task per workload, plus one
   ``rtl-check`` and one ``synth:<board>`` task when asked — and drops those the store
   already holds fresh (same code fingerprint and task hash, ``store.Store.fresh``):
   rerunning the same command recomputes nothing that is stored;
3. connects to ``scheduler`` (``tcp://HOST:PORT`` or ``tls://HOST:PORT``, with
   ``security`` a ``distributed.Security``, or Dask's ``distributed.comm.tls.*``
   configuration when None) or starts a ``LocalCluster`` of ``workers`` processes (one
   thread each) listening on 127.0.0.1 only; prints the scheduler and dashboard
   addresses;
4. submits each task (``client.submit(..., retries=retries)``; cost tasks first by
   priority), and as each finishes commits its row (one transaction); a task that
   raised even after its retries (or whose workers kept dying, ``KilledWorker``) is
   stored ``failed`` with the one-line error and recomputed by the next run. When a
   worker process dies, the scheduler reruns its tasks elsewhere and the nanny starts
   a new worker: only tasks in flight are redone.

A progress bar (stderr) shows tasks done, failed and the estimated time left; without a
terminal, a line per tenth of the tasks. An interrupted client (Ctrl-C, SIGTERM) loses
only the tasks in flight. Returns a summary dict (counts, wall seconds, points/min).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
import sys
import threading
import time
import uuid
from pathlib import Path

from fetta.sw_model.ttm.workloads import LAYERS, workload_key

from . import tasks as T
from .space import load_space
from .store import Store

__all__ = ["run_sweep", "task_hash", "plan_tasks"]

PRIORITY = {"cost": 20, "rtl-check": 10, "synth": 0}


def task_hash(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


def _project_version() -> str:
    from fetta import __version__
    return __version__


def plan_tasks(space, workloads, *, synth=None, rtl_check=0, synth_seed=None):
    """(invalid points, tasks); a task is a dict with ``point``, ``task``, ``kind``,
    ``fn``, ``args``, ``hash``, ``version``."""
    invalid, todo, seen = [], [], set()
    for pt in space.points:
        if pt.id in seen:
            continue
        seen.add(pt.id)
        if pt.reason:
            invalid.append(pt)
            continue
        cfg = pt.config.to_dict()
        for w in workloads:
            todo.append(dict(point=pt, task=w, kind="cost", fn=T.cost_task,
                             args=(cfg, w, space.order),
                             hash=task_hash(workload_key(w, space.order))))
        if rtl_check:
            spec = {"k": rtl_check, "workloads": list(workloads), "order": space.order,
                    "seed": 0}
            todo.append(dict(point=pt, task="rtl-check", kind="rtl-check",
                             fn=T.rtl_check_task,
                             args=(cfg, list(workloads), space.order, rtl_check, 0),
                             hash=task_hash(spec)))
        if synth:
            todo.append(dict(point=pt, task=f"synth:{synth}", kind="synth",
                             fn=T.synth_task, args=(cfg, synth, synth_seed),
                             hash=task_hash({"board": synth, "seed": synth_seed})))
    for t in todo:
        t["version"] = T.fingerprint(t["kind"])
    return invalid, todo


class _Progress:
    """Done / failed / ETA on stderr: a rich bar on a terminal, else periodic lines."""

    def __init__(self, total: int, enabled: bool = True):
        self.total, self.done, self.failed = total, 0, 0
        self.t0 = time.monotonic()
        self.tty = enabled and sys.stderr.isatty()
        self.enabled = enabled
        self.step = max(1, total // 10)
        self.bar = None
        if self.tty:
            from rich.console import Console
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress,
                                       TextColumn, TimeElapsedColumn, TimeRemainingColumn)
            self.bar = Progress(TextColumn("sweep"), BarColumn(), MofNCompleteColumn(),
                                TextColumn("failed {task.fields[failed]}"),
                                TimeElapsedColumn(), TextColumn("ETA"),
                                TimeRemainingColumn(), console=Console(stderr=True))
            self.task = self.bar.add_task("sweep", total=total, failed=0)
            self.bar.start()

    def eta(self) -> str:
        if not self.done:
            return "?"
        left = (time.monotonic() - self.t0) / self.done * (self.total - self.done)
        return f"{left:.0f} s"

    def update(self, failed: bool) -> None:
        self.done += 1
        self.failed += int(failed)
        if self.bar is not None:
            self.bar.update(self.task, advance=1, failed=self.failed)
        elif self.enabled and (self.done % self.step == 0 or self.done == self.total):
            print(f"sweep: {self.done}/{self.total} done, {self.failed} failed, "
                  f"ETA {self.eta()}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def _connect(scheduler, workers, security, dashboard_address):
    """(client, cluster or None)."""
    from distributed import Client, LocalCluster
    if scheduler:
        if not str(scheduler).startswith(("tcp://", "tls://", "inproc://")):
            raise ValueError(f"--scheduler {scheduler!r}: allowed tcp://HOST:PORT or "
                             f"tls://HOST:PORT")
        try:
            return Client(scheduler, security=security, timeout="30s"), None
        except (OSError, TimeoutError) as exc:
            raise ValueError(f"--scheduler {scheduler}: cannot connect ({exc})") from None
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                           host="127.0.0.1", dashboard_address=dashboard_address,
                           silence_logs=logging.ERROR)
    return Client(cluster), cluster


def run_sweep(space_path, store_path, *, workloads=None, scheduler=None, workers=None,
              synth=None, synth_seed=None, rtl_check=0, security=None,
              dashboard_address="127.0.0.1:8787", retries=2, progress=True,
              argv=()) -> dict:
    """Run (or resume) the sweep of ``space_path`` into ``store_path``; see the module
    docstring."""
    space = load_space(space_path)
    wls = list(workloads) if workloads else space.workloads
    for w in wls:
        if w not in LAYERS:
            raise ValueError(f"--workloads {w!r} unknown; allowed {', '.join(LAYERS)}")
    if synth is not None:
        from fetta.boards.platforms import BOARDS
        if synth not in BOARDS:
            raise ValueError(f"--synth {synth!r} unknown; allowed {', '.join(sorted(BOARDS))}")
    if isinstance(rtl_check, bool) or not isinstance(rtl_check, int) or rtl_check < 0:
        raise ValueError(f"--rtl-check {rtl_check!r}; allowed an integer >= 0")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int)
                                or not 1 <= workers <= 256):
        raise ValueError(f"--workers {workers!r}; allowed 1..256")
    invalid, todo = plan_tasks(space, wls, synth=synth, rtl_check=rtl_check,
                               synth_seed=synth_seed)
    run_id = uuid.uuid4().hex[:12]
    pv = _project_version()
    summary = {"run_id": run_id, "store": str(store_path),
               "points": len({p.id for p in space.points}), "invalid": len(invalid),
               "tasks": len(todo), "stored_fresh": 0, "computed": 0, "failed": 0,
               "infeasible": 0, "interrupted": False}
    with Store(store_path) as store:
        store.start_run(run_id, argv, Path(space_path).read_text(encoding="utf-8"))
        for pt in invalid:
            store.put(dict(point_id=pt.id, task="*", overrides=pt.overrides,
                           config=None, status="invalid", reason=pt.reason,
                           version=None, task_hash=None, project_version=pv,
                           run_id=run_id))
        fresh = store.fresh()
        pending = [t for t in todo if fresh.get((t["point"].id, t["task"])) !=
                   (t["version"], t["hash"])]
        summary["stored_fresh"] = len(todo) - len(pending)
        summary["to_compute"] = len(pending)
        if not pending:
            print(f"sweep: nothing to compute: {summary['stored_fresh']} tasks of "
                  f"{summary['points']} points are stored and fresh "
                  f"({len(invalid)} invalid points)", file=sys.stderr)
            return summary
        print(f"sweep: {summary['points']} points ({len(invalid)} invalid), "
              f"{len(todo)} tasks, {summary['stored_fresh']} stored, {len(pending)} to "
              f"compute", file=sys.stderr, flush=True)
        n_workers = workers or min(os.cpu_count() or 1, len(pending))
        client, cluster = _connect(scheduler, n_workers, security, dashboard_address)
        prog = None
        # SIGTERM stops the client like Ctrl-C (the store keeps what has finished).
        main = threading.current_thread() is threading.main_thread()
        old_term = signal.getsignal(signal.SIGTERM) if main else None
        if main and old_term in (signal.SIG_DFL, None):
            signal.signal(signal.SIGTERM, signal.default_int_handler)
        try:
            info = client.scheduler_info()
            summary["workers"] = len(info.get("workers", {}))
            print(f"sweep: scheduler {info.get('address', scheduler)}, "
                  f"{summary['workers']} workers, dashboard {client.dashboard_link}",
                  file=sys.stderr, flush=True)
            t0 = time.monotonic()
            futures = {}
            for t in pending:
                key = f"{t['kind']}-{t['point'].id}-{t['hash'][:8]}-{run_id}"
                if t["kind"] == "cost":
                    key += "-" + task_hash(t["task"])[:8]
                f = client.submit(t["fn"], *t["args"], key=key, retries=retries,
                                  pure=False, priority=PRIORITY[t["kind"]])
                futures[f] = t
            prog = _Progress(len(pending), progress)
            _collect(futures, store, prog, summary, run_id, pv)
            summary["seconds"] = time.monotonic() - t0
        except KeyboardInterrupt:
            summary["interrupted"] = True
            print(f"\nsweep: interrupted; {summary['computed']} tasks of this run are "
                  f"stored in {store_path}: rerun the same command to resume",
                  file=sys.stderr, flush=True)
            raise
        finally:
            if prog is not None:
                prog.close()
            if main and old_term is not None:
                signal.signal(signal.SIGTERM, old_term)
            try:
                client.close(timeout=10)
                if cluster is not None:
                    cluster.close(timeout=10)
            except Exception:  # noqa: BLE001 - closing a half-dead cluster
                pass
    done_points = len({t["point"].id for t in pending})
    minutes = summary["seconds"] / 60
    summary["points_per_minute"] = done_points / minutes if minutes else None
    print(f"sweep: computed {summary['computed']} tasks ({summary['failed']} failed, "
          f"{summary['infeasible']} infeasible) of {done_points} points in "
          f"{summary['seconds']:.1f} s on {summary['workers']} workers "
          f"({summary['points_per_minute']:.3g} points/min); store {store_path}",
          file=sys.stderr)
    return summary


def _collect(futures, store, prog, summary, run_id, pv):
    from distributed import as_completed
    for f in as_completed(list(futures)):
        t = futures.pop(f)
        try:
            out = f.result()
        except Exception as exc:  # noqa: BLE001 - any task error is recorded, not fatal
            out = {"status": "failed", "reason": T._one_line(exc)
                   or type(exc).__name__, "result": None, "seconds": None,
                   "worker": None}
        pt = t["point"]
        store.put(dict(point_id=pt.id, task=t["task"], config=pt.config.to_dict(),
                       overrides=pt.overrides, status=out["status"],
                       reason=out["reason"], result=out["result"], version=t["version"],
                       task_hash=t["hash"], project_version=pv, seconds=out["seconds"],
                       worker=out["worker"], run_id=run_id))
        summary["computed"] += 1
        summary["failed"] += out["status"] == "failed"
        summary["infeasible"] += out["status"] == "infeasible"
        prog.update(out["status"] == "failed")
        f.release()
