"""The scheduler's persisted state (SQLite by default, or the shared PostgreSQL): schedules and runs.

A run is keyed by (schedule id, scheduled slot, asset id) and is recorded *before* it is launched, so a restarted
scheduler finds it and resumes it instead of starting that slot again. The history kept per schedule is bounded.
The store is also how `unity-mlops schedule pause|resume|trigger` talk to a running scheduler.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..store import Database, DatabaseError, open_database
from ..store.database import lock_key, redact

log = logging.getLogger("unity_mlops.scheduler")

STORE = "scheduler"  # the write-lock name of the scheduler's tables
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
    def __init__(self, directory: str | Path, database: str | None = None) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.db_path = self.dir / "scheduler.db"
        self.db: Database = open_database(database or self.db_path)
        self._lock_fd: int | None = None
        self._lock_conn: Any = None

    def _write(self, sql: str, **params: Any) -> int:
        return self.db.execute(sql, params, name=STORE)

    # ------------------------------------------------------------------ single active scheduler
    def acquire(self) -> None:
        """Become the one active scheduler of this store (idempotent), before any write: a file lock beside an
        embedded store, a session advisory lock in a shared PostgreSQL (released if this process dies)."""
        if self._lock_fd is not None or self._lock_conn is not None:
            return
        if not self.db.is_sqlite:
            self.db.ready()
            conn = self.db.engine.connect()
            if not conn.exec_driver_sql(f"SELECT pg_try_advisory_lock({lock_key('active-scheduler')})").scalar():
                conn.invalidate()
                raise UserError(f"another scheduler is already running with the state store in {redact(self.db.url)}",
                                hint="stop it first, or give this one its own database")
            conn.commit()
            self._lock_conn = conn
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

    def hold_lock(self) -> bool:
        """Whether this process is still the active scheduler. A PostgreSQL restart ends the session that held the
        advisory lock: it is taken again on a new session, unless another scheduler took it meanwhile (False).
        Raises DatabaseError while the server is away."""
        if self._lock_conn is None:
            return True  # the file lock (embedded store) cannot be lost; never acquired: nothing to hold
        from sqlalchemy.exc import DBAPIError

        try:
            self._lock_conn.exec_driver_sql("SELECT 1")
            self._lock_conn.commit()
            return True
        except DBAPIError:
            self._lock_conn.invalidate()
            self._lock_conn = None
        try:
            with self.db._errors():
                self.acquire()
        except DatabaseError:
            raise
        except UserError:
            return False
        log.warning("state store: the database restarted; the active-scheduler lock was taken again")
        return True

    def release(self) -> None:
        if self._lock_conn is not None:
            self._lock_conn.invalidate()  # ends the session (not back to the pool), which releases the lock
            self._lock_conn.close()
            self._lock_conn = None
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    # ------------------------------------------------------------------ schedules
    def upsert_schedule(self, schedule_id: str, spec: dict[str, Any], now: datetime) -> dict[str, Any]:
        """Insert a new schedule (last fire = now: no catch-up for slots before it existed) or update its spec,
        keeping its state (last fire, paused) across restarts."""
        self._write("INSERT INTO schedules (schedule_id, spec_json, last_fire, updated_at) VALUES (:id, :spec, :now, "
                    ":now) ON CONFLICT (schedule_id) DO UPDATE SET spec_json=excluded.spec_json, "
                    "updated_at=excluded.updated_at", id=schedule_id, spec=json.dumps(spec, sort_keys=True),
                    now=iso(now))
        return self.get_schedule(schedule_id)

    def insert_schedule_if_absent(self, schedule_id: str, spec: dict[str, Any], now: datetime) -> None:
        """For clients of a running scheduler (`schedule trigger`): never change the spec it runs with."""
        self._write("INSERT INTO schedules (schedule_id, spec_json, last_fire, updated_at) VALUES (:id, :spec, :now, "
                    ":now) ON CONFLICT (schedule_id) DO NOTHING", id=schedule_id,
                    spec=json.dumps(spec, sort_keys=True), now=iso(now))

    @staticmethod
    def _schedule(row: tuple) -> dict[str, Any]:
        return {"schedule_id": row[0], "spec": json.loads(row[1]), "paused": bool(row[2]),
                "last_fire": parse(row[3]), "next_fire": parse(row[4])}

    def get_schedule(self, schedule_id: str) -> dict[str, Any]:
        row = self.db.one("SELECT schedule_id, spec_json, paused, last_fire, next_fire FROM schedules "
                          "WHERE schedule_id=:id", {"id": schedule_id})
        if row is None:
            raise UserError(f"unknown schedule {schedule_id!r}", hint="`unity-mlops schedule list` shows them")
        return self._schedule(row)

    def list_schedules(self, limit: int | None = None, offset: int = 0) -> list[dict[str, Any]]:
        """The schedules by id, in one query (a page of them with `limit`)."""
        page = " LIMIT :limit OFFSET :offset" if limit is not None else ""
        return [self._schedule(r) for r in self.db.all(
            "SELECT schedule_id, spec_json, paused, last_fire, next_fire FROM schedules ORDER BY schedule_id" + page,
            {"limit": limit, "offset": max(0, offset)})]

    def count_schedules(self) -> int:
        return int(self.db.one("SELECT COUNT(*) FROM schedules")[0])

    def due_schedules(self, now: datetime) -> list[str]:
        """The schedules not paused whose next fire time has come (or was never computed), by index: a tick costs
        what is due, not how many schedules there are. (ISO times in UTC compare as strings.)"""
        return [r[0] for r in self.db.all("SELECT schedule_id FROM schedules WHERE paused = 0 AND (next_fire IS NULL "
                                          "OR next_fire <= :now) ORDER BY schedule_id", {"now": iso(now)})]

    def set_fire_times(self, schedule_id: str, last_fire: datetime | None, next_fire: datetime | None) -> None:
        self._write("UPDATE schedules SET last_fire=COALESCE(:last, last_fire), next_fire=:next WHERE schedule_id=:id",
                    last=iso(last_fire) if last_fire else None, next=iso(next_fire) if next_fire else None,
                    id=schedule_id)

    def set_paused(self, schedule_id: str, paused: bool, now: datetime) -> None:
        self.get_schedule(schedule_id)
        if paused:
            self._write("UPDATE schedules SET paused=1 WHERE schedule_id=:id", id=schedule_id)
        else:  # resume from now: the slots that passed while paused are not run in a burst
            self._write("UPDATE schedules SET paused=0, last_fire=:now WHERE schedule_id=:id", now=iso(now),
                        id=schedule_id)

    # ------------------------------------------------------------------ runs
    def add_run(self, row: RunRow, now: datetime) -> bool:
        """Record a run before launching it. False if this (schedule, slot, asset) was recorded before."""
        return self._write(
            "INSERT INTO runs (run_key, schedule_id, asset_id, slot, job_id, status, attempts, not_before, created_at, "
            "error) VALUES (:key, :schedule, :asset, :slot, :job, :status, :attempts, :not_before, :now, :error) "
            "ON CONFLICT (run_key) DO NOTHING", key=row.run_key, schedule=row.schedule_id, asset=row.asset_id,
            slot=iso(row.slot), job=row.job_id, status=row.status, attempts=row.attempts,
            not_before=iso(row.not_before), now=iso(now), error=row.error) == 1

    def update_run(self, run_key: str, **fields: Any) -> None:
        if not set(fields) <= _RUN_FIELDS:
            raise ValueError(f"unknown run fields {sorted(set(fields) - _RUN_FIELDS)}")
        values = {k: iso(v) if isinstance(v, datetime) else v for k, v in fields.items()}
        self._write(f"UPDATE runs SET {', '.join(f'{k}=:{k}' for k in values)} WHERE run_key=:run_key",
                    run_key=run_key, **values)

    def _rows(self, where: str, **params: Any) -> list[RunRow]:
        rows = self.db.all("SELECT run_key, schedule_id, asset_id, slot, job_id, status, attempts, not_before, "
                           f"model_version, error, restarts FROM runs WHERE {where}", params)
        return [RunRow(r[0], r[1], r[2], parse(r[3]), r[4], r[5], r[6], parse(r[7]), r[8], r[9], r[10])  # type: ignore[arg-type]
                for r in rows]

    def pending_runs(self) -> list[RunRow]:
        return self._rows("status='pending' ORDER BY slot, run_key")

    def runs_with_status(self, status: str) -> list[RunRow]:
        return self._rows("status=:status ORDER BY slot", status=status)

    def runs_for(self, schedule_id: str, limit: int = 20) -> list[RunRow]:
        return self._rows("schedule_id=:id ORDER BY slot DESC, run_key LIMIT :limit", id=schedule_id, limit=limit)

    def recover_interrupted(self) -> list[RunRow]:
        """Runs a previous process left running (killed) or interrupted (SIGTERM): back to pending, to resume.
        A restart is counted apart from failures, so it never uses up a run's retries."""
        rows = self._rows("status IN ('running', 'interrupted')")
        self._write("UPDATE runs SET status='pending', restarts=restarts+1 WHERE status IN ('running', 'interrupted')")
        return rows

    def prune(self, schedule_id: str, keep: int = HISTORY_LIMIT) -> None:
        self._write("DELETE FROM runs WHERE schedule_id=:id AND status NOT IN ('pending','running','interrupted') "
                    "AND run_key NOT IN (SELECT run_key FROM runs WHERE schedule_id=:id ORDER BY slot DESC "
                    "LIMIT :keep)", id=schedule_id, keep=keep)

    def status_counts(self) -> dict[str, int]:
        return dict(self.db.all("SELECT status, COUNT(*) FROM runs GROUP BY status"))


_RUN_FIELDS = {"status", "attempts", "restarts", "not_before", "started_at", "finished_at", "model_version", "error",
               "job_id"}
