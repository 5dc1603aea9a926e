"""The registry's aliases (`staging`, `production`), freezes, incidents and the append-only promotion ledger.

They live in the registry's own database (SQLite or PostgreSQL): moving an alias and appending its ledger entry
happen in one serialized write transaction, so each alias has exactly one holder, moves are atomic, and concurrent
promotions from several processes or machines never lose an entry. The ledger is the history MLflow lacks
(mlflow#2169): who moved which alias from which version to which, when, why, and on what evidence; it is what
"last known-good" is computed from.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import text

from .. import settings
from ..store import Database
from .base import registry_asset_name

ALIASES = ("staging", "production")
MOVES = ("promote", "rollback")  # ledger actions that moved an alias (others record attempts and freezes)

STORE = "registry"  # the ledger shares the registry's write lock: an alias moves with its ledger entry
_LEDGER_INSERT = ("INSERT INTO ledger (at, actor, asset_name, action, alias, from_version, to_version, evidence_json, "
                  "reason) VALUES (:at, :actor, :asset, :action, :alias, :from_version, :to_version, :evidence, "
                  ":reason) RETURNING seq")
_FREEZE = ("INSERT INTO freezes (asset_name, reason, since, actor) VALUES (:asset, :reason, :at, :actor) "
           "ON CONFLICT (asset_name) DO UPDATE SET reason=excluded.reason, since=excluded.since, actor=excluded.actor")


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

    def __init__(self, db: Database) -> None:
        self.db = db

    def _rows(self, sql: str, **params: Any) -> list[tuple]:
        return [] if self.db.is_empty() else self.db.all(sql, params)

    # ------------------------------------------------------------------ reading
    def aliases(self, asset_name: str) -> dict[str, str]:
        return dict(self._rows("SELECT alias, version FROM aliases WHERE asset_name=:a",
                               a=registry_asset_name(asset_name)))

    def frozen(self, asset_name: str) -> dict[str, str] | None:
        rows = self._rows("SELECT reason, since, actor FROM freezes WHERE asset_name=:a",
                          a=registry_asset_name(asset_name))
        return None if not rows else {"reason": rows[0][0], "since": rows[0][1], "actor": rows[0][2]}

    def history(self, asset_name: str) -> list[LedgerEntry]:
        rows = self._rows("SELECT seq, at, actor, asset_name, action, alias, from_version, to_version, evidence_json, "
                          "reason FROM ledger WHERE asset_name=:a ORDER BY seq", a=registry_asset_name(asset_name))
        return [LedgerEntry(*r[:8], json.loads(r[8]), r[9]) for r in rows]

    def incidents(self, asset_name: str) -> list[dict[str, Any]]:
        rows = self._rows("SELECT id, failed_version, restored_version, metrics_json, reason, corrective_action, "
                          "opened_at, actor FROM incidents WHERE asset_name=:a ORDER BY id",
                          a=registry_asset_name(asset_name))
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
        with self.db.write(STORE) as conn:
            if respect_freeze:
                frozen = conn.execute(text("SELECT reason FROM freezes WHERE asset_name=:a"), {"a": asset}).first()
                if frozen:
                    raise GovernanceError(f"asset {asset} is frozen ({frozen[0]}); no promotion until "
                                          f"`unity-mlops models unfreeze {asset}`")
            row = conn.execute(text("SELECT version FROM aliases WHERE asset_name=:a AND alias=:alias"),
                               {"a": asset, "alias": alias}).first()
            from_version = row[0] if row else None
            if to_version is None:
                conn.execute(text("DELETE FROM aliases WHERE asset_name=:a AND alias=:alias"),
                             {"a": asset, "alias": alias})
            else:
                conn.execute(text("INSERT INTO aliases (asset_name, alias, version, updated_at) VALUES "
                                  "(:a, :alias, :v, :at) ON CONFLICT (asset_name, alias) DO UPDATE SET "
                                  "version=excluded.version, updated_at=excluded.updated_at"),
                             {"a": asset, "alias": alias, "v": to_version, "at": at})
            seq = conn.execute(text(_LEDGER_INSERT), {
                "at": at, "actor": actor, "asset": asset, "action": action, "alias": alias,
                "from_version": from_version, "to_version": to_version,
                "evidence": json.dumps(evidence or {}, sort_keys=True, default=str), "reason": reason}).scalar()
            if incident is not None:
                conn.execute(text("INSERT INTO incidents (asset_name, failed_version, restored_version, metrics_json, "
                                  "reason, corrective_action, opened_at, actor) VALUES (:asset, :failed, :restored, "
                                  ":metrics, :reason, :action, :at, :actor)"), {
                    "asset": asset, "failed": incident["failed_version"], "restored": to_version,
                    "metrics": json.dumps(incident.get("metrics") or {}, default=str), "reason": reason,
                    "action": incident.get("corrective_action") or "", "at": at, "actor": actor})
                conn.execute(text(_FREEZE), {
                    "asset": asset, "reason": f"rollback of {incident['failed_version']}: root cause analysis pending",
                    "at": at, "actor": actor})
        return LedgerEntry(seq, at, actor, asset, action, alias, from_version, to_version, evidence or {}, reason)

    def record(self, asset_name: str, action: str, alias: str | None, from_version: str | None,
               to_version: str | None, evidence: dict[str, Any], reason: str, actor: str | None = None) -> int:
        """Append an entry that moves nothing (for example a promotion the gates blocked)."""
        with self.db.write(STORE) as conn:
            return int(conn.execute(text(_LEDGER_INSERT), {
                "at": _now(), "actor": actor or settings.actor(), "asset": registry_asset_name(asset_name),
                "action": action, "alias": alias, "from_version": from_version, "to_version": to_version,
                "evidence": json.dumps(evidence, sort_keys=True, default=str), "reason": reason}).scalar())

    def set_frozen(self, asset_name: str, frozen: bool, reason: str, actor: str | None = None) -> LedgerEntry:
        asset = registry_asset_name(asset_name)
        actor = actor or settings.actor()
        at = _now()
        action = "freeze" if frozen else "unfreeze"
        with self.db.write(STORE) as conn:
            if frozen:
                conn.execute(text(_FREEZE), {"asset": asset, "reason": reason, "at": at, "actor": actor})
            else:
                conn.execute(text("DELETE FROM freezes WHERE asset_name=:a"), {"a": asset})
            seq = conn.execute(text(_LEDGER_INSERT), {
                "at": at, "actor": actor, "asset": asset, "action": action, "alias": None, "from_version": None,
                "to_version": None, "evidence": "{}", "reason": reason}).scalar()
        return LedgerEntry(seq, at, actor, asset, action, None, None, None, {}, reason)
