"""Lifecycle webhooks: durable outbox, Standard Webhooks signatures, retries, dead letters."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import settings
from ..events import EventBus, event_text
from .endpoint import Endpoint, redact_url, sign
from .outbox import EVENT_TYPES, WebhookOutbox

if TYPE_CHECKING:
    from ..settings import Paths

__all__ = ["EVENT_TYPES", "Endpoint", "WebhookOutbox", "event_text", "lifecycle_bus", "redact_url", "sign"]


def lifecycle_bus(paths: Paths, bus: EventBus | None = None,
                  outbox: WebhookOutbox | None = None) -> tuple[EventBus, WebhookOutbox | None]:
    """The bus a process publishes its lifecycle events on: every installed listener, and the webhook outbox (the
    one given, or the setup guide's `WEBHOOK_URL` when it is set), subscribed once. Closing the bus stops the
    outbox's sender."""
    bus = bus or EventBus()
    bus.subscribe_installed()
    if outbox is None and settings.webhook_env():
        outbox = WebhookOutbox.from_environment(paths.outbox, database=paths.database)
    if outbox is not None and outbox not in bus.listeners:
        bus.subscribe(outbox)
    return bus, outbox
