"""The runs index: a run's summary as a row of the store (`job_runs`: an embedded SQLite file beside the workspace's
state, or the shared PostgreSQL database, where remote workers write theirs too).

The pipeline writes the row at each state transition it persists (`JobState.save`); the dashboard's pages and the
CLI's listings filter, sort and page it in SQL, so their cost does not grow with every run ever made. It is derived
data: the run folders stay the source of truth, and `reindex` rebuilds it from them (after a crash between a state
file and its row, or for folders an older release wrote).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import text

from .. import settings
from ..store import open_database
from .summary import RunSummary, summarize

log = logging.getLogger("unity_mlops.runs")

STORE = "runs"
COLUMNS = [f.name for f in fields(RunSummary)]
NOT_NULL = ("job_id", "status", "trainer", "started_at", "asset")
SORTS = ("job_id", "status", "trainer", "steps", "success", "reward", "duration_s", "started_at", "asset")


def _row(summary: RunSummary, attempt: int | None) -> dict[str, Any]:
    return {**asdict(summary), "attempt": attempt, "updated_at": datetime.now(timezone.utc).isoformat()}


def _summary(row: tuple) -> RunSummary:
    return RunSummary(**dict(zip(COLUMNS, row, strict=True)))


def _like(text_: str) -> str:
    return "%" + text_.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


class RunTable:
    def __init__(self, database: str | Path) -> None:
        self.db = open_database(database)

    @classmethod
    def for_paths(cls, paths: settings.Paths) -> RunTable:
        """The shared database when there is one, else the workspace's own file."""
        return cls(paths.database or paths.workspace / settings.STATE_DIRNAME / "runs.db")

    # ------------------------------------------------------------------ writing
    def _upsert(self, conn: Any, row: dict[str, Any]) -> None:
        names = [*COLUMNS, "attempt", "updated_at"]
        conn.execute(text(f"INSERT INTO job_runs ({', '.join(names)}) VALUES ({', '.join(':' + n for n in names)}) "
                          f"ON CONFLICT (job_id) DO UPDATE SET "
                          f"{', '.join(f'{n} = excluded.{n}' for n in names if n != 'job_id')}"), row)

    def record(self, job_dir: Path, attempt: int | None = None) -> RunSummary:
        """The run's row, from its folder as it is now."""
        summary = summarize(job_dir)
        with self.db.write(STORE) as conn:
            self._upsert(conn, _row(summary, attempt))
        return summary

    def reindex(self, workspace: Path, drop_others: bool = False) -> int:
        """Write the rows of every run folder of the workspace. Rows of other machines' runs (a shared database) are
        kept unless `drop_others`: then the index is exactly these folders. Returns how many rows were written."""
        from .jobstate import JobState

        dirs = [d for d in workspace.iterdir() if d.is_dir() and not d.name.startswith(("_", "."))] \
            if workspace.is_dir() else []
        rows = []
        for d in dirs:
            if not (d / "state.json").exists() and not (d / "result.json").exists():
                continue  # not a run folder
            state = JobState.load(d)
            rows.append(_row(summarize(d), state.attempt if state else None))
        with self.db.write(STORE) as conn:
            if drop_others:
                conn.execute(text("DELETE FROM job_runs"))
            for row in rows:
                self._upsert(conn, row)
        return len(rows)

    # ------------------------------------------------------------------ reading
    def query(self, *, text_: str = "", status: str = "", sort: str = "started_at", descending: bool = True,
              offset: int = 0, limit: int = 50) -> tuple[list[RunSummary], int]:
        """One page of runs (a filter on job id or asset, a status), sorted, and how many match. Rows without the
        sort key come last whichever the direction."""
        key = sort if sort in SORTS else "started_at"
        where, params = [], {"limit": max(0, limit), "offset": max(0, offset)}
        if text_:
            where.append("(lower(job_id) LIKE :t ESCAPE '\\' OR lower(asset) LIKE :t ESCAPE '\\')")
            params["t"] = _like(text_)
        if status:
            where.append("status = :status")
            params["status"] = status
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        direction = "DESC" if descending else "ASC"
        # the columns that are never NULL sort straight off their index; the others put NULL last either way
        nulls = "" if key in NOT_NULL else " NULLS LAST"
        order = f"{key} {direction}{nulls}, job_id {direction}"
        rows = self.db.all(f"SELECT {', '.join(COLUMNS)} FROM job_runs {clause} ORDER BY {order} "
                           "LIMIT :limit OFFSET :offset", params)
        total = self.db.one(f"SELECT COUNT(*) FROM job_runs {clause}", params)
        return [_summary(r) for r in rows], int(total[0]) if total else 0

    def get(self, job_id: str) -> RunSummary | None:
        row = self.db.one(f"SELECT {', '.join(COLUMNS)} FROM job_runs WHERE job_id = :j", {"j": job_id})
        return _summary(row) if row else None

    def count(self) -> int:
        return int(self.db.one("SELECT COUNT(*) FROM job_runs")[0])


def index_run(paths: settings.Paths, job_dir: Path, state: Any) -> Any:
    """The `JobState.on_save` of a run: its row written now and at each transition. The index is derived data, so a
    store that cannot be written warns (and `unity-mlops db reindex` repairs it) instead of failing the job."""
    from sqlalchemy.exc import SQLAlchemyError

    from ..store import DatabaseError

    table: RunTable | None = None

    def record(s: Any) -> None:
        nonlocal table
        try:
            table = table or RunTable.for_paths(paths)
            table.record(job_dir, s.attempt)
        except (DatabaseError, SQLAlchemyError, OSError) as exc:
            log.warning("runs index: %s not recorded (%s); `unity-mlops db reindex` rebuilds the index",
                        job_dir.name, exc)

    record(state)
    return record
