"""Lifecycle events: typed facts published by the orchestrator and the scheduler, received by listeners.

As in APScheduler 3, an event is a class (its data are its fields, its text its own), and listeners subscribe to
the bus with the event types they want. The webhook outbox, the log and anything a deployment adds (a metrics
exporter, a chat bot) are listeners; publishers know none of them. A listener that raises is logged and skipped:
telling the world about a job never fails the job.

Adding an event: a dataclass here with `type` and `text()`; publish it where it happens.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

log = logging.getLogger("unity_mlops.events")

EVENT_CLASSES: dict[str, type[Event]] = {}


@dataclass(frozen=True, kw_only=True)
class Event:
    """`key` names what the event is about once (a run's identity): the same event with the same key is one
    message, so a restarted run does not announce itself twice. It is not part of the data."""

    type: ClassVar[str] = ""
    key: str | None = field(default=None, compare=False)

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        if cls.type:
            EVENT_CLASSES[cls.type] = cls

    def data(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("key")
        return out

    def text(self) -> str:
        """A human-readable line, so a Slack incoming webhook shows something useful."""
        return self.type


@dataclass(frozen=True, kw_only=True)
class JobEvent(Event):
    job_id: str | None = None
    asset_id: str | None = None
    model_version: str | None = None


@dataclass(frozen=True, kw_only=True)
class JobStarted(JobEvent):
    """A job starts (each attempt; a restarted run keeps its message id)."""

    type: ClassVar[str] = "job.started"
    attempt: int = 1

    def text(self) -> str:
        return f"Training job {self.job_id} started for asset {self.asset_id}"


@dataclass(frozen=True, kw_only=True)
class ModelRegistered(JobEvent):
    """A version is registered."""

    type: ClassVar[str] = "model.registered"
    uri: str | None = None

    def text(self) -> str:
        return f"Model {self.model_version} registered (asset {self.asset_id}, job {self.job_id})"


@dataclass(frozen=True, kw_only=True)
class JobCompleted(JobEvent):
    """A job completed: trained, evaluated and registered."""

    type: ClassVar[str] = "job.completed"
    success_rate: float | None = None
    mean_reward: float | None = None
    trained_model_path: str | None = None

    def text(self) -> str:
        extra = f", success {self.success_rate:.0%}" if isinstance(self.success_rate, int | float) else ""
        return f"Training job {self.job_id} completed: model {self.model_version}{extra}"


@dataclass(frozen=True, kw_only=True)
class JobFailed(JobEvent):
    """A job failed or was cancelled: its stage, the message and the log tail."""

    type: ClassVar[str] = "job.failed"
    status: str = "failed"
    stage: str | None = None
    message: str | None = None
    log_tail: str = ""

    def text(self) -> str:
        return f"Training job {self.job_id} failed in stage {self.stage}: {self.message}"


@dataclass(frozen=True, kw_only=True)
class ScheduleStarted(JobEvent):
    """A schedule fires a slot (its runs follow)."""

    type: ClassVar[str] = "schedule.started"
    schedule_id: str = ""
    slot: str = ""
    asset_ids: list[str] = field(default_factory=list)

    def text(self) -> str:
        return f"Schedule {self.schedule_id} started its {self.slot} run"


@dataclass(frozen=True, kw_only=True)
class ScheduleMissed(JobEvent):
    """A slot could not run: downtime past its deadline, an overlap forbidden, a run still in progress."""

    type: ClassVar[str] = "schedule.missed"
    schedule_id: str = ""
    slot: str = ""
    reason: str = ""
    missed_total: int | None = None

    def text(self) -> str:
        return f"Schedule {self.schedule_id} missed its {self.slot} run ({self.reason})"


@dataclass(frozen=True, kw_only=True)
class AssetEvent(Event):
    """What governance did to an asset's versions: who did it, and the ledger entry that records it."""

    asset_name: str = ""
    version: str | None = None
    actor: str = ""
    reason: str = ""
    ledger_seq: int | None = None


@dataclass(frozen=True, kw_only=True)
class ModelPromoted(AssetEvent):
    """An alias (staging or production) moved to a version, its gates passed."""

    type: ClassVar[str] = "model.promoted"
    alias: str = ""
    from_version: str | None = None

    def text(self) -> str:
        return (f"{self.asset_name}: {self.alias} moved from {self.from_version or 'nothing'} to {self.version} "
                f"by {self.actor}")


@dataclass(frozen=True, kw_only=True)
class ModelRolledBack(AssetEvent):
    """Production went back to the last known-good version; an incident is open and the asset frozen."""

    type: ClassVar[str] = "model.rolled_back"
    from_version: str | None = None

    def text(self) -> str:
        return (f"{self.asset_name}: production rolled back from {self.from_version} to {self.version} by "
                f"{self.actor} ({self.reason})")


@dataclass(frozen=True, kw_only=True)
class AssetFrozen(AssetEvent):
    """Promotions of an asset are blocked (a rollback freezes it too)."""

    type: ClassVar[str] = "asset.frozen"

    def text(self) -> str:
        return f"{self.asset_name} frozen by {self.actor}: {self.reason}"


@dataclass(frozen=True, kw_only=True)
class AssetUnfrozen(AssetEvent):
    """Promotions of an asset are allowed again."""

    type: ClassVar[str] = "asset.unfrozen"

    def text(self) -> str:
        return f"{self.asset_name} unfrozen by {self.actor}: {self.reason}"


def event_types() -> tuple[str, ...]:
    return tuple(EVENT_CLASSES)


def event_text(event_type: str, data: dict[str, Any]) -> str:
    """The text of an event given as type and data (events read back from a store)."""
    cls = EVENT_CLASSES.get(event_type)
    if cls is None:
        return f"{event_type}: {str(data)[:200]}"
    names = set(cls.__dataclass_fields__) - {"key"}
    return cls(**{k: v for k, v in data.items() if k in names}).text()


Listener = Callable[[Event], None]


class EventBus:
    """Listeners subscribed with the event types they want (none: all)."""

    def __init__(self) -> None:
        self._listeners: list[tuple[Listener, frozenset[str] | None]] = []
        self._lock = threading.Lock()

    def subscribe(self, listener: Listener, types: Iterable[str] | None = None) -> Listener:
        wanted = frozenset(types) if types is not None else None
        unknown = (wanted or frozenset()) - set(EVENT_CLASSES)
        if unknown:
            raise ValueError(f"unknown event types {sorted(unknown)}; known: {', '.join(EVENT_CLASSES)}")
        with self._lock:
            self._listeners.append((listener, wanted))
        return listener

    def subscribe_installed(self) -> None:
        """Every listener an installed package registers (`unity_mlops.listeners`; the product's log is one)."""
        from .plugins import load_all

        for listener in load_all("listeners").values():
            if listener not in self.listeners:
                self.subscribe(listener)

    def unsubscribe(self, listener: Listener) -> None:
        with self._lock:
            self._listeners = [(fn, t) for fn, t in self._listeners if fn is not listener]

    @property
    def listeners(self) -> list[Listener]:
        return [fn for fn, _ in self._listeners]

    def publish(self, event: Event) -> None:
        for fn, wanted in list(self._listeners):
            if wanted is not None and event.type not in wanted:
                continue
            try:
                fn(event)
            except Exception:  # a broken listener must not fail the job that published
                log.exception("event listener %r failed on %s", fn, event.type)

    def _each(self, method: str, *args: Any) -> None:
        for fn in self.listeners:
            call = getattr(fn, method, None)
            if callable(call):
                call(*args)

    def start(self) -> None:
        """Start listeners that deliver in the background (the webhook outbox's sender)."""
        self._each("start")

    def flush(self, timeout_s: float) -> None:
        """Give background listeners a moment to send."""
        self._each("flush", timeout_s)

    def close(self, timeout_s: float) -> None:
        self._each("close", timeout_s)


def log_listener(event: Event) -> None:
    """The log line every event leaves (debug level: the stages log their own progress)."""
    log.debug("%s %s", event.type, event.text())
