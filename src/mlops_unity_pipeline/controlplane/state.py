"""What the control-plane log establishes (facts, workflow states, approvals), kept at the log's head cheaply.

Every decision needs the state at the head of the log. Folding the whole log for each one costs seconds at a
million events, so `StateCache` folds each event once: in memory it keeps the state and the chain position it was
folded to, and reads only what was appended since (verified link by link from that position, as a full read would).
On disk it keeps a snapshot of the same: the state, the position (seq, hash, byte offset) and the digest of the
bundle's fact declarations it was folded under. A snapshot is used only when

- the log still holds, at that position, an event with that seq and that hash (checked strictly on every open:
  an edited, truncated or replaced log cannot silently keep an old state), and
- the bundle's facts are the ones it was folded under (a changed TTL or producer list folds again from genesis).

The snapshot lives outside the log's directory (as the signed checkpoints do). It saves the re-reading of history,
so `verify` re-derives the state from genesis and compares it with the snapshot: a forged or stale snapshot is an
`IntegrityError` there, and deleting the file only costs one full replay.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from .eventlog import IntegrityError, Position, canonical

MAX_FACT_TTL_S = 30 * 86400  # a fact or an approval that outlives a month is a standing permission: refused
MAX_APPROVAL_TTL_S = 7 * 86400
SNAPSHOT_EVERY = 1000  # events folded since the last snapshot before a new one is written
FORMAT = 1


def check_ttl(ttl_s: Any, what: str, cap: float) -> float:
    """A time-to-live must be a finite number of seconds in (0, cap]: `inf`, `nan`, 0, negative and absurd values
    are refused where they are given (never silently replaced by a default)."""
    if isinstance(ttl_s, bool) or not isinstance(ttl_s, int | float) or not math.isfinite(ttl_s) \
            or not 0 < ttl_s <= cap:
        raise ValueError(f"{what} ttl must be a finite number of seconds in (0, {cap:.0f}], got {ttl_s!r}")
    return float(ttl_s)


def _expiry(start: datetime, ttl: Any, cap: float) -> datetime:
    """Replay never fails on a stored value: an out-of-bounds ttl (written before bounds existed, or by hand) makes
    the fact expire at once (fail closed)."""
    try:
        return start + timedelta(seconds=check_ttl(ttl, "stored", cap))
    except (ValueError, OverflowError):
        return start


def expired(expires_at: Any, now: datetime) -> bool:
    try:
        return datetime.fromisoformat(expires_at) <= now
    except (TypeError, ValueError):
        return True  # unreadable: expired (fail closed)


@dataclass(frozen=True)
class Fact:
    name: str
    value: bool
    seq: int
    subject: str
    expires_at: datetime | None = None

    def live(self, now: datetime) -> bool:
        return self.value and (self.expires_at is None or now < self.expires_at)


@dataclass
class State:
    """What the events establish. `facts[(name, subject)]`; subject "*" is global."""

    facts: dict[tuple[str, str], Fact] = field(default_factory=dict)
    subject_states: dict[str, str] = field(default_factory=dict)
    approvals: dict[str, dict[str, Any]] = field(default_factory=dict)
    used_approvals: set[str] = field(default_factory=set)
    head_seq: int = 0

    def fact(self, name: str, subject: str = "*", now: datetime | None = None) -> Fact | None:
        now = now or datetime.now(timezone.utc)
        for key in ((name, subject), (name, "*")):
            f = self.facts.get(key)
            if f is not None and f.live(now):
                return f
        return None

    def copy(self) -> State:
        """Independent containers (facts are frozen; stored approvals are never mutated)."""
        return State(dict(self.facts), dict(self.subject_states), dict(self.approvals), set(self.used_approvals),
                     self.head_seq)

    def to_json(self) -> dict[str, Any]:
        return {"facts": [[f.name, f.subject, f.value, f.seq, f.expires_at.isoformat() if f.expires_at else None]
                          for f in self.facts.values()],
                "subject_states": self.subject_states, "approvals": self.approvals,
                "used_approvals": sorted(self.used_approvals), "head_seq": self.head_seq}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> State:
        facts = {}
        for name, subject, value, seq, expires in data["facts"]:
            facts[(name, subject)] = Fact(name, value, seq, subject,
                                          datetime.fromisoformat(expires) if expires else None)
        return cls(facts, dict(data["subject_states"]), dict(data["approvals"]), set(data["used_approvals"]),
                   int(data["head_seq"]))


class Folder:
    """Applies events to a state under one bundle's fact declarations."""

    def __init__(self, facts: dict[str, dict[str, Any]]) -> None:
        self.facts = facts
        self.producers: dict[str, list[str]] = {}
        for name, spec in facts.items():
            for etype in spec.get("established_by") or []:
                self.producers.setdefault(etype, []).append(name)
        self.digest = hashlib.sha256(canonical(facts)).hexdigest()

    def apply(self, state: State, ev: dict[str, Any]) -> None:
        state.head_seq = ev["seq"]
        etype = ev["type"]
        names = self.producers.get(etype)
        if names is None and etype not in ("approval.granted", "approval.used", "transition.executed"):
            return  # most events (decisions, outcomes) establish nothing
        p = ev.get("payload") or {}
        subject = str(p.get("subject") or "*")
        for name in names or []:
            if "fact" in p and p["fact"] != name:
                continue
            ttl = p.get("ttl_s", self.facts[name].get("ttl_s"))
            expires = _expiry(datetime.fromisoformat(ev["ts"]), ttl, MAX_FACT_TTL_S) if ttl is not None else None
            state.facts[(name, subject)] = Fact(name, bool(p.get("value", True)), ev["seq"], subject, expires)
        if etype == "approval.granted":
            state.approvals[p["approval_id"]] = {**p, "seq": ev["seq"]}
        elif etype == "approval.used":
            state.used_approvals.add(p["approval_id"])
        elif etype == "transition.executed":
            state.subject_states[subject] = p["to"]


class StateCache:
    """The state at the log's head: folded once per event, in memory and in a snapshot file (module docstring)."""

    def __init__(self, log: Any, snapshot_path: Path | None, every: int = SNAPSHOT_EVERY) -> None:
        self.log = log
        self.snapshot_path = snapshot_path
        self.every = every
        self._folder: Folder | None = None
        self._state = State()
        self._at = Position()
        self._keys: dict[str, int] = {}  # idempotency key -> its line's offset (file logs: what appends need)
        self._saved_seq = -1
        self._lock = threading.Lock()  # the dashboard and the MCP server ask from several threads

    def prime_log(self) -> bool:
        """Let the log's appends start from the snapshot's position too (whatever facts it was folded under: the
        position and the idempotency keys are the log's, not the bundle's)."""
        prime = getattr(self.log, "prime", None)
        data = self._read_snapshot(None)
        try:
            return bool(prime and data and prime(Position(*data["position"]), dict(data.get("keys") or {})))
        except (TypeError, ValueError):
            return False

    def state(self, facts: dict[str, dict[str, Any]]) -> State:
        with self._lock:
            return self._state_at_head(facts)

    def _state_at_head(self, facts: dict[str, dict[str, Any]]) -> State:
        if self._folder is None or self._folder.digest != Folder(facts).digest:
            self._folder = Folder(facts)
            self._state, self._at, self._keys = State(), Position(), {}
            loaded = self._load()
            if loaded is not None:
                self._state, self._at, self._keys = loaded
                self._saved_seq = self._at.seq
        elif not self.log.anchored(self._at):
            self._state, self._at, self._keys = State(), Position(), {}  # the log was replaced: fold it again
        self._fold(self.log.read_after(self._at), self._folder, self._state, self._keys)
        return self._finish()

    def _fold(self, events, folder: Folder, state: State, keys: dict[str, int], until: int | None = None) -> Position:
        at = self._at if until is None else Position()
        for ev, nxt in events:
            if until is not None and nxt.seq > until:
                break
            folder.apply(state, ev)
            if ev.get("idempotency_key") and nxt.offset:
                keys.setdefault(ev["idempotency_key"], at.offset)
            at = nxt
            if until is None:
                self._at = at
        return at

    def _finish(self) -> State:
        if self.snapshot_path is not None and self._at.seq - max(self._saved_seq, 0) >= self.every:
            self._save()
        return self._state.copy()

    def check_snapshot(self, facts: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
        """For `verify`: re-derive the state from genesis up to the snapshot's position and compare. None when there
        is no snapshot for these facts."""
        folder = Folder(facts)
        data = self._read_snapshot(folder)
        if data is None:
            return None
        state, keys, seq = State(), {}, int(data["position"][0])
        at = self._fold(self.log.read_after(Position()), folder, state, keys, until=seq)
        if list(at) != data["position"]:
            raise IntegrityError(f"{self.snapshot_path}: the state snapshot is anchored at event {seq}, which the "
                                 "log does not hold with that hash and offset (delete it; the next start folds the "
                                 "log again)")
        if canonical(state.to_json()) != canonical(data["state"]) or keys != (data.get("keys") or {}):
            raise IntegrityError(f"{self.snapshot_path}: the state snapshot at event {seq} does not match the state "
                                 "the log establishes there: it was edited (delete it; the next start folds the log "
                                 "again)")
        return {"snapshot": str(self.snapshot_path), "seq": seq}

    # ------------------------------------------------------------------ the file
    def _read_snapshot(self, folder: Folder | None) -> dict[str, Any] | None:
        """The snapshot file's content when it is one for these facts (any facts: None)."""
        if self.snapshot_path is None:
            return None
        try:
            data = json.loads(self.snapshot_path.read_bytes())
            ok = data["format"] == FORMAT and (folder is None or data["facts_digest"] == folder.digest)
        except (OSError, ValueError, KeyError, TypeError):
            return None  # absent or unreadable: fold from genesis (and write a good one)
        return data if ok else None

    def _load(self) -> tuple[State, Position, dict[str, int]] | None:
        assert self._folder is not None
        data = self._read_snapshot(self._folder)
        try:
            at = Position(*data["position"]) if data is not None else None
            if at is None or not self.log.anchored(at):
                return None
            return State.from_json(data["state"]), at, dict(data.get("keys") or {})
        except (KeyError, TypeError, ValueError):
            return None

    def _save(self) -> None:
        assert self._folder is not None and self.snapshot_path is not None
        body = {"format": FORMAT, "log": self.log.name, "facts_digest": self._folder.digest,
                "position": list(self._at), "state": self._state.to_json(), "keys": self._keys}
        try:
            self.snapshot_path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.snapshot_path.with_name(f".{self.snapshot_path.name}.{os.getpid()}.{id(self)}.tmp")
            tmp.write_bytes(canonical(body))
            os.replace(tmp, self.snapshot_path)
            self._saved_seq = self._at.seq
        except OSError:
            pass  # a snapshot that cannot be written only costs the next start a longer replay
