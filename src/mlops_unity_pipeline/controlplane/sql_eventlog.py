"""The control-plane event log in the shared database, for control planes on several machines.

The same log as `eventlog.EventLog`, kept as rows: each row holds the event's canonical line, exactly what the file
log would write, so the same strict parser and the same hash chain check it, and signed checkpoints vouch for it
the same way. An append is one serialized write transaction (the database's lock for this store, across machines):
it checks the last row's line against its hash before chaining onto it, answers a repeated idempotency key with the
original event, and honours `expected_seq`. A trigger refuses UPDATE, DELETE and TRUNCATE; whoever bypasses it (a
superuser) is caught by `verify`: an edited row breaks the chain, a deleted one leaves a gap in the sequence, and
deleted last rows are caught by a checkpoint or an expected head.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import text

from ..store import open_database
from ..store.database import redact
from .eventlog import (
    GENESIS,
    ChainedLog,
    Checkpoints,
    ConcurrencyError,
    EventLog,
    IntegrityError,
    Position,
    parse_line,
    record_hash,
)

STORE = "control-plane"


class SqlEventLog(ChainedLog):
    def __init__(self, url: str, checkpoints: Checkpoints | None = None) -> None:
        self.db = open_database(url)
        self.checkpoints = checkpoints
        self.name = f"the event log in {redact(self.db.url)}"
        self.path = Path("/") / "database" / redact(self.db.url).replace("/", "_")  # names its checkpoint file

    # ------------------------------------------------------------------ reading (the checks: `ChainedLog`)
    def _lines_after(self, at: Position) -> Iterator[tuple[bytes, str, int]]:
        """In pages of 5,000 rows: a long log is never held in memory. A missing row is a deleted event."""
        expected = at.seq + 1
        while True:
            rows = self.db.all("SELECT seq, line FROM control_events WHERE seq >= :s ORDER BY seq LIMIT 5000",
                               {"s": expected})
            for seq, line in rows:
                if seq != expected:
                    raise IntegrityError(f"{self.name}: event {expected} is missing (the next is {seq}): events "
                                         "were deleted")
                expected = seq + 1
                yield line.encode(), "", 0
            if len(rows) < 5000:
                return

    def anchored(self, at: Position) -> bool:
        """Whether the table still holds event `at.seq`, valid, with hash `at.head`."""
        if at.seq == 0:
            return at.head == GENESIS and at.offset == 0
        row = self.db.one("SELECT line FROM control_events WHERE seq = :s", {"s": at.seq})
        try:
            rec, digest = parse_line(row[0].encode()) if row is not None else ({}, "")
        except (ValueError, IntegrityError, KeyError, TypeError):
            return False
        return rec.get("seq") == at.seq and rec.get("hash") == digest == at.head and at.offset == 0

    def head(self) -> tuple[int, str]:
        row = self.db.one("SELECT seq, line FROM control_events ORDER BY seq DESC LIMIT 1")
        return (0, GENESIS) if row is None else (row[0], json.loads(row[1])["hash"])

    # ------------------------------------------------------------------ writing
    def append(self, event_type: str, payload: dict[str, Any], *, idempotency_key: str | None = None,
               expected_seq: int | None = None, bundle_digest: str | None = None) -> dict[str, Any]:
        """Append durably (committed) and return the stored event, or the original one for a repeated key."""
        with self.db.write(STORE) as conn:
            if idempotency_key:
                row = conn.execute(text("SELECT seq, line FROM control_events WHERE idempotency_key = :k"),
                                   {"k": idempotency_key}).first()
                if row is not None:
                    return parse_line(row[1].encode())[0]
            last = conn.execute(text("SELECT seq, line FROM control_events ORDER BY seq DESC LIMIT 1")).first()
            seq, head = (0, GENESIS) if last is None else (last[0], json.loads(last[1])["hash"])
            if last is not None:  # never chain onto a row that was edited
                self.link(last[1].encode(), last[0] - 1, json.loads(last[1])["prev_hash"], "")
            latest = self.checkpoints.latest() if self.checkpoints is not None else None
            if latest is not None and latest["seq"] > seq:
                raise IntegrityError(f"{self.name} ends at event {seq}, but checkpoint {latest['seq']} vouches for "
                                     "more: events were deleted")
            if expected_seq is not None and expected_seq != seq:
                raise ConcurrencyError(f"expected seq {expected_seq}, the log is at {seq}")
            rec = {"seq": seq + 1, "ts": datetime.now(timezone.utc).isoformat(), "type": event_type,
                   "payload": payload, "idempotency_key": idempotency_key, "bundle_digest": bundle_digest,
                   "prev_hash": head}
            rec["hash"] = record_hash(rec)
            line = json.dumps(rec, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
            conn.execute(text("INSERT INTO control_events (seq, line, idempotency_key) VALUES (:s, :l, :k)"),
                         {"s": rec["seq"], "l": line, "k": idempotency_key})
        return json.loads(line)


def open_event_log(where: str | Path) -> EventLog | SqlEventLog:
    """A file path is the JSONL log; a database URL (the shared database) is the log in the database. Each is a
    plugin of the `unity_mlops.event_logs` family, named by the location's scheme (`file` for a path)."""
    from .. import plugins

    url = str(where)
    scheme = url.split("://", 1)[0].split("+", 1)[0].lower() if "://" in url else "file"
    return plugins.load("event_logs", scheme)(url if scheme != "file" else where)
