"""Lifecycle webhooks: durable outbox, Standard Webhooks signatures, retries, dead letters."""

from .outbox import EVENT_TYPES, Endpoint, WebhookOutbox, event_text, redact_url, sign

__all__ = ["EVENT_TYPES", "Endpoint", "WebhookOutbox", "event_text", "redact_url", "sign"]
