"""One database behind every store, chosen by URL.

Why one small class and not an ORM: the stores' guarantees (one alias holder, exactly-once registration, claimed
deliveries) come from *which statements run in one serialized transaction*, and that is easiest to read as SQL.
`write(name)` is the only way to change state atomically: on SQLite it is `BEGIN IMMEDIATE` (the database's write
lock, as the embedded stores always did); on PostgreSQL a transaction that first takes the advisory lock `name`, so
writers of one store serialize across machines just as processes did on one host, and readers are never blocked.

The schema belongs to Alembic (`store/migrations/`). An embedded SQLite store migrates itself on first use (nothing
to run on a laptop); a PostgreSQL database is migrated by `unity-mlops db upgrade` and checked when opened, so a
deployment never changes a shared schema as a side effect of starting a job.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..errors import UserError

HEAD = "0003"  # the newest migration; tests check it against the migration scripts


class DatabaseError(UserError):
    """A store that cannot be opened or used; the message names the database and what to do."""


def redact(url: str) -> str:
    """The URL without its password, for messages and logs."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL we can parse: say nothing of it
        return "<database URL>"


def normalize(url_or_path: str | Path) -> str:
    """A path is an embedded SQLite file; `postgresql://` uses psycopg 3 (the driver this product pins)."""
    text = str(url_or_path)
    if "://" not in text:
        return f"sqlite:///{Path(text).resolve()}"
    if text.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + text.split("://", 1)[1]
    return text


def lock_key(name: str) -> int:
    """A stable signed 64-bit advisory-lock key for a name (PostgreSQL's lock keys are bigints)."""
    return int.from_bytes(hashlib.sha256(f"unity-mlops:{name}".encode()).digest()[:8], "big", signed=True)


class Database:
    """An engine plus the two ways the stores use it: `read()` and `write(name)`."""

    def __init__(self, url: str) -> None:
        from sqlalchemy import create_engine, event

        self.url = url
        self.dialect = url.split(":", 1)[0].split("+", 1)[0]
        if self.dialect not in ("sqlite", "postgresql"):
            raise DatabaseError(f"unsupported database {redact(url)}",
                                hint="use a file path (SQLite) or postgresql://user@host:port/dbname")
        if self.is_sqlite:
            self.path: Path | None = Path(url.split(":///", 1)[1])
            self.engine = create_engine(url, connect_args={"timeout": 30, "isolation_level": None},
                                        pool_size=2, max_overflow=8)
            event.listen(self.engine, "connect", _sqlite_pragmas)
            event.listen(self.engine, "begin", _sqlite_begin)
        else:
            self.path = None
            self.engine = create_engine(url, pool_pre_ping=True, pool_size=2, max_overflow=8)
        self._checked = False
        self._lock = threading.Lock()

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    def is_empty(self) -> bool:
        """True for an embedded store never written (reading it must not create the file)."""
        return self.path is not None and not self.path.exists()

    def __repr__(self) -> str:
        return f"Database({redact(self.url)})"

    # ------------------------------------------------------------------ transactions
    @contextmanager
    def read(self) -> Iterator[Any]:
        """A consistent snapshot for several reads."""
        self.ready()
        with self._errors(), self.engine.connect() as conn, conn.begin():
            yield conn

    @contextmanager
    def write(self, name: str) -> Iterator[Any]:
        """One serialized write transaction for the store `name`; commits on exit, rolls back on any exception."""
        self.ready()
        with self._errors(), self.engine.connect() as conn:
            if self.is_sqlite:
                conn.info["begin"] = "BEGIN IMMEDIATE"
            with conn.begin():
                if not self.is_sqlite:
                    conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({lock_key(name)})")
                yield conn

    def execute(self, sql: str, params: Mapping[str, Any] | None = None, *, name: str) -> Any:
        """One statement in its own write transaction; returns its result's rowcount."""
        from sqlalchemy import text

        with self.write(name) as conn:
            return conn.execute(text(sql), dict(params or {})).rowcount

    def all(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple]:
        from sqlalchemy import text

        with self.read() as conn:
            return [tuple(r) for r in conn.execute(text(sql), dict(params or {}))]

    def one(self, sql: str, params: Mapping[str, Any] | None = None) -> tuple | None:
        rows = self.all(sql, params)
        return rows[0] if rows else None

    @contextmanager
    def _errors(self) -> Iterator[None]:
        from sqlalchemy.exc import OperationalError

        try:
            yield
        except OperationalError as exc:
            if self.is_sqlite:
                raise
            raise DatabaseError(f"the database {redact(self.url)} is unavailable: {exc.orig}",
                                hint="check that the server is up and the URL is right") from None

    # ------------------------------------------------------------------ schema
    def revision(self) -> str | None:
        from sqlalchemy import inspect, text

        with self.engine.connect() as conn:
            if not inspect(conn).has_table("alembic_version"):
                return None
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()

    def ready(self) -> None:
        """Checked once per process: SQLite migrates itself, PostgreSQL must have been upgraded."""
        if self._checked:
            return
        with self._lock:
            if self._checked:
                return
            if self.path is not None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            try:
                current = self.revision()
            except Exception as exc:
                if self.is_sqlite:
                    raise
                raise DatabaseError(f"cannot open the database {redact(self.url)}: {_reason(exc)}",
                                    hint="check that the server is up and the URL is right") from None
            if current != HEAD:
                if not self.is_sqlite:
                    raise DatabaseError(
                        f"the database {redact(self.url)} is at schema revision {current or 'none'}, this release "
                        f"needs {HEAD}", hint="run `unity-mlops db upgrade` (with the same database URL) once")
                self.upgrade()
            self._checked = True

    def upgrade(self) -> tuple[str | None, str]:
        """Apply the migrations up to the newest; returns (before, after). Safe to run concurrently."""
        from .migrations import upgrade

        before = self.revision()
        upgrade(self)
        return before, HEAD

    def dispose(self) -> None:
        self.engine.dispose()


def _reason(exc: BaseException) -> str:
    return str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    """WAL with synchronous=FULL (a committed transaction survives a power loss). Switching a new file to WAL needs
    a moment of exclusive access, which several processes creating one store at once can collide on: retry."""
    import sqlite3

    for attempt in range(50):
        try:
            if dbapi_conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                dbapi_conn.execute("PRAGMA journal_mode=WAL")
            break
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            time.sleep(min(0.5, 0.02 * (attempt + 1)))
    dbapi_conn.execute("PRAGMA synchronous=FULL")


def _sqlite_begin(conn: Any) -> None:
    conn.exec_driver_sql(conn.info.pop("begin", "BEGIN"))


_OPEN: dict[tuple[int, str], Database] = {}
_OPEN_LOCK = threading.Lock()


def open_database(url_or_path: str | Path) -> Database:
    """The process's one `Database` for a URL or SQLite path (an engine and its pool are per process)."""
    url = normalize(url_or_path)
    key = (os.getpid(), url)
    with _OPEN_LOCK:
        db = _OPEN.get(key)
        if db is None:
            db = _OPEN[key] = Database(url)
        return db
