"""Control-plane event log: durable appends per second, verification and the state at the head, against SQLite.

Appends, same work on both sides: each takes the writer lock, checks the idempotency key, assigns the next seq,
computes the hash chain link and makes the record durable (fsync / SQLite WAL with synchronous=FULL, one
transaction per event). Verify, same work: read every event in order, parse it strictly and re-check the chain.
State at the head: what opening the control plane costs (every start, every CLI call): the log folded into facts,
approvals and workflow states; ours from genesis the first time, then (a restart: a CLI call, the MCP server) from
the state snapshot plus the events appended since, and one append (controlplane/state.py); the SQLite baseline
replays and folds from genesis each time.

    python bench/eventlog_bench.py [--appends 2000] [--replay 100000,1000000] [--tail 999]
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
from mlops_unity_pipeline.controlplane.state import Folder, State, StateCache

PAYLOAD = {"action_id": "model.promote", "version": "unity-nav-20261123-abc1234-v001", "to": "production",
           "actor": "agent", "facts_used": {"guardrails_ok": 12, "model_in_staging": 40}}
FACTS = {"guardrails_ok": {"name": "guardrails_ok", "established_by": ["guardrails.checked"], "ttl_s": 86400},
         "model_in_staging": {"name": "model_in_staging", "established_by": ["model.staged"]}}


def event(seq: int) -> tuple[str, dict]:
    """Mostly decisions, as in a real log, with a fact, a staging, an approval and a transition every 50."""
    k = seq % 50
    if k == 1:
        return "guardrails.checked", {"subject": "*", "value": True}
    if k == 2:
        return "model.staged", {"fact": "model_in_staging", "subject": f"v{seq // 50}"}
    if k == 3:
        return "approval.granted", {"approval_id": f"a{seq}", "expires_at": "2099-01-01T00:00:00+00:00"}
    if k == 4:
        return "transition.executed", {"subject": f"v{seq // 50}", "to": "staging"}
    return "decision", PAYLOAD


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
            etype, payload = event(seq)
            rec = {"seq": seq, "ts": "2026-11-23T00:00:00+00:00", "type": etype, "payload": payload,
                   "idempotency_key": None, "bundle_digest": None, "prev_hash": head}
            h = record_hash(rec)
            self.conn.execute("INSERT INTO events VALUES (?,?,?,?,?)", (seq, None, json.dumps(rec), head, h))
            head = h
        self.conn.execute("COMMIT")

    def replay(self, fold: Folder | None = None) -> tuple[int, State]:
        head, n, state = GENESIS, 0, State()
        for (body, prev, h) in self.conn.execute("SELECT body, prev_hash, hash FROM events ORDER BY seq"):
            rec = json.loads(body)
            if prev != head or hashlib.sha256(prev.encode() + canonical(rec)).hexdigest() != h:
                raise RuntimeError("chain broken")
            head, n = h, n + 1
            if fold is not None:
                fold.apply(state, rec)
        return n, state


def same(a: State, b: State) -> bool:
    """The same state, but for the expiry times (the two logs' appends were stamped moments apart)."""
    strip = [(n, s, v, q) for n, s, v, q, _ in a.to_json()["facts"]], [
        (n, s, v, q) for n, s, v, q, _ in b.to_json()["facts"]]
    return strip[0] == strip[1] and {**a.to_json(), "facts": 0} == {**b.to_json(), "facts": 0}


def bulk_jsonl(path: Path, n: int) -> None:
    head = GENESIS
    with path.open("wb") as fh:
        for seq in range(1, n + 1):
            etype, payload = event(seq)
            rec = {"seq": seq, "ts": "2026-11-23T00:00:00+00:00", "type": etype, "payload": payload,
                   "idempotency_key": None, "bundle_digest": None, "prev_hash": head}
            rec["hash"] = record_hash(rec)
            head = rec["hash"]
            fh.write(json.dumps(rec, sort_keys=True, separators=(",", ":")).encode() + b"\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--appends", type=int, default=2000)
    ap.add_argument("--replay", default="100000,1000000")
    ap.add_argument("--tail", type=int, default=999, help="events appended between the first open and the restart")
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
            path, snap = d / f"r{n}.jsonl", d / f"r{n}.state.json"
            bulk_jsonl(path, n)
            sdb = SqliteLog(d / f"r{n}.db")
            sdb.bulk(n)
            t0 = time.perf_counter()
            info = EventLog(path).verify()
            jt = time.perf_counter() - t0
            t0 = time.perf_counter()
            assert sdb.replay()[0] == info["events"] == n
            st = time.perf_counter() - t0
            rows.append((f"verify {n:,} events from genesis (s)", f"{jt:.2f}", f"{st:.2f}", st / jt))
            t0 = time.perf_counter()
            cold = StateCache(EventLog(path), snap).state(FACTS)  # first open: folds from genesis, snapshots
            jt = time.perf_counter() - t0
            t0 = time.perf_counter()
            sdb_state = sdb.replay(Folder(FACTS))[1]
            st = time.perf_counter() - t0
            assert cold.to_json() == sdb_state.to_json()
            rows.append((f"state at the head of {n:,}, first open (s)", f"{jt:.2f}", f"{st:.2f}", st / jt))
            log = EventLog(path)
            for i in range(args.tail):  # what the control plane appends between two starts
                etype, payload = event(n + 1 + i)
                log.append(etype, payload)
                sdb.append(etype, payload)
            t0 = time.perf_counter()  # a restart (a CLI call, the MCP server): open, the state, one decision
            log = EventLog(path)
            cache = StateCache(log, snap)
            cache.prime_log()
            warm = cache.state(FACTS)
            log.append("decision", PAYLOAD)
            jt = time.perf_counter() - t0
            t0 = time.perf_counter()
            sdb_state = sdb.replay(Folder(FACTS))[1]
            sdb.append("decision", PAYLOAD)
            st = time.perf_counter() - t0
            assert same(warm, sdb_state)
            assert warm.head_seq == n + args.tail, warm.head_seq
            rows.append((f"restart at {n + args.tail:,} events: state at the head + one append (s)", f"{jt:.3f}",
                         f"{st:.2f}",
                         st / jt))
            path.unlink()
            (d / f"r{n}.db").unlink()
    print("| measure | JSONL hash-chained log | SQLite WAL, synchronous=FULL (state: replayed from genesis) "
          "| ratio (JSONL advantage) |")
    print("|---|---:|---:|---:|")
    for name, a, b, r in rows:
        print(f"| {name} | {a} | {b} | {r:.2f}x |")


if __name__ == "__main__":
    main()
