"""The event-log contract, run against every store the `unity_mlops.event_logs` family installs: the JSONL file,
the log in an embedded SQLite database and in PostgreSQL. Each is opened the way the product opens it
(`open_event_log` by location); `tamper` is the one thing each store does its own way (an attacker with write
access to the file or the table, the append-only trigger bypassed)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import text

from mlops_unity_pipeline.controlplane.eventlog import (
    GENESIS,
    Checkpoints,
    ConcurrencyError,
    IntegrityError,
    Position,
)
from mlops_unity_pipeline.controlplane.keys import generate, load_private
from mlops_unity_pipeline.controlplane.sql_eventlog import open_event_log

STORES = ["file", "sqlite", "postgresql"]


class Store:
    def __init__(self, kind: str, where: str) -> None:
        self.kind, self.where = kind, where

    def open(self):
        return open_event_log(self.where)

    def tamper(self, seq: int, old: str, new: str) -> None:
        """Change event `seq`'s stored line in place, as someone with write access would."""
        if self.kind == "file":
            lines = Path(self.where).read_bytes().splitlines(keepends=True)
            lines[seq - 1] = lines[seq - 1].replace(old.encode(), new.encode())
            Path(self.where).write_bytes(b"".join(lines))
        elif self.kind == "sqlite":
            with sqlite3.connect(self.where.removeprefix("sqlite:///")) as conn:
                conn.execute("DROP TRIGGER IF EXISTS control_events_append_only_update")
                conn.execute("UPDATE control_events SET line = replace(line, ?, ?) WHERE seq = ?", (old, new, seq))
        else:
            log = self.open()
            with log.db.write("control-plane") as conn:
                conn.execute(text("ALTER TABLE control_events DISABLE TRIGGER control_events_append_only"))
                conn.execute(text("UPDATE control_events SET line = replace(line, :a, :b) WHERE seq = :s"),
                             {"a": old, "b": new, "s": seq})
                conn.execute(text("ALTER TABLE control_events ENABLE TRIGGER control_events_append_only"))


@pytest.fixture(params=STORES)
def store(request, tmp_path) -> Store:
    if request.param == "file":
        return Store("file", str(tmp_path / "events.jsonl"))
    if request.param == "sqlite":
        from mlops_unity_pipeline.store import open_database

        url = f"sqlite:///{tmp_path / 'state.db'}"
        open_database(url).upgrade()
        return Store("sqlite", url)
    return Store("postgresql", request.getfixturevalue("pg_database"))


def test_appends_chain_and_read_back_verified(store):
    log = store.open()
    assert log.head() == (0, GENESIS) and list(log.read()) == []
    written = [log.append("test", {"i": i, "text": "é ✓"}) for i in range(5)]
    assert [r["seq"] for r in written] == [1, 2, 3, 4, 5]
    assert [r["prev_hash"] for r in written[1:]] == [r["hash"] for r in written[:-1]]
    again = store.open()  # another process
    assert list(again.read()) == written and again.head() == (5, written[-1]["hash"])
    assert again.verify() == {"events": 5, "head": written[-1]["hash"], "checkpoints": 0}


def test_a_repeated_key_is_the_original_and_a_stale_writer_is_refused(store):
    log = store.open()
    first = log.append("grant", {"n": 1}, idempotency_key="k-1")
    assert store.open().append("grant", {"n": 2}, idempotency_key="k-1") == first
    with pytest.raises(ConcurrencyError):
        log.append("late", {}, expected_seq=0)
    assert log.append("next", {}, expected_seq=1)["seq"] == 2


def test_a_reader_resumes_from_a_position_it_can_still_anchor(store):
    log = store.open()
    for i in range(6):
        log.append("test", {"i": i})
    positions = [pos for _, pos in log.read_after(Position())]
    at = positions[2]
    assert log.anchored(at) and [r["seq"] for r, _ in log.read_after(at)] == [4, 5, 6]
    assert not log.anchored(Position(at.seq, "f" * 64, at.offset)), "a position whose hash the log does not hold"


def test_an_edited_event_and_a_rewritten_history_are_caught(store, tmp_path):
    log = store.open()
    for i in range(8):
        log.append("test", {"i": i})
    key_path, pub = generate(tmp_path / "keys", "operator")
    checkpoints = Checkpoints(tmp_path / "cp" / "checkpoints.jsonl", [pub])
    checkpoint = checkpoints.sign(log, load_private(key_path))
    assert log.verify(checkpoints=checkpoints)["checkpoints"] == 1
    with pytest.raises(IntegrityError, match="history was rewritten"):
        log.verify(expect_head=(8, "0" * 64))
    with pytest.raises(IntegrityError, match="vouches for event 9"):
        log.verify(expect_head=(9, checkpoint["head"]))
    store.tamper(4, '"i":3', '"i":30')
    with pytest.raises(IntegrityError, match=r"(line|event) 4 .*breaks the hash chain"):
        store.open().verify()
    store.tamper(8, '"i":7', '"i":70')
    with pytest.raises(IntegrityError):
        store.open().append("after", {})  # nothing is chained onto an edited last event (every store checks it)
