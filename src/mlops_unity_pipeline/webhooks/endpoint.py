"""A webhook endpoint (URL, `whsec_` secret, event filter) and Standard Webhooks signing."""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from ..errors import SpecError
from ..events import EVENT_CLASSES
from ..redaction import register_secret, url_secrets


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
    name: str | None = None  # what the outbox stores; default: the URL without credentials and query

    @property
    def ref(self) -> str:
        return self.name or redact_url(self.url)

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
        unknown = set(self.events) - set(EVENT_CLASSES)
        if unknown:
            raise SpecError(f"unknown webhook event types {sorted(unknown)}; known: {', '.join(EVENT_CLASSES)}")
        register_secret(self.secret)
        for value in url_secrets(self.url):
            register_secret(value)

    def wants(self, event_type: str) -> bool:
        return not self.events or event_type in self.events


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()
