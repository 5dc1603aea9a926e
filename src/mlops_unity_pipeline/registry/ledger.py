"""The registry's aliases (`staging`, `production`), freezes, incidents and the append-only promotion ledger.

They live in the registry's own SQLite database: moving an alias and appending its ledger entry happen in one
IMMEDIATE transaction, so each alias has exactly one holder, moves are atomic, and concurrent promotions from
several processes never lose an entry. The ledger is the history MLflow lacks (mlflow#2169): who moved which alias
from which version to which, when, why, and on what evidence; it is what "last known-good" is computed from.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from .. import settings
from .base import registry_asset_name

ALIASES = ("staging", "production")
MOVES = ("promote", "rollback")  # ledger actions that moved an alias (others record attempts and freezes)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS aliases (
    asset_name TEXT NOT NULL, alias TEXT NOT NULL, version TEXT NOT NULL, updated_at TEXT NOT NULL,
    PRIMARY KEY (asset_name, alias)
);
CREATE TABLE IF NOT EXISTS ledger (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, actor TEXT NOT NULL, asset_name TEXT NOT NULL,
    action TEXT NOT NULL, alias TEXT, from_version TEXT, to_version TEXT, evidence_json TEXT NOT NULL,
    reason TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS freezes (
    asset_name TEXT PRIMARY KEY, reason TEXT NOT NULL, since TEXT NOT NULL, actor TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS incidents (
    id INTEGER PRIMARY KEY AUTOINCREMENT, asset_name TEXT NOT NULL, failed_version TEXT NOT NULL,
    restored_version TEXT, metrics_json TEXT NOT NULL, reason TEXT NOT NULL, corrective_action TEXT NOT NULL,
    opened_at TEXT NOT NULL, actor TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS ledger_append_only_update BEFORE UPDATE ON ledger
BEGIN SELECT RAISE(ABORT, 'the promotion ledger is append-only'); END;
CREATE TRIGGER IF NOT EXISTS ledger_append_only_delete BEFORE DELETE ON ledger
BEGIN SELECT RAISE(ABORT, 'the promotion ledger is append-only'); END;
"""


class GovernanceError(Exception):
    """A promotion, rollback or freeze that may not happen; the message says why."""


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


@dataclass
class LedgerEntry:
    seq: int
    at: str
    actor: str
    asset_name: str
    action: str
    alias: str | None
    from_version: str | None
    to_version: str | None
    evidence: dict[str, Any]
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Ledger:
    """The aliases and the ledger of one registry, in the registry's own database (one transaction with it)."""

    def __init__(self, connect: Callable[[], sqlite3.Connection]) -> None:
        self._connect = connect
        with closing(self._connect()) as conn:
            conn.executescript(_SCHEMA)

    # ------------------------------------------------------------------ reading
    def aliases(self, asset_name: str) -> dict[str, str]:
        with closing(self._connect()) as conn:
            rows = conn.execute("SELECT alias, version FROM aliases WHERE asset_name=?",
                                (registry_asset_name(asset_name),)).fetchall()
        return dict(rows)

    def frozen(self, asset_name: str) -> dict[str, str] | None:
        with closing(self._connect()) as conn:
            row = conn.execute("SELECT reason, since, actor FROM freezes WHERE asset_name=?",
                               (registry_asset_name(asset_name),)).fetchone()
        return None if row is None else {"reason": row[0], "since": row[1], "actor": row[2]}

    def history(self, asset_name: str) -> list[LedgerEntry]:
        with closing(self._connect()) as conn:
            rows = conn.execute("SELECT seq, at, actor, asset_name, action, alias, from_version, to_version, "
                                "evidence_json, reason FROM ledger WHERE asset_name=? ORDER BY seq",
                                (registry_asset_name(asset_name),)).fetchall()
        return [LedgerEntry(*r[:8], json.loads(r[8]), r[9]) for r in rows]

    def incidents(self, asset_name: str) -> list[dict[str, Any]]:
        with closing(self._connect()) as conn:
            rows = conn.execute("SELECT id, failed_version, restored_version, metrics_json, reason, corrective_action, "
                                "opened_at, actor FROM incidents WHERE asset_name=? ORDER BY id",
                                (registry_asset_name(asset_name),)).fetchall()
        return [{"id": r[0], "failed_version": r[1], "restored_version": r[2], "metrics": json.loads(r[3]),
                 "reason": r[4], "corrective_action": r[5], "opened_at": r[6], "actor": r[7]} for r in rows]

    def last_known_good(self, asset_name: str) -> str | None:
        """The most recent earlier version that actually held production (a promotion or rollback moved the alias
        to it; a blocked attempt never counts) and was not rolled back from since."""
        history = self.history(asset_name)
        bad = {i["failed_version"] for i in self.incidents(asset_name)}
        current = self.aliases(asset_name).get("production")
        for entry in reversed(history):
            if (entry.alias == "production" and entry.action in MOVES and entry.to_version
                    and entry.to_version not in bad | {current}):
                return entry.to_version
        return None

    # ------------------------------------------------------------------ writing (one transaction each)
    def move_alias(self, asset_name: str, alias: str, to_version: str | None, *, action: str, reason: str,
                   evidence: dict[str, Any] | None = None, actor: str | None = None,
                   respect_freeze: bool = True, incident: dict[str, Any] | None = None) -> LedgerEntry:
        if alias not in ALIASES:
            raise GovernanceError(f"alias must be one of {', '.join(ALIASES)}, got {alias!r}")
        asset = registry_asset_name(asset_name)
        actor = actor or settings.actor()
        at = _now()
        with closing(self._connect()) as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                if respect_freeze:
                    frozen = conn.execute("SELECT reason FROM freezes WHERE asset_name=?", (asset,)).fetchone()
                    if frozen:
                        raise GovernanceError(f"asset {asset} is frozen ({frozen[0]}); no promotion until "
                                              f"`unity-mlops models unfreeze {asset}`")
                row = conn.execute("SELECT version FROM aliases WHERE asset_name=? AND alias=?",
                                   (asset, alias)).fetchone()
                from_version = row[0] if row else None
                if to_version is None:
                    conn.execute("DELETE FROM aliases WHERE asset_name=? AND alias=?", (asset, alias))
                else:
                    conn.execute("INSERT INTO aliases VALUES (?,?,?,?) ON CONFLICT(asset_name, alias) DO UPDATE SET "
                                 "version=excluded.version, updated_at=excluded.updated_at",
                                 (asset, alias, to_version, at))
                cur = conn.execute(
                    "INSERT INTO ledger (at, actor, asset_name, action, alias, from_version, to_version, evidence_json,"
                    " reason) VALUES (?,?,?,?,?,?,?,?,?)",
                    (at, actor, asset, action, alias, from_version, to_version,
                     json.dumps(evidence or {}, sort_keys=True, default=str), reason))
                seq = cur.lastrowid
                if incident is not None:
                    conn.execute("INSERT INTO incidents (asset_name, failed_version, restored_version, metrics_json, "
                                 "reason, corrective_action, opened_at, actor) VALUES (?,?,?,?,?,?,?,?)",
                                 (asset, incident["failed_version"], to_version,
                                  json.dumps(incident.get("metrics") or {}, default=str), reason,
                                  incident.get("corrective_action") or "", at, actor))
                    conn.execute("INSERT OR REPLACE INTO freezes VALUES (?,?,?,?)",
                                 (asset, f"rollback of {incident['failed_version']}: root cause analysis pending", at,
                                  actor))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return LedgerEntry(seq, at, actor, asset, action, alias, from_version, to_version, evidence or {}, reason)

    def record(self, asset_name: str, action: str, alias: str | None, from_version: str | None,
               to_version: str | None, evidence: dict[str, Any], reason: str, actor: str | None = None) -> int:
        """Append an entry that moves nothing (for example a promotion the gates blocked)."""
        with closing(self._connect()) as conn:
            cur = conn.execute(
                "INSERT INTO ledger (at, actor, asset_name, action, alias, from_version, to_version, evidence_json, "
                "reason) VALUES (?,?,?,?,?,?,?,?,?)",
                (_now(), actor or settings.actor(), registry_asset_name(asset_name), action, alias, from_version,
                 to_version, json.dumps(evidence, sort_keys=True, default=str), reason))
            return int(cur.lastrowid)

    def set_frozen(self, asset_name: str, frozen: bool, reason: str, actor: str | None = None) -> LedgerEntry:
        asset = registry_asset_name(asset_name)
        actor = actor or settings.actor()
        at = _now()
        with closing(self._connect()) as conn:
            conn.execute("BEGIN IMMEDIATE")
            if frozen:
                conn.execute("INSERT OR REPLACE INTO freezes VALUES (?,?,?,?)", (asset, reason, at, actor))
            else:
                conn.execute("DELETE FROM freezes WHERE asset_name=?", (asset,))
            cur = conn.execute("INSERT INTO ledger (at, actor, asset_name, action, evidence_json, reason) "
                               "VALUES (?,?,?,?,?,?)", (at, actor, asset, "freeze" if frozen else "unfreeze", "{}",
                                                        reason))
            conn.execute("COMMIT")
        return LedgerEntry(cur.lastrowid, at, actor, asset, "freeze" if frozen else "unfreeze", None, None, None, {},
                           reason)
