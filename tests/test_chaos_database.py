"""The shared database dies under a running scheduler: PostgreSQL killed -9 (the server and every backend, as when
its machine dies) and restarted, twice, while scheduled jobs train and register. The scheduler keeps running and
keeps its lock, every run completes, none registers twice, every model is there. (bench/chaos.py runs the long
version.)"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from servers import Postgres

CONFIG = """
workspace: {workspace}
database: {database}
poll_interval_s: 0.5
schedules:
  - schedule_id: nightly
    cron_expression: "0 2 * * *"
    max_retries: 6
    retry_backoff_s: 1
    overlap_policy: queue
    asset_specs:
      - {{asset_id: db-a, name: AlphaAgent, description: Reach target position}}
      - {{asset_id: db-b, name: BetaAgent, description: Reach target position}}
    rl_config:
      trainer: fast
      max_steps: 16384
      checkpoint_interval: 4096
      summary_freq: 4096
      hyperparameters: {{buffer_size: 1024, batch_size: 256}}
"""
KILLS = 2


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "mlops_unity_pipeline", *args]


def runs(url: str) -> list[tuple[str, str]]:
    import psycopg

    try:
        with psycopg.connect(url, connect_timeout=5) as conn:
            return conn.execute("SELECT run_key, status FROM runs ORDER BY run_key").fetchall()
    except psycopg.OperationalError:
        return []


@pytest.fixture
def own_postgres():
    """A server of this test's own: it is killed."""
    try:
        server = Postgres().start()
    except RuntimeError as exc:
        pytest.fail(str(exc))
    yield server
    server.stop()


def test_the_scheduler_survives_postgresql_killed_and_restarted(tmp_path, own_postgres):
    from mlops_unity_pipeline.store import open_database

    url = own_postgres.create_database()
    open_database(url).upgrade()
    workspace = tmp_path / "runs"
    cfg = tmp_path / "scheduler.yaml"
    cfg.write_text(CONFIG.format(workspace=workspace, database=url))
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "UNITY_MLOPS_DATABASE_URL": url}
    for _ in range(2):  # two manual slots of two assets: four runs
        out = subprocess.run(cli("schedule", "trigger", str(cfg), "nightly"), capture_output=True, text=True, env=env,
                             timeout=120)
        assert out.returncode == 0, out.stderr
        time.sleep(1.1)
    assert len(runs(url)) == 4
    log_path = tmp_path / "scheduler.log"
    proc = subprocess.Popen(cli("schedule", "run", str(cfg)), stdout=log_path.open("w"), stderr=subprocess.STDOUT,
                            env=env)
    try:
        for kill in range(KILLS):  # each time a job is training (and others wait, or register)
            deadline = time.monotonic() + 180
            while not any(s == "running" for _, s in runs(url)):
                assert time.monotonic() < deadline and proc.poll() is None, log_path.read_text()[-3000:]
                time.sleep(0.2)
            time.sleep(0.5 + kill)
            own_postgres.kill()
            time.sleep(3.0)  # the scheduler and its jobs meet a dead server
            assert proc.poll() is None, log_path.read_text()[-3000:]
            own_postgres.restart()
        deadline = time.monotonic() + 300
        while not (len(done := runs(url)) == 4 and all(s == "completed" for _, s in done)):
            assert time.monotonic() < deadline and proc.poll() is None, (done, log_path.read_text()[-3000:])
            time.sleep(0.5)
        assert proc.poll() is None, "the scheduler is still running"
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=120)
    log = log_path.read_text()
    assert code == 0, log[-3000:]
    assert "state store unavailable" in log and "state store back after" in log, log[-3000:]
    assert "another scheduler took over" not in log

    import psycopg

    with psycopg.connect(url) as conn:
        versions = conn.execute("SELECT run_key, version FROM versions ORDER BY run_key").fetchall()
    assert sorted(k for k, _ in versions) == sorted(k for k, _ in runs(url)), "one version per run, none twice"
    for _, version in versions:
        model = next((workspace / "_registry" / "models" / version).glob("*.onnx"))
        assert model.stat().st_size > 0


def test_events_published_while_postgresql_is_down_are_delivered_once_when_it_is_back(tmp_path, own_postgres,
                                                                                      monkeypatch):
    """The outbox lives in the shared database: while it is down an event is spooled beside the outbox (redacted,
    as in the database) and recorded by the next sender that finds the database back — here another process's
    outbox on the same state directory — each delivered once, under the message id it was given."""
    from mlops_unity_pipeline.store import open_database
    from mlops_unity_pipeline.webhooks import Endpoint, WebhookOutbox
    from test_webhooks import SECRET, Receiver

    url = own_postgres.create_database()
    open_database(url).upgrade()
    monkeypatch.setenv("GAME_API_TOKEN", "hunter2-not-for-disk")  # a secret the product knows: masked everywhere
    data = {"job_id": "j", "asset_id": "a", "model_version": "v", "note": "called with hunter2-not-for-disk"}
    rx = Receiver()
    try:
        box = WebhookOutbox(tmp_path / "webhooks.db", [Endpoint(rx.url, SECRET)], database=url)
        first = box.emit("job.started", data, key="run-1")
        assert box.deliver_due() == 1 and [e["id"] for e in rx.received] == [first]

        own_postgres.kill()
        spooled = [box.emit("job.completed", data, key="run-1"), box.emit("model.registered", data, key="run-1"),
                   box.emit("job.started", data)]
        assert all(spooled) and len(set(spooled)) == 3
        assert [box.spool.message_id(p) for p in box.spool.files()] == spooled, "kept in order, under their message ids"
        for path in box.spool.files():
            assert SECRET not in path.read_text() and "hunter2" not in path.read_text()
            assert path.stat().st_mode & 0o777 == 0o600
        with pytest.raises(Exception, match="unavailable"):
            box.deliver_due()
        assert len(box.spool.files()) == 3, "nothing lost to a failed pass"

        own_postgres.restart()
        other = WebhookOutbox(tmp_path / "webhooks.db", [Endpoint(rx.url, SECRET)], database=url)
        assert other.deliver_due() == 3
        assert box.deliver_due() == 0 and other.spool.files() == []
        other.emit("job.completed", data, key="run-1")  # the same event again (a restarted run): nothing new
        other.deliver_due()
        assert sorted(e["id"] for e in rx.received) == sorted([first, *spooled])
        assert len(rx.received) == 4 and rx.bad_signatures == 0
    finally:
        rx.stop()
