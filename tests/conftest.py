"""Shared fixtures. Tests marked `trainer` run the real ML-Agents trainer from the managed environment; they fail
(never silently skip) when it is missing, because CI must exercise them. Set UNITY_MLOPS_SKIP_TRAINER_TESTS=1 to
skip them on a machine without the environment."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "mlagents-samples"
if not SAMPLES.exists():  # CI clones the repo next to shared/
    SAMPLES = Path(os.environ.get("UNITY_MLOPS_SAMPLES", "/work/shared/mlagents-samples"))


@pytest.fixture(scope="session")
def samples() -> Path:
    if not SAMPLES.exists():
        pytest.fail(f"ML-Agents sample files not found at {SAMPLES} (set UNITY_MLOPS_SAMPLES)")
    return SAMPLES


@pytest.fixture(scope="session")
def trainer_env():
    if os.environ.get("UNITY_MLOPS_SKIP_TRAINER_TESTS") == "1":
        pytest.skip("UNITY_MLOPS_SKIP_TRAINER_TESTS=1")
    from mlops_unity_pipeline.errors import TrainerEnvError
    from mlops_unity_pipeline.trainer.environment import resolve

    try:
        return resolve()
    except TrainerEnvError as exc:
        pytest.fail(f"{exc} -- run `unity-mlops trainer setup` first (make test does it)")


@pytest.fixture
def clean_build_env(monkeypatch):
    """Jobs use the embedded defaults unless a test sets these."""
    for var in ("UNITY_BUILD_COMMAND", "MLAGENTS_TRAIN_COMMAND", "UNITY_MLOPS_WORKSPACE", "UNITY_MLOPS_REGISTRY",
                "GOOGLE_CLOUD_PROJECT", "UNITY_MLOPS_VERTEX_PROJECT", "VERTEX_REGION"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture(scope="session")
def postgres():
    """One real PostgreSQL server for the session (Debian's package, run as the postgres user on 127.0.0.1)."""
    from servers import Postgres

    try:
        server = Postgres().start()
    except RuntimeError as exc:
        pytest.fail(str(exc))
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, monkeypatch):
    """Each store-level test runs twice: on the embedded SQLite files (None: the default) and on a fresh, migrated
    PostgreSQL database (its URL, also exported as UNITY_MLOPS_DATABASE_URL so that code resolving `Paths` uses
    it)."""
    if request.param == "sqlite":
        monkeypatch.delenv("UNITY_MLOPS_DATABASE_URL", raising=False)
        return None
    return request.getfixturevalue("pg_database")


@pytest.fixture
def pg_database(postgres, monkeypatch):
    """A fresh, migrated PostgreSQL database, also exported as UNITY_MLOPS_DATABASE_URL (for child processes)."""
    url = _migrated(postgres)
    monkeypatch.setenv("UNITY_MLOPS_DATABASE_URL", url)
    return url


def _migrated(server) -> str:
    from mlops_unity_pipeline.store import open_database

    url = server.create_database()
    open_database(url).upgrade()
    return url


@pytest.fixture
def another_database(request, database):
    """A factory of further stores of the same kind as `database` (a second registry that shares nothing)."""
    if database is None:
        return lambda: None
    server = request.getfixturevalue("postgres")
    return lambda: _migrated(server)


@pytest.fixture
def gcs(monkeypatch):
    """The GCS emulator (gcp-storage-emulator) on a free loopback port, with the bucket `unity-models`; clients built
    while it runs talk to it (STORAGE_EMULATOR_HOST), child processes too."""
    from gcp_storage_emulator.server import create_server

    server = create_server("127.0.0.1", 0, in_memory=True, default_bucket="unity-models")
    server.start()
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{server._api._httpd.server_address[1]}")
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _no_background_thread_outlives_its_test():
    """A test stops the product's background threads it started (webhook senders, health servers): one left running
    polls its store for the rest of the session, and a process forked beside it may copy a lock it holds."""
    import threading
    import time

    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 10
    while True:
        left = [t.name for t in threading.enumerate()
                if t not in before and t.name.startswith("unity-mlops") and t.is_alive()]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert not left, f"the test left these threads running: {left} (close what it started)"


def pytest_sessionfinish(session, exitstatus):
    """No child process outlives the run: multiprocessing's exit handler would wait on a stuck one for ever."""
    import multiprocessing

    for child in multiprocessing.active_children():
        child.kill()
        child.join(10)
