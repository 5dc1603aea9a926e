"""What the stages of one job hand each other."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from ..behavior.definition import BehaviorDefinition
from ..build.builders import BuildArtifact
from ..generate.base import GeneratedArtifacts
from ..registry.base import ModelRegistry, ModelVersion
from ..specs import TrainingJob
from ..trainer.base import Trainer, TrainingOutcome
from .artifacts import RunSync
from .jobstate import JobState
from .workspace import JobWorkspace


@dataclass
class JobContext:
    job: TrainingJob
    ws: JobWorkspace
    cancel: threading.Event
    state: JobState
    trainer: Trainer
    registry: ModelRegistry
    sync: RunSync
    definition: BehaviorDefinition | None = None
    generated: GeneratedArtifacts | None = None
    build: BuildArtifact | None = None
    training: TrainingOutcome | None = None
    evaluation: dict[str, Any] = field(default_factory=dict)
    evaluations: dict[str, dict[str, Any]] = field(default_factory=dict)  # every behaviour's, the job's own too
    version: ModelVersion | None = None
    versions: list[ModelVersion] = field(default_factory=list)  # one per behaviour, the job's own first
    timings: dict[str, float] = field(default_factory=dict)
    recovered: bool = False  # the run had registered before a restart: only the bookkeeping was left
    started_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
