"""The store layer itself: one migration history for SQLite and PostgreSQL, schema checked at start, a server that
is down or never migrated gives one clear error, concurrent upgrades migrate once, the one-active-scheduler lock in
PostgreSQL dies with its process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from mlops_unity_pipeline.registry import LocalModelRegistry
from mlops_unity_pipeline.store import DatabaseError, open_database
from mlops_unity_pipeline.store.database import HEAD, redact
from mlops_unity_pipeline.store.migrations import head
from racing import race

CLI = [sys.executable, "-m", "mlops_unity_pipeline"]


def test_the_schema_head_the_code_expects_is_the_newest_migration():
    assert HEAD == head()


def test_an_embedded_store_migrates_itself_and_a_legacy_one_is_adopted(tmp_path):
    import sqlite3

    db = open_database(tmp_path / "fresh.db")
    assert db.is_empty() and db.revision() is None
    assert db.all("SELECT COUNT(*) FROM versions") == [(0,)]
    assert db.revision() == HEAD
    legacy = tmp_path / "legacy" / "scheduler.db"  # a store an earlier release made, without `restarts`
    legacy.parent.mkdir()
    with sqlite3.connect(legacy) as conn:
        conn.execute("CREATE TABLE runs (run_key TEXT PRIMARY KEY, schedule_id TEXT NOT NULL, asset_id TEXT NOT "
                     "NULL, slot TEXT NOT NULL, job_id TEXT NOT NULL, status TEXT NOT NULL, attempts INTEGER NOT "
                     "NULL DEFAULT 0, not_before TEXT NOT NULL, created_at TEXT NOT NULL, started_at TEXT, "
                     "finished_at TEXT, model_version TEXT, error TEXT)")
        conn.execute("INSERT INTO runs (run_key, schedule_id, asset_id, slot, job_id, status, not_before, "
                     "created_at) VALUES ('k', 's', 'a', 'x', 'j', 'completed', 'x', 'x')")
    old = open_database(legacy)
    assert old.all("SELECT run_key, restarts FROM runs") == [("k", 0)], "kept, and the new column added"


def test_a_postgresql_database_must_be_upgraded_first_and_says_so(postgres, tmp_path):
    url = postgres.create_database()
    env = {**os.environ, "UNITY_MLOPS_DATABASE_URL": url}
    r = subprocess.run([*CLI, "models", "list", "--workspace", str(tmp_path)], capture_output=True, text=True,
                       env=env, timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "schema revision none" in r.stderr and "unity-mlops db upgrade" in r.stderr
    r = subprocess.run([*CLI, "db", "status"], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 1 and "run `unity-mlops db upgrade`" in r.stdout
    r = subprocess.run([*CLI, "db", "upgrade"], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0 and f"schema empty -> {HEAD}" in r.stdout, r.stderr
    r = subprocess.run([*CLI, "db", "upgrade"], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0 and f"already at {HEAD}" in r.stdout
    r = subprocess.run([*CLI, "models", "list", "--workspace", str(tmp_path)], capture_output=True, text=True,
                       env=env, timeout=120)
    assert r.returncode == 0, r.stderr


def _upgrade(url):
    open_database(url).upgrade()
    return "ok"


def test_concurrent_upgrades_of_a_new_database_migrate_it_once(postgres):
    url = postgres.create_database()
    assert race(_upgrade, [(url,)] * 4) == ["ok"] * 4
    db = open_database(url)
    assert db.revision() == HEAD and db.all("SELECT COUNT(*) FROM alembic_version") == [(1,)]


def test_a_server_that_is_down_or_a_wrong_password_is_one_clear_error_without_the_password(tmp_path):
    import socket

    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))  # held, never listening: every connection to it is refused, and it stays ours
    url = f"postgresql://alice:s3cret-pw@127.0.0.1:{closed.getsockname()[1]}/nothing"
    with pytest.raises(DatabaseError, match="cannot open the database") as err:
        LocalModelRegistry(tmp_path / "reg", url).list()
    assert "s3cret-pw" not in str(err.value) and "***" in str(err.value)
    assert "s3cret-pw" not in redact(url)
    r = subprocess.run([*CLI, "models", "list", "--workspace", str(tmp_path)], capture_output=True, text=True,
                       env={**os.environ, "UNITY_MLOPS_DATABASE_URL": url}, timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr and "s3cret-pw" not in r.stderr
    assert "check that the server is up" in r.stderr
    closed.close()
    with pytest.raises(DatabaseError, match="unsupported database"):
        open_database("mysql://x@localhost/db")


SCHEDULER = """
import sys, time
from mlops_unity_pipeline.scheduler.store import StateStore
store = StateStore(sys.argv[1], sys.argv[2])
store.acquire()
print("holding", flush=True)
time.sleep(600)
"""


def test_one_active_scheduler_per_shared_database_and_the_lock_dies_with_its_process(postgres, tmp_path):
    from mlops_unity_pipeline.errors import UserError
    from mlops_unity_pipeline.scheduler.store import StateStore

    url = postgres.create_database()
    open_database(url).upgrade()
    holder = subprocess.Popen([sys.executable, "-c", SCHEDULER, str(tmp_path / "a"), url], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        other = StateStore(tmp_path / "b", url)  # another machine: its own state directory, the same database
        with pytest.raises(UserError, match="already running with the state store in"):
            other.acquire()
        holder.send_signal(signal.SIGKILL)  # kill -9: the server ends its session, and with it the lock
        holder.wait()
        for _ in range(200):
            try:
                other.acquire()
                break
            except UserError:
                time.sleep(0.05)
        else:
            pytest.fail("the lock of a killed scheduler was never released")
        other.release()
    finally:
        holder.kill()
        holder.wait()
