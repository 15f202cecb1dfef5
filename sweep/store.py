"""The sweep store: one SQLite database in WAL mode.

Why SQLite/WAL (and not Parquet parts): results arrive one at a time at the client;
each is one ``INSERT OR REPLACE`` in its own transaction, durable when ``commit``
returns (``synchronous=FULL``) and atomic (a killed client leaves the database as of
its last commit — WAL replays or discards the tail on the next open). The primary key
makes a duplicate point impossible, resuming is one indexed query, a ``--report`` can
read while a sweep writes (WAL readers do not block the writer), and it is in the
standard library: no new dependency and no compaction step for thousands of small
parts. Only the client writes; workers send results back over Dask (no shared
filesystem).

Tables (every JSON column is text):

* ``results``: one row per (point, task). ``task`` is a workload name for a cost row,
  ``synth:<board>`` for a synthesis, ``rtl-check`` for the Verilator check, ``*`` for a
  point that is invalid as a whole. Columns: ``point_id``, ``task``, ``config``
  (``AccelConfig.to_dict``), ``overrides``, ``status`` (``ok`` | ``invalid`` |
  ``infeasible`` | ``failed``), ``reason`` (one line), ``result``, ``version`` (the
  code fingerprint the row was computed with, ``fingerprint``), ``task_hash`` (the
  workload definition or the task's options), ``project_version``, ``seconds``,
  ``worker``, ``run_id``, ``finished`` (Unix time).
* ``runs``: one row per invocation: ``run_id``, ``started``, ``argv``, ``space``.

A row is *fresh* for a task when its ``version`` and ``task_hash`` equal the current
ones and its status is not ``failed``; the runner recomputes everything else.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

__all__ = ["Store", "FINAL"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    point_id TEXT NOT NULL, task TEXT NOT NULL, config TEXT, overrides TEXT,
    status TEXT NOT NULL, reason TEXT, result TEXT, version TEXT, task_hash TEXT,
    project_version TEXT, seconds REAL, worker TEXT, run_id TEXT, finished REAL,
    PRIMARY KEY (point_id, task));
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, started REAL, argv TEXT, space TEXT);
"""
FINAL = ("ok", "invalid", "infeasible")
COLUMNS = ("point_id", "task", "config", "overrides", "status", "reason", "result",
           "version", "task_hash", "project_version", "seconds", "worker", "run_id",
           "finished")


class Store:
    """The sweep database at ``path`` (created when missing)."""

    def __init__(self, path, *, create: bool = True):
        self.path = Path(path)
        if not create and not self.path.exists():
            raise FileNotFoundError(f"sweep store {str(path)!r} does not exist")
        try:
            self.db = sqlite3.connect(str(self.path), timeout=30)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.executescript(SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise ValueError(f"sweep store {str(path)!r} is not a sweep database: "
                             f"{exc}") from None

    def close(self) -> None:
        self.db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def start_run(self, run_id: str, argv, space: str) -> None:
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?)",
                            (run_id, time.time(), json.dumps(list(argv)), space))

    def put(self, row: dict) -> None:
        """Commit one finished task atomically (replacing an older row of it)."""
        vals = []
        for c in COLUMNS:
            v = row.get(c)
            if c in ("config", "overrides", "result") and v is not None:
                v = json.dumps(v, sort_keys=True)
            vals.append(v)
        vals[COLUMNS.index("finished")] = row.get("finished") or time.time()
        with self.db:
            self.db.execute(f"INSERT OR REPLACE INTO results ({', '.join(COLUMNS)}) "
                            f"VALUES ({', '.join('?' * len(COLUMNS))})", vals)

    def fresh(self) -> dict:
        """(point_id, task) -> (version, task_hash) of every row in a final state."""
        cur = self.db.execute("SELECT point_id, task, version, task_hash FROM results "
                              f"WHERE status IN ({', '.join('?' * len(FINAL))})", FINAL)
        return {(p, t): (v, h) for p, t, v, h in cur}

    def rows(self, status: str | None = None) -> list[dict]:
        q = f"SELECT {', '.join(COLUMNS)} FROM results"
        args = ()
        if status is not None:
            q += " WHERE status = ?"
            args = (status,)
        out = []
        for vals in self.db.execute(q + " ORDER BY point_id, task", args):
            row = dict(zip(COLUMNS, vals))
            for c in ("config", "overrides", "result"):
                if row[c] is not None:
                    row[c] = json.loads(row[c])
            out.append(row)
        return out

    def count(self) -> dict:
        return dict(self.db.execute("SELECT status, COUNT(*) FROM results GROUP BY status"))
