"""Control-plane event log: durable appends per second and replay time, against SQLite doing the same work.

Same work on both sides: each append takes the writer lock, checks the idempotency key, assigns the next seq,
computes the hash chain link and makes the record durable (fsync / SQLite WAL with synchronous=FULL, one
transaction per event). Replay reads every event in order, parses it and re-verifies the hash chain.

    python bench/eventlog_bench.py [--appends 2000] [--replay 100000,1000000]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sqlite3
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from mlops_unity_pipeline.controlplane.eventlog import GENESIS, EventLog, canonical, record_hash

PAYLOAD = {"action_id": "model.promote", "version": "unity-nav-20261123-abc1234-v001", "to": "production",
           "actor": "agent", "facts_used": {"guardrails_ok": 12, "model_in_staging": 40}}


class SqliteLog:
    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")
        self.conn.execute("CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY, idem TEXT UNIQUE, "
                          "body TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL)")

    def append(self, etype: str, payload: dict, idem: str | None = None) -> None:
        self.conn.execute("BEGIN IMMEDIATE")
        if idem and self.conn.execute("SELECT 1 FROM events WHERE idem=?", (idem,)).fetchone():
            self.conn.execute("COMMIT")
            return
        row = self.conn.execute("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1").fetchone()
        seq, head = (row[0], row[1]) if row else (0, GENESIS)
        rec = {"seq": seq + 1, "ts": datetime.now(timezone.utc).isoformat(), "type": etype, "payload": payload,
               "idempotency_key": idem, "bundle_digest": None, "prev_hash": head}
        h = record_hash(rec)
        self.conn.execute("INSERT INTO events VALUES (?,?,?,?,?)", (seq + 1, idem, json.dumps(rec), head, h))
        self.conn.execute("COMMIT")

    def bulk(self, n: int) -> None:
        head = GENESIS
        self.conn.execute("BEGIN")
        for seq in range(1, n + 1):
            rec = {"seq": seq, "ts": "2026-11-23T00:00:00+00:00", "type": "decision", "payload": PAYLOAD,
                   "idempotency_key": None, "bundle_digest": None, "prev_hash": head}
            h = record_hash(rec)
            self.conn.execute("INSERT INTO events VALUES (?,?,?,?,?)", (seq, None, json.dumps(rec), head, h))
            head = h
        self.conn.execute("COMMIT")

    def replay(self) -> int:
        head, n = GENESIS, 0
        for (body, prev, h) in self.conn.execute("SELECT body, prev_hash, hash FROM events ORDER BY seq"):
            rec = json.loads(body)
            if prev != head or hashlib.sha256(prev.encode() + canonical(rec)).hexdigest() != h:
                raise RuntimeError("chain broken")
            head, n = h, n + 1
        return n


def bulk_jsonl(path: Path, n: int) -> None:
    head = GENESIS
    with path.open("wb") as fh:
        for seq in range(1, n + 1):
            rec = {"seq": seq, "ts": "2026-11-23T00:00:00+00:00", "type": "decision", "payload": PAYLOAD,
                   "idempotency_key": None, "bundle_digest": None, "prev_hash": head}
            rec["hash"] = record_hash(rec)
            head = rec["hash"]
            fh.write(json.dumps(rec, sort_keys=True, separators=(",", ":")).encode() + b"\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--appends", type=int, default=2000)
    ap.add_argument("--replay", default="100000,1000000")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="unity-mlops-eventlog-") as tmp:
        d = Path(tmp)
        log, db = EventLog(d / "events.jsonl"), SqliteLog(d / "events.db")
        t0 = time.perf_counter()
        for i in range(args.appends):
            log.append("decision", PAYLOAD, idempotency_key=f"k{i}")
        jsonl_rate = args.appends / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        for i in range(args.appends):
            db.append("decision", PAYLOAD, f"k{i}")
        sqlite_rate = args.appends / (time.perf_counter() - t0)
        rows.append(("durable appends/s", f"{jsonl_rate:,.0f}", f"{sqlite_rate:,.0f}", jsonl_rate / sqlite_rate))
        for n in (int(x) for x in args.replay.split(",")):
            bulk_jsonl(d / f"r{n}.jsonl", n)
            sdb = SqliteLog(d / f"r{n}.db")
            sdb.bulk(n)
            t0 = time.perf_counter()
            count = sum(1 for _ in EventLog(d / f"r{n}.jsonl").read())
            jt = time.perf_counter() - t0
            t0 = time.perf_counter()
            assert sdb.replay() == count == n
            st = time.perf_counter() - t0
            rows.append((f"replay {n:,} events (s)", f"{jt:.2f}", f"{st:.2f}", st / jt))
            (d / f"r{n}.jsonl").unlink()
            (d / f"r{n}.db").unlink()
    print("| measure | JSONL hash-chained log | SQLite WAL, synchronous=FULL | ratio (JSONL advantage) |")
    print("|---|---:|---:|---:|")
    for name, a, b, r in rows:
        print(f"| {name} | {a} | {b} | {r:.2f}x |")


if __name__ == "__main__":
    main()
