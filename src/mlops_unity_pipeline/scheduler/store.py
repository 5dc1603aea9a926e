"""The scheduler's persisted state (SQLite, WAL, synchronous=FULL): schedules and runs.

A run is keyed by (schedule id, scheduled slot, asset id) and is recorded *before* it is launched, so a restarted
scheduler finds it and resumes it instead of starting that slot again. The history kept per schedule is bounded.
The store is also how `unity-mlops schedule pause|resume|trigger` talk to a running scheduler.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..sqlite_store import connect

_SCHEMA = """
CREATE TABLE IF NOT EXISTS schedules (
    schedule_id  TEXT PRIMARY KEY,
    spec_json    TEXT NOT NULL,
    paused       INTEGER NOT NULL DEFAULT 0,
    last_fire    TEXT,
    next_fire    TEXT,
    updated_at   TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    run_key       TEXT PRIMARY KEY,
    schedule_id   TEXT NOT NULL,
    asset_id      TEXT NOT NULL,
    slot          TEXT NOT NULL,
    job_id        TEXT NOT NULL,
    status        TEXT NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    restarts      INTEGER NOT NULL DEFAULT 0,
    not_before    TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    started_at    TEXT,
    finished_at   TEXT,
    model_version TEXT,
    error         TEXT
);
CREATE INDEX IF NOT EXISTS runs_by_status ON runs (status, not_before);
CREATE INDEX IF NOT EXISTS runs_by_schedule ON runs (schedule_id, slot);
"""

ACTIVE = ("pending", "running")
HISTORY_LIMIT = 200  # finished runs kept per schedule


def iso(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).isoformat()


def parse(ts: str | None) -> datetime | None:
    return datetime.fromisoformat(ts) if ts else None


@dataclass
class RunRow:
    run_key: str
    schedule_id: str
    asset_id: str
    slot: datetime
    job_id: str
    status: str
    attempts: int
    not_before: datetime
    model_version: str | None = None
    error: str | None = None
    restarts: int = 0  # resumptions after the scheduler was killed or stopped: not failures

    def to_dict(self) -> dict[str, Any]:
        return {"run_key": self.run_key, "schedule_id": self.schedule_id, "asset_id": self.asset_id,
                "slot": iso(self.slot), "job_id": self.job_id, "status": self.status, "attempts": self.attempts,
                "restarts": self.restarts, "model_version": self.model_version, "error": self.error}


class StateStore:
    def __init__(self, directory: str | Path) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.db_path = self.dir / "scheduler.db"
        self._lock_fd: int | None = None
        self._schema_ready = False

    def _connect(self) -> sqlite3.Connection:
        """Opening creates the schema lazily: a refused scheduler (the lock is held) has written nothing."""
        conn = connect(self.db_path, None if self._schema_ready else _SCHEMA)
        if not self._schema_ready:
            if "restarts" not in {r[1] for r in conn.execute("PRAGMA table_info(runs)")}:
                conn.execute("ALTER TABLE runs ADD COLUMN restarts INTEGER NOT NULL DEFAULT 0")
            self._schema_ready = True
        return conn

    # ------------------------------------------------------------------ single active scheduler
    def acquire(self) -> None:
        """Become the one active scheduler of this store (idempotent). Taken before any write."""
        if self._lock_fd is not None:
            return
        path = self.dir / "scheduler.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = path.read_text().strip() or "?"
            os.close(fd)
            raise UserError(
                f"another scheduler (pid {holder}) is already running with the state store {self.dir}",
                hint="stop it first, or give this one its own --state-dir",
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd

    def release(self) -> None:
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    # ------------------------------------------------------------------ schedules
    def upsert_schedule(self, schedule_id: str, spec: dict[str, Any], now: datetime) -> dict[str, Any]:
        """Insert a new schedule (last fire = now: no catch-up for slots before it existed) or update its spec,
        keeping its state (last fire, paused) across restarts."""
        with closing(self._connect()) as conn:
            conn.execute(
                "INSERT INTO schedules (schedule_id, spec_json, last_fire, updated_at) VALUES (?,?,?,?) "
                "ON CONFLICT(schedule_id) DO UPDATE SET spec_json=excluded.spec_json, updated_at=excluded.updated_at",
                (schedule_id, json.dumps(spec, sort_keys=True), iso(now), iso(now)))
        return self.get_schedule(schedule_id)

    def insert_schedule_if_absent(self, schedule_id: str, spec: dict[str, Any], now: datetime) -> None:
        """For clients of a running scheduler (`schedule trigger`): never change the spec it runs with."""
        with closing(self._connect()) as conn:
            conn.execute("INSERT OR IGNORE INTO schedules (schedule_id, spec_json, last_fire, updated_at) "
                         "VALUES (?,?,?,?)", (schedule_id, json.dumps(spec, sort_keys=True), iso(now), iso(now)))

    def get_schedule(self, schedule_id: str) -> dict[str, Any]:
        with closing(self._connect()) as conn:
            row = conn.execute("SELECT schedule_id, spec_json, paused, last_fire, next_fire FROM schedules "
                               "WHERE schedule_id=?", (schedule_id,)).fetchone()
        if row is None:
            raise UserError(f"unknown schedule {schedule_id!r}", hint="`unity-mlops schedule list` shows them")
        return {"schedule_id": row[0], "spec": json.loads(row[1]), "paused": bool(row[2]),
                "last_fire": parse(row[3]), "next_fire": parse(row[4])}

    def list_schedules(self) -> list[dict[str, Any]]:
        with closing(self._connect()) as conn:
            ids = [r[0] for r in conn.execute("SELECT schedule_id FROM schedules ORDER BY schedule_id")]
        return [self.get_schedule(i) for i in ids]

    def set_fire_times(self, schedule_id: str, last_fire: datetime | None, next_fire: datetime | None) -> None:
        with closing(self._connect()) as conn:
            conn.execute("UPDATE schedules SET last_fire=COALESCE(?, last_fire), next_fire=? WHERE schedule_id=?",
                         (iso(last_fire) if last_fire else None, iso(next_fire) if next_fire else None, schedule_id))

    def set_paused(self, schedule_id: str, paused: bool, now: datetime) -> None:
        self.get_schedule(schedule_id)
        with closing(self._connect()) as conn:
            if paused:
                conn.execute("UPDATE schedules SET paused=1 WHERE schedule_id=?", (schedule_id,))
            else:  # resume from now: the slots that passed while paused are not run in a burst
                conn.execute("UPDATE schedules SET paused=0, last_fire=? WHERE schedule_id=?", (iso(now), schedule_id))

    # ------------------------------------------------------------------ runs
    def add_run(self, row: RunRow, now: datetime) -> bool:
        """Record a run before launching it. False if this (schedule, slot, asset) was recorded before."""
        with closing(self._connect()) as conn:
            cur = conn.execute(
                "INSERT OR IGNORE INTO runs (run_key, schedule_id, asset_id, slot, job_id, status, attempts, "
                "not_before, created_at, error) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (row.run_key, row.schedule_id, row.asset_id, iso(row.slot), row.job_id, row.status, row.attempts,
                 iso(row.not_before), iso(now), row.error))
            return cur.rowcount == 1

    def update_run(self, run_key: str, **fields: Any) -> None:
        cols, values = [], []
        for k, v in fields.items():
            cols.append(f"{k}=?")
            values.append(iso(v) if isinstance(v, datetime) else v)
        with closing(self._connect()) as conn:
            conn.execute(f"UPDATE runs SET {', '.join(cols)} WHERE run_key=?", (*values, run_key))

    def _rows(self, where: str, args: tuple) -> list[RunRow]:
        with closing(self._connect()) as conn:
            rows = conn.execute("SELECT run_key, schedule_id, asset_id, slot, job_id, status, attempts, not_before, "
                                f"model_version, error, restarts FROM runs WHERE {where}", args).fetchall()
        return [RunRow(r[0], r[1], r[2], parse(r[3]), r[4], r[5], r[6], parse(r[7]), r[8], r[9], r[10])  # type: ignore[arg-type]
                for r in rows]

    def pending_runs(self) -> list[RunRow]:
        return self._rows("status='pending' ORDER BY slot, run_key", ())

    def runs_with_status(self, status: str) -> list[RunRow]:
        return self._rows("status=? ORDER BY slot", (status,))

    def runs_for(self, schedule_id: str, limit: int = 20) -> list[RunRow]:
        return self._rows("schedule_id=? ORDER BY slot DESC, run_key LIMIT ?", (schedule_id, limit))

    def recover_interrupted(self) -> list[RunRow]:
        """Runs a previous process left running (killed) or interrupted (SIGTERM): back to pending, to resume.
        A restart is counted apart from failures, so it never uses up a run's retries."""
        rows = self._rows("status IN ('running', 'interrupted')", ())
        with closing(self._connect()) as conn:
            conn.execute("UPDATE runs SET status='pending', restarts=restarts+1 "
                         "WHERE status IN ('running', 'interrupted')")
        return rows

    def prune(self, schedule_id: str, keep: int = HISTORY_LIMIT) -> None:
        with closing(self._connect()) as conn:
            conn.execute("DELETE FROM runs WHERE schedule_id=? AND status NOT IN ('pending','running','interrupted') "
                         "AND run_key NOT IN (SELECT run_key FROM runs WHERE schedule_id=? ORDER BY slot DESC "
                         "LIMIT ?)", (schedule_id, schedule_id, keep))

    def status_counts(self) -> dict[str, int]:
        with closing(self._connect()) as conn:
            return dict(conn.execute("SELECT status, COUNT(*) FROM runs GROUP BY status").fetchall())
