"""SQLite connections for the embedded stores (registry, scheduler state, webhook outbox).

WAL journal with synchronous=FULL (a committed transaction survives a power loss), a 30 s busy timeout, and a
retry around the first open: switching a brand-new database to WAL needs a moment of exclusive access, which
several processes creating the same store at once can collide on.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path


def connect(path: Path, schema: str | None = None, attempts: int = 50) -> sqlite3.Connection:
    last: Exception | None = None
    for attempt in range(attempts):
        conn = sqlite3.connect(path, timeout=30, isolation_level=None)
        try:
            if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            if schema:
                conn.executescript(schema)
            return conn
        except sqlite3.OperationalError as exc:
            conn.close()
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            last = exc
            time.sleep(min(0.5, 0.02 * (attempt + 1)))
    raise sqlite3.OperationalError(f"{path}: could not open the database: {last}")
