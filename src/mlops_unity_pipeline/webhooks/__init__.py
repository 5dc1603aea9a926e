"""Lifecycle webhooks: durable outbox, Standard Webhooks signatures, retries, dead letters."""

from ..events import event_text
from .endpoint import Endpoint, redact_url, sign
from .outbox import EVENT_TYPES, WebhookOutbox

__all__ = ["EVENT_TYPES", "Endpoint", "WebhookOutbox", "event_text", "redact_url", "sign"]
