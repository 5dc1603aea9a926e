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
    url = _migrated(request.getfixturevalue("postgres"))
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
