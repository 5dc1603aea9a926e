"""Lifecycle webhooks with a durable outbox: an event is written to disk before any attempt to send it.

Delivery never blocks or fails a job. A background thread sends pending deliveries; failures (network errors,
408/425/429/5xx) are retried on a schedule that spans more than a day (as Standard Webhooks/Svix senders do:
immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h; each delay ±10 % jitter, and never before `Retry-After`),
with the same `webhook-id` on every attempt so receivers can deduplicate. Other 4xx answers, or an exhausted
schedule, move the delivery to the dead-letter list; `unity-mlops webhooks replay` puts it back.

Any number of senders, in any processes, may share one outbox: a sender *claims* a delivery (a lease that expires)
in one atomic update before it posts it, and records the outcome only while it still holds the lease, so no two
senders post the same message at once, and a sender that dies mid-post leaves a lease that expires and is retried.
An event emitted with a key (a run's identity) has a message id derived from it, so a restarted run that emits its
outcome again adds nothing.

When the outbox's own database cannot be written (the shared PostgreSQL restarting), an event is kept in a spool
directory beside it (`<outbox>.spool/`, one file per message written whole: `webhooks/spool.py`) and recorded by the
next sender pass that finds the database back (the sender of any process with the same state directory); its
message id is kept, and recording it twice adds nothing. So a database outage delays events and loses none.

The outbox stores an endpoint *reference* (its configured name, or its URL without credentials and query), never
the URL's credentials or the signing secret: they are resolved from the configuration when a message is sent.

Signing follows Standard Webhooks: headers `webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64
HMAC-SHA256 of "{id}.{timestamp}.{body}">` with the key from a `whsec_` secret.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from .. import settings
from ..errors import SpecError, UserError
from ..events import EVENT_CLASSES, Event, event_text, event_types
from ..redaction import redact_data
from ..store import Database, open_database
from .endpoint import Endpoint, redact_url, sign  # noqa: F401 (re-exported)
from .spool import Spool

log = logging.getLogger("unity_mlops.webhooks")

EVENT_TYPES = event_types()  # the built-in ones; `events.EVENT_CLASSES` also holds those a deployment adds
RETRYABLE = {408, 425, 429, 500, 502, 503, 504}
# seconds before attempt 2, 3, ...: attempt 8 comes ~27.6 h after the first
DEFAULT_RETRY_SCHEDULE_S = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)
JITTER = 0.1  # ±10 %: the schedule still spans more than a day at its shortest
MAX_RETRY_AFTER_S = 86400.0

STORE = "outbox"  # the write-lock name of the deliveries table


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _retry_after(value: str | None, now: float) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - now)
        except (TypeError, ValueError):
            return None


@dataclass
class WebhookOutbox:
    """The durable outbox plus its sender thread."""

    path: Path
    endpoints: list[Endpoint] = field(default_factory=list)
    retry_schedule_s: tuple[float, ...] = DEFAULT_RETRY_SCHEDULE_S
    timeout_s: float = 10.0
    clock: Callable[[], float] = time.time
    database: str | None = None  # a shared database URL; by default the SQLite file at `path`
    _wake: threading.Event = field(default_factory=threading.Event, repr=False)
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.retry_schedule_s = tuple(float(d) for d in self.retry_schedule_s)
        if not all(math.isfinite(d) and d >= 0 for d in self.retry_schedule_s):
            raise SpecError(f"webhook retry delays must be finite and >= 0, got {list(self.retry_schedule_s)}")
        refs = [e.ref for e in self.endpoints]
        if len(set(refs)) != len(refs):
            raise SpecError(f"two webhook endpoints share the reference {refs}",
                            hint="give each webhook a distinct `name`")
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"  # this sender's lease id
        self.lease_s = 3 * self.timeout_s + 30
        self.db: Database = open_database(self.database or self.path)
        self.spool = Spool(self.path.with_name(self.path.name + ".spool"))  # events waiting for the database
        self._in_flight = 0  # deliveries this process is claiming or posting now
        self._in_flight_lock = threading.Lock()
        self._migrate()

    @property
    def max_attempts(self) -> int:
        return len(self.retry_schedule_s) + 1

    def _migrate(self) -> None:
        """Older outboxes stored the full URL (credentials included): replace stored URLs by endpoint references."""
        stored = [r[0] for r in self.db.all("SELECT DISTINCT endpoint FROM deliveries WHERE endpoint LIKE '%://%'")]
        by_url = {e.url: e.ref for e in self.endpoints}
        for value in stored:
            ref = by_url.get(value) or redact_url(value)
            if ref != value:
                with self.db.write(STORE) as conn:
                    conn.execute(text("DELETE FROM deliveries WHERE endpoint=:old AND id IN (SELECT id FROM "
                                      "deliveries WHERE endpoint=:new)"), {"old": value, "new": ref})
                    conn.execute(text("UPDATE deliveries SET endpoint=:new WHERE endpoint=:old"),
                                 {"old": value, "new": ref})

    @classmethod
    def from_environment(cls, path: Path, extra: list[Endpoint] | None = None,
                         retry_schedule_s: tuple[float, ...] | None = None,
                         database: str | None = None) -> WebhookOutbox:
        """`WEBHOOK_URL` (optionally with `WEBHOOK_SECRET`; stored as the reference `WEBHOOK_URL`) plus configured
        endpoints."""
        endpoints = list(extra or [])
        found = settings.webhook_env()
        if found:
            endpoints.append(Endpoint(found[0], found[1], name="WEBHOOK_URL"))
        if retry_schedule_s is None:
            return cls(path, endpoints, database=database)
        return cls(path, endpoints, retry_schedule_s=retry_schedule_s, database=database)

    # ------------------------------------------------------------------ producing
    def __call__(self, event: Event) -> None:
        """The outbox as an event listener: durably queued, delivered in the background."""
        if self.endpoints:
            self.start()
            self.emit(event.type, event.data(), key=event.key)

    def emit(self, event_type: str, data: dict[str, Any], key: str | None = None) -> str | None:
        """Record the event for every interested endpoint (durably) and wake the sender; never raises. With a
        `key`, the message id is derived from (key, event type): emitting it again adds nothing."""
        if event_type not in EVENT_CLASSES:
            raise ValueError(f"unknown event type {event_type}")
        targets = [e for e in self.endpoints if e.wants(event_type)]
        if not targets:
            return None
        if key is None:
            msg_id = f"msg_{uuid.uuid4().hex}"
        else:
            msg_id = "msg_" + hashlib.sha256(f"{key}\0{event_type}".encode()).hexdigest()[:32]
        now = self.clock()
        data = redact_data(data)
        body = json.dumps({
            "type": event_type, "id": msg_id,
            "timestamp": datetime.fromtimestamp(now, timezone.utc).isoformat(),
            "data": data, "text": event_text(event_type, data),
        }, default=str, sort_keys=True)
        rows = [{"id": msg_id, "ref": e.ref, "type": event_type, "body": body, "now": now} for e in targets]
        try:
            self._record(rows)
        except (SQLAlchemyError, UserError) as exc:  # the database is away: spooled; a broken outbox never fails a job
            try:
                self.spool.write(msg_id, rows)
            except OSError as spool_exc:
                log.error("could not record webhook event %s: %s; nor spool it: %s", event_type, exc, spool_exc)
                return None
            log.warning("webhook event %s kept in %s until the outbox's database is back (%s)", msg_id,
                        self.spool, _first_line(exc))
        self._wake.set()
        return msg_id

    def _record(self, rows: list[dict[str, Any]]) -> None:
        with self.db.write(STORE) as conn:
            for row in rows:
                conn.execute(text("INSERT INTO deliveries (id, endpoint, event_type, body, created_at, status, "
                                  "next_attempt) VALUES (:id, :ref, :type, :body, :now, 'pending', :now) "
                                  "ON CONFLICT (id, endpoint) DO NOTHING"), row)

    # ------------------------------------------------------------------ sending
    def deliver_due(self, client=None) -> int:
        """Claim and attempt every delivery due now for the endpoints this outbox knows; returns how many it
        attempted (those claimed by other senders are theirs)."""
        import httpx

        by_ref = {e.ref: e for e in self.endpoints}
        if not by_ref:
            return 0
        self.spool.drain(self._record, (SQLAlchemyError, UserError))
        now = self.clock()
        refs = {f"e{i}": ref for i, ref in enumerate(by_ref)}
        rows = self.db.all("SELECT id, endpoint FROM deliveries WHERE status = 'pending' AND next_attempt <= :now "
                           "AND (lease_until IS NULL OR lease_until <= :now) AND endpoint IN "
                           f"({', '.join(':' + k for k in refs)}) ORDER BY created_at LIMIT 500", {"now": now, **refs})
        if not rows:
            return 0
        own = client is None
        client = client or httpx.Client(timeout=self.timeout_s, follow_redirects=False)
        attempted = 0
        try:
            for msg_id, ref in rows:
                with self._posting():  # from before the claim until the outcome is written: flush waits for it
                    claimed = self._claim(msg_id, ref)
                    if claimed is not None:
                        body, attempts = claimed
                        self._attempt(client, by_ref[ref], msg_id, body, attempts)
                        attempted += 1
        finally:
            if own:
                client.close()
        return attempted

    @contextmanager
    def _posting(self) -> Iterator[None]:
        with self._in_flight_lock:
            self._in_flight += 1
        try:
            yield
        finally:
            with self._in_flight_lock:
                self._in_flight -= 1

    def _claim(self, msg_id: str, ref: str) -> tuple[str, int] | None:
        """Take the lease on a due delivery in one atomic update; None if another sender holds or finished it."""
        now = self.clock()
        with self.db.write(STORE) as conn:
            row = conn.execute(text(
                "UPDATE deliveries SET lease_owner=:owner, lease_until=:until WHERE id=:id AND endpoint=:ref AND "
                "status='pending' AND next_attempt <= :now AND (lease_until IS NULL OR lease_until <= :now) "
                "RETURNING body, attempts"),
                {"owner": self.owner, "until": now + self.lease_s, "id": msg_id, "ref": ref, "now": now}).first()
        return None if row is None else (row[0], row[1])

    def _attempt(self, client, endpoint: Endpoint, msg_id: str, body: str, attempts: int) -> None:
        import httpx

        ts = int(time.time())  # real wall-clock time: receivers reject stale signatures (5 min)
        headers = {"content-type": "application/json", "webhook-id": msg_id, "webhook-timestamp": str(ts),
                   "user-agent": "unity-mlops-webhooks"}
        if endpoint.secret:
            headers["webhook-signature"] = sign(endpoint.secret, msg_id, ts, body.encode())
        retry_after = None
        try:
            resp = client.post(endpoint.url, content=body.encode(), headers=headers)
            status, error = resp.status_code, None if resp.is_success else f"HTTP {resp.status_code}"
            retry_after = _retry_after(resp.headers.get("retry-after"), self.clock())
        except httpx.HTTPError as exc:
            status, error = None, f"{type(exc).__name__}"
        attempts += 1
        now = self.clock()
        where = "WHERE id=:id AND endpoint=:ref AND lease_owner=:owner"  # only while we hold the lease
        key = {"id": msg_id, "ref": endpoint.ref, "owner": self.owner, "attempts": attempts, "error": error}
        if error is None:
            self.db.execute("UPDATE deliveries SET status='delivered', attempts=:attempts, delivered_at=:now, "
                            f"last_error=NULL, lease_owner=NULL, lease_until=NULL {where}", {**key, "now": now},
                            name=STORE)
            log.info("webhook %s delivered to %s", msg_id, endpoint.ref)
            return
        permanent = status is not None and status not in RETRYABLE and 400 <= status < 500
        if permanent or attempts >= self.max_attempts:
            self.db.execute("UPDATE deliveries SET status='dead', attempts=:attempts, last_error=:error, "
                            f"lease_owner=NULL, lease_until=NULL {where}", key, name=STORE)
            log.error("webhook %s to %s dead after %d attempt(s): %s", msg_id, endpoint.ref, attempts, error)
            return
        delay = self.retry_schedule_s[attempts - 1] * random.uniform(1 - JITTER, 1 + JITTER)
        if retry_after is not None:
            delay = max(delay, min(retry_after, MAX_RETRY_AFTER_S))
        self.db.execute("UPDATE deliveries SET attempts=:attempts, next_attempt=:next, last_error=:error, "
                        f"lease_owner=NULL, lease_until=NULL {where}", {**key, "next": now + delay}, name=STORE)
        log.warning("webhook %s to %s failed (%s); attempt %d of %d in %.0f s", msg_id, endpoint.ref, error,
                    attempts + 1, self.max_attempts, delay)

    def _next_due_in(self) -> float | None:
        if self.spool.files():
            return 1.0  # the database was away: try again soon
        row = self.db.one("SELECT MIN(CASE WHEN lease_until > next_attempt THEN lease_until ELSE next_attempt END) "
                          "FROM deliveries WHERE status='pending'")
        return None if row is None or row[0] is None else max(0.0, row[0] - self.clock())

    def start(self) -> None:
        """Send in a background thread (daemon) until `close`."""
        if self._thread is not None or not self.endpoints:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="unity-mlops-webhooks", daemon=True)
        self._thread.start()
        self._wake.set()

    def _loop(self) -> None:
        import httpx

        away = False  # the database was unavailable at the last pass (said once, and again when it is back)
        with httpx.Client(timeout=self.timeout_s, follow_redirects=False) as client:
            while not self._stop.is_set():
                try:
                    self.deliver_due(client)
                    wait = self._next_due_in()
                    if away:
                        log.info("webhook sender: the outbox's database is back")
                    away = False
                except (SQLAlchemyError, UserError) as exc:
                    if not away:
                        log.warning("webhook sender: the outbox's database is unavailable (%s); retrying every 5 s",
                                    _first_line(exc))
                    away, wait = True, 5.0
                except Exception:  # keep the sender alive whatever happens
                    log.exception("webhook sender error")
                    wait = 5.0
                self._wake.wait(timeout=min(wait, 5.0) if wait is not None else 5.0)
                self._wake.clear()

    def flush(self, timeout_s: float = 5.0) -> None:
        """Wait up to `timeout_s` for what is due to be sent (later retries stay in the outbox)."""
        if self._thread is None:
            return
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                due = self._next_due_in()
            except (SQLAlchemyError, UserError):  # the database is away: what is queued or spooled stays
                return
            # a delivery being posted holds a lease that hides it from that query; read after it, the count covers
            # any lease the query saw (it goes up before a claim and down after the outcome is written)
            if not self._in_flight and (due is None or due > deadline - time.monotonic()):
                return
            self._wake.set()
            time.sleep(0.05)

    def close(self, flush_timeout_s: float = 5.0) -> None:
        """Stop the sender, after trying for up to `flush_timeout_s` to send what is due."""
        if self._thread is None:
            return
        self.flush(flush_timeout_s)
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=self.timeout_s + 1)
        self._thread = None
        waiting = len(self.spool.files())
        if waiting:
            log.warning("%d webhook event(s) wait in %s for the outbox's database; the next sender started with this "
                        "state directory records them", waiting, self.spool)

    # ------------------------------------------------------------------ operations
    def counts(self) -> dict[str, int]:
        return dict(self.db.all("SELECT status, COUNT(*) FROM deliveries GROUP BY status"))

    def dead_letters(self) -> list[dict[str, Any]]:
        rows = self.db.all("SELECT id, endpoint, event_type, attempts, last_error FROM deliveries WHERE "
                           "status='dead' ORDER BY created_at")
        return [{"id": r[0], "endpoint": r[1], "event_type": r[2], "attempts": r[3], "error": r[4]} for r in rows]

    def replay(self, msg_id: str | None = None) -> int:
        """Put dead deliveries (all, or one id) back in the queue, keeping their webhook-id."""
        sql = ("UPDATE deliveries SET status='pending', attempts=0, next_attempt=:now, lease_owner=NULL, "
               "lease_until=NULL WHERE status='dead'")
        params: dict[str, Any] = {"now": self.clock()}
        if msg_id:
            sql += " AND id=:id"
            params["id"] = msg_id
        n = self.db.execute(sql, params, name=STORE)
        self._wake.set()
        return n
