"""Lifecycle webhooks with a durable outbox: an event is written to disk before any attempt to send it.

Delivery never blocks or fails a job. A background thread sends pending deliveries; failures (network errors,
408/425/429/5xx) are retried with exponential backoff and full jitter, honouring `Retry-After`, with the same
`webhook-id` on every attempt so receivers can deduplicate. Other 4xx answers, or too many attempts, move the
delivery to the dead-letter list; `unity-mlops webhooks replay` puts it back. Deliveries still pending when the
process exits are sent by the next process that opens the outbox.

Signing follows Standard Webhooks: headers `webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64
HMAC-SHA256 of "{id}.{timestamp}.{body}">` with the key from a `whsec_` secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import random
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ..errors import SpecError
from ..sqlite_store import connect

log = logging.getLogger("unity_mlops.webhooks")

EVENT_TYPES = ("schedule.started", "schedule.missed", "job.started", "job.completed", "job.failed",
               "model.registered")
RETRYABLE = {408, 425, 429, 500, 502, 503, 504}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS deliveries (
    id            TEXT NOT NULL,
    endpoint      TEXT NOT NULL,
    event_type    TEXT NOT NULL,
    body          TEXT NOT NULL,
    created_at    REAL NOT NULL,
    status        TEXT NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    next_attempt  REAL NOT NULL,
    last_error    TEXT,
    delivered_at  REAL,
    PRIMARY KEY (id, endpoint)
);
"""


def redact_url(url: str) -> str:
    """The URL without credentials or query string (which often carries tokens), for logs."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


@dataclass
class Endpoint:
    url: str
    secret: str | None = None
    events: tuple[str, ...] = ()  # empty: every event

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise SpecError(f"webhook URL {redact_url(self.url)!r} must be an http(s) URL",
                            hint="use https://... (http:// only for local receivers)")
        if self.secret is not None:
            if not self.secret.startswith("whsec_"):
                raise SpecError("webhook secrets must start with 'whsec_' (Standard Webhooks)")
            try:
                base64.b64decode(self.secret[6:], validate=True)
            except ValueError:
                raise SpecError("webhook secret after 'whsec_' must be base64") from None
        unknown = set(self.events) - set(EVENT_TYPES)
        if unknown:
            raise SpecError(f"unknown webhook event types {sorted(unknown)}; known: {', '.join(EVENT_TYPES)}")

    def wants(self, event_type: str) -> bool:
        return not self.events or event_type in self.events


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


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


def event_text(event_type: str, data: dict[str, Any]) -> str:
    """A human-readable line, so a Slack incoming webhook shows something useful."""
    job, version = data.get("job_id"), data.get("model_version")
    if event_type == "job.started":
        return f"Training job {job} started for asset {data.get('asset_id')}"
    if event_type == "job.completed":
        success = data.get("success_rate")
        extra = f", success {success:.0%}" if isinstance(success, int | float) else ""
        return f"Training job {job} completed: model {version}{extra}"
    if event_type == "job.failed":
        return f"Training job {job} failed in stage {data.get('stage')}: {data.get('message')}"
    if event_type == "model.registered":
        return f"Model {version} registered (asset {data.get('asset_id')}, job {job})"
    if event_type == "schedule.started":
        return f"Schedule {data.get('schedule_id')} started its {data.get('slot')} run"
    if event_type == "schedule.missed":
        return f"Schedule {data.get('schedule_id')} missed its {data.get('slot')} run ({data.get('reason')})"
    return f"{event_type}: {json.dumps(data, default=str)[:200]}"


@dataclass
class WebhookOutbox:
    """The durable outbox plus its sender thread."""

    path: Path
    endpoints: list[Endpoint] = field(default_factory=list)
    max_attempts: int = 8
    base_delay_s: float = 1.0
    max_delay_s: float = 300.0
    timeout_s: float = 10.0
    clock: Callable[[], float] = time.time
    _wake: threading.Event = field(default_factory=threading.Event, repr=False)
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        connect(self.path, _SCHEMA).close()

    @classmethod
    def from_environment(cls, path: Path, extra: list[Endpoint] | None = None) -> WebhookOutbox:
        """`WEBHOOK_URL` (optionally with `WEBHOOK_SECRET`) plus configured endpoints."""
        endpoints = list(extra or [])
        url = os.environ.get("WEBHOOK_URL", "").strip()
        if url:
            endpoints.append(Endpoint(url, os.environ.get("WEBHOOK_SECRET") or None))
        return cls(path, endpoints)

    def _connect(self) -> sqlite3.Connection:
        return connect(self.path)

    # ------------------------------------------------------------------ producing
    def emit(self, event_type: str, data: dict[str, Any]) -> str | None:
        """Record the event for every interested endpoint (durably) and wake the sender; never raises."""
        if event_type not in EVENT_TYPES:
            raise ValueError(f"unknown event type {event_type}")
        targets = [e for e in self.endpoints if e.wants(event_type)]
        if not targets:
            return None
        msg_id = f"msg_{uuid.uuid4().hex}"
        now = self.clock()
        body = json.dumps({
            "type": event_type, "id": msg_id,
            "timestamp": datetime.fromtimestamp(now, timezone.utc).isoformat(),
            "data": data, "text": event_text(event_type, data),
        }, default=str, sort_keys=True)
        try:
            with closing(self._connect()) as conn:
                conn.execute("BEGIN IMMEDIATE")
                for e in targets:
                    conn.execute("INSERT INTO deliveries (id, endpoint, event_type, body, created_at, status, "
                                 "next_attempt) VALUES (?,?,?,?,?, 'pending', ?)", (msg_id, e.url, event_type,
                                                                                    body, now, now))
                conn.execute("COMMIT")
        except sqlite3.Error as exc:  # a broken outbox must not fail the job
            log.error("could not record webhook event %s: %s", event_type, exc)
            return None
        self._wake.set()
        return msg_id

    # ------------------------------------------------------------------ sending
    def deliver_due(self, client=None) -> int:
        """Attempt every delivery that is due now; returns how many were attempted."""
        import httpx

        now = self.clock()
        with closing(self._connect()) as conn:
            rows = conn.execute("SELECT id, endpoint, body, attempts FROM deliveries WHERE status = 'pending' AND "
                                "next_attempt <= ? ORDER BY created_at", (now,)).fetchall()
        if not rows:
            return 0
        by_url = {e.url: e for e in self.endpoints}
        own = client is None
        client = client or httpx.Client(timeout=self.timeout_s, follow_redirects=False)
        try:
            for msg_id, url, body, attempts in rows:
                self._attempt(client, by_url.get(url), msg_id, url, body, attempts)
        finally:
            if own:
                client.close()
        return len(rows)

    def _attempt(self, client, endpoint: Endpoint | None, msg_id: str, url: str, body: str, attempts: int) -> None:
        import httpx

        ts = int(time.time())  # real wall-clock time: receivers reject stale signatures (5 min)
        headers = {"content-type": "application/json", "webhook-id": msg_id, "webhook-timestamp": str(ts),
                   "user-agent": "unity-mlops-webhooks"}
        if endpoint is not None and endpoint.secret:
            headers["webhook-signature"] = sign(endpoint.secret, msg_id, ts, body.encode())
        retry_after = None
        try:
            resp = client.post(url, content=body.encode(), headers=headers)
            status, error = resp.status_code, None if resp.is_success else f"HTTP {resp.status_code}"
            retry_after = _retry_after(resp.headers.get("retry-after"), self.clock())
        except httpx.HTTPError as exc:
            status, error = None, f"{type(exc).__name__}"
        attempts += 1
        now = self.clock()
        with closing(self._connect()) as conn:
            if error is None:
                conn.execute("UPDATE deliveries SET status='delivered', attempts=?, delivered_at=?, last_error=NULL "
                             "WHERE id=? AND endpoint=?", (attempts, now, msg_id, url))
                log.info("webhook %s delivered to %s", msg_id, redact_url(url))
                return
            permanent = status is not None and status not in RETRYABLE and 400 <= status < 500
            if permanent or attempts >= self.max_attempts:
                conn.execute("UPDATE deliveries SET status='dead', attempts=?, last_error=? WHERE id=? AND "
                             "endpoint=?", (attempts, error, msg_id, url))
                log.error("webhook %s to %s dead after %d attempt(s): %s", msg_id, redact_url(url), attempts, error)
                return
            delay = min(self.max_delay_s, self.base_delay_s * 2 ** (attempts - 1))
            delay = random.uniform(0, delay)  # full jitter
            if retry_after is not None:
                delay = max(delay, min(retry_after, self.max_delay_s))
            conn.execute("UPDATE deliveries SET attempts=?, next_attempt=?, last_error=? WHERE id=? AND endpoint=?",
                         (attempts, now + delay, error, msg_id, url))
            log.warning("webhook %s to %s failed (%s); retry %d in %.1f s", msg_id, redact_url(url), error,
                        attempts, delay)

    def _next_due_in(self) -> float | None:
        with closing(self._connect()) as conn:
            row = conn.execute("SELECT MIN(next_attempt) FROM deliveries WHERE status='pending'").fetchone()
        return None if row[0] is None else max(0.0, row[0] - self.clock())

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

        with httpx.Client(timeout=self.timeout_s, follow_redirects=False) as client:
            while not self._stop.is_set():
                try:
                    self.deliver_due(client)
                    wait = self._next_due_in()
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
            due = self._next_due_in()
            if due is None or due > deadline - time.monotonic():
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

    # ------------------------------------------------------------------ operations
    def counts(self) -> dict[str, int]:
        with closing(self._connect()) as conn:
            return dict(conn.execute("SELECT status, COUNT(*) FROM deliveries GROUP BY status").fetchall())

    def dead_letters(self) -> list[dict[str, Any]]:
        with closing(self._connect()) as conn:
            rows = conn.execute("SELECT id, endpoint, event_type, attempts, last_error FROM deliveries WHERE "
                                "status='dead' ORDER BY created_at").fetchall()
        return [{"id": r[0], "endpoint": redact_url(r[1]), "event_type": r[2], "attempts": r[3], "error": r[4]}
                for r in rows]

    def replay(self, msg_id: str | None = None) -> int:
        """Put dead deliveries (all, or one id) back in the queue, keeping their webhook-id."""
        with closing(self._connect()) as conn:
            sql = "UPDATE deliveries SET status='pending', attempts=0, next_attempt=? WHERE status='dead'"
            args: tuple = (self.clock(),)
            if msg_id:
                sql += " AND id=?"
                args += (msg_id,)
            n = conn.execute(sql, args).rowcount
        self._wake.set()
        return n
