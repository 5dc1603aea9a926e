"""The executor interface (APScheduler's executors, for training jobs), its local form, and the choice by config."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from .. import settings
from ..specs import TrainingJob, TrainingResult

if TYPE_CHECKING:
    from ..pipeline.orchestrator import UnityMLOpsOrchestrator


class Executor(Protocol):
    """Runs one job to its result. Running the same `run_key` again continues that run (its checkpoint, its
    registration), so an executor may retry a job that was lost with its machine."""

    name: str

    async def run(self, job: TrainingJob, run_key: str) -> TrainingResult: ...

    def close(self) -> None: ...


class LocalExecutor:
    """In this process, in a thread (cancelling stops the trainer with a checkpoint)."""

    name = "local"

    def __init__(self, orchestrator: UnityMLOpsOrchestrator) -> None:
        self.orchestrator = orchestrator

    async def run(self, job: TrainingJob, run_key: str) -> TrainingResult:
        return await self.orchestrator.execute_training_job(job, run_key=run_key)

    def close(self) -> None:
        return None


def executor_from_config(config: Any, orchestrator: UnityMLOpsOrchestrator) -> Executor:
    """`executor:` of a scheduler config (`kind: local | ray`)."""
    if config is None or config.kind == "local":
        return LocalExecutor(orchestrator)
    from .ray_executor import RayExecutor

    paths = orchestrator.paths
    default = paths.registry == str(paths.workspace / settings.REGISTRY_DIRNAME)  # then: the worker's workspace's
    return RayExecutor(config.address, orchestrator.workspace, None if default else paths.registry,
                       num_cpus=config.num_cpus,
                       max_retries=config.max_retries, database=paths.database, artifacts=paths.artifacts)
