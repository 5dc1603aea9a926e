"""The control-plane event log in the shared database (PostgreSQL), attacked as the file log is: racing appenders
on several processes, an edited row, a deleted row, deleted last rows, a rewritten and re-hashed history — every one
caught, by the chain or by a signed checkpoint. (A trigger refuses UPDATE/DELETE/TRUNCATE; the attacks below first
disable it, as a superuser could.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from sqlalchemy import text

from mlops_unity_pipeline.controlplane.eventlog import Checkpoints, ConcurrencyError, IntegrityError, record_hash
from mlops_unity_pipeline.controlplane.keys import generate, load_private
from mlops_unity_pipeline.controlplane.sql_eventlog import SqlEventLog, open_event_log
from racing import race


def _append_many(url, worker, n):
    log = SqlEventLog(url)
    for i in range(n):
        log.append("test", {"worker": worker, "i": i}, idempotency_key=f"{worker}-{i}")
    return worker


def test_racing_appenders_build_one_gapless_chain_and_keys_are_idempotent(pg_database):
    assert sorted(race(_append_many, [(pg_database, w, 25) for w in range(4)], timeout=300)) == [0, 1, 2, 3]
    log = SqlEventLog(pg_database)
    info = log.verify()
    assert info["events"] == 100 and log.head() == (100, info["head"])
    again = log.append("test", {"worker": 0, "i": 3}, idempotency_key="0-3")
    assert again["seq"] <= 100 and log.head()[0] == 100, "a repeated key returns the original event"
    with pytest.raises(ConcurrencyError, match="expected seq 7, the log is at 100"):
        log.append("test", {}, expected_seq=7)
    assert isinstance(open_event_log(pg_database), SqlEventLog)


def _tamper(url, sql, **params):
    log = SqlEventLog(url)
    with log.db.write("control-plane") as conn:
        conn.execute(text("ALTER TABLE control_events DISABLE TRIGGER control_events_append_only"))
        conn.execute(text(sql), params)
        conn.execute(text("ALTER TABLE control_events ENABLE TRIGGER control_events_append_only"))


def _rehashed(url, from_seq):
    rows = SqlEventLog(url).db.all("SELECT seq, line FROM control_events ORDER BY seq")
    recs = [json.loads(line) for _, line in rows]
    recs[from_seq - 1]["payload"] = {"i": "forged"}
    prev = recs[from_seq - 2]["hash"] if from_seq > 1 else "0" * 64
    for r in recs[from_seq - 1:]:
        r["prev_hash"], r["hash"] = prev, None
        r.pop("hash")
        r["hash"] = record_hash(r)
        prev = r["hash"]
    return recs


@pytest.fixture
def signed(pg_database, tmp_path):
    log = SqlEventLog(pg_database)
    for i in range(20):
        log.append("test", {"i": i})
    key_path, pub = generate(tmp_path / "operator-keys", "operator")
    cps = Checkpoints(tmp_path / "ck" / "cp.jsonl", [pub])
    cps.sign(log, load_private(key_path))
    return log, cps


def test_the_trigger_refuses_edits(signed):
    log, _ = signed
    for sql in ("UPDATE control_events SET line = 'x'", "DELETE FROM control_events", "TRUNCATE control_events"):
        with pytest.raises(Exception, match="append-only"):
            log.db.execute(sql, name="control-plane")
    assert log.verify()["events"] == 20


def test_an_edited_row_or_a_gap_breaks_the_chain(signed, pg_database):
    log, _ = signed
    _tamper(pg_database, "UPDATE control_events SET line = replace(line, :a, :b) WHERE seq = 6", a='"i":5', b='"i":6')
    with pytest.raises(IntegrityError, match="event 6 breaks the hash chain"):
        log.verify()
    with pytest.raises(IntegrityError, match="event 6"):
        list(log.read())


def test_a_deleted_row_is_a_gap(signed, pg_database):
    log, _ = signed
    _tamper(pg_database, "DELETE FROM control_events WHERE seq = 9")
    with pytest.raises(IntegrityError, match="event 9 is missing"):
        log.verify()


def test_deleted_last_rows_and_a_rehashed_history_are_caught_by_the_checkpoint(signed, pg_database):
    log, cps = signed
    assert log.verify(checkpoints=cps)["checkpoints"] == 1
    _tamper(pg_database, "DELETE FROM control_events WHERE seq > 17")
    assert log.verify()["events"] == 17, "the chain alone cannot see a deleted tail"
    with pytest.raises(IntegrityError, match="vouches for event 20"):
        log.verify(checkpoints=cps)
    with pytest.raises(IntegrityError, match="checkpoint 20 vouches for more"):
        SqlEventLog(pg_database, checkpoints=cps).append("after", {})
    recs = _rehashed(pg_database, 5)[:17]
    _tamper(pg_database, "DELETE FROM control_events")
    for r in recs:
        line = json.dumps(r, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        _tamper(pg_database, "INSERT INTO control_events (seq, line) VALUES (:s, :l)", s=r["seq"], l=line)
    assert log.verify()["events"] == 17, "a consistent forgery passes the chain"
    with pytest.raises(IntegrityError, match="vouches for event 20"):
        log.verify(checkpoints=cps)


def test_the_cli_uses_the_database_log_and_names_a_tampered_event(pg_database, tmp_path):
    env = {**os.environ, "UNITY_MLOPS_DATABASE_URL": pg_database}
    env.pop("UNITY_MLOPS_CONTROL_PLANE_EVENTS", None)
    log = SqlEventLog(pg_database)
    for i in range(3):
        log.append("test", {"i": i})
    r = subprocess.run([sys.executable, "-m", "mlops_unity_pipeline", "control-plane", "verify", "--workspace",
                        str(tmp_path)], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0 and "3 event" in r.stdout + r.stderr, r.stdout + r.stderr
    _tamper(pg_database, "UPDATE control_events SET line = replace(line, :a, :b) WHERE seq = 2", a='"i":1', b='"i":2')
    r = subprocess.run([sys.executable, "-m", "mlops_unity_pipeline", "control-plane", "verify", "--workspace",
                        str(tmp_path)], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 1 and "event 2 breaks the hash chain" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "_state" / "control-plane.jsonl").exists(), "no file log on the side"
