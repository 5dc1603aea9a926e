"""Shared state by URL: SQLite files by default, PostgreSQL when `UNITY_MLOPS_DATABASE_URL` / `database:` names one.

The registry index, its ledger, the scheduler state and the webhook outbox all go through `Database`: SQLAlchemy Core
with plain, portable SQL, one serialized write transaction per critical section (SQLite `BEGIN IMMEDIATE`, a
transaction-scoped advisory lock in PostgreSQL) and one Alembic migration history for both.
"""

from .database import Database, DatabaseError, open_database

__all__ = ["Database", "DatabaseError", "open_database"]
