"""The executor interface (APScheduler's executors, for training jobs), its local form, and the choice by config."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Protocol

from ..devices import resolve_device, visible_gpus
from ..specs import TrainingJob, TrainingResult
from ..trainer.environment import default_env_path

if TYPE_CHECKING:
    from ..pipeline.orchestrator import UnityMLOpsOrchestrator


class Executor(Protocol):
    """Runs one job to its result. Running the same `run_key` again continues that run (its checkpoint, its
    registration), so an executor may retry a job that was lost with its machine."""

    name: str

    async def run(self, job: TrainingJob, run_key: str) -> TrainingResult: ...

    def close(self) -> None: ...


class LocalExecutor:
    """In this process, in a thread (cancelling stops the trainer with a checkpoint). A job that needs GPUs waits
    until as many of this machine's are free, and trains on the first of its own (`cuda:<i>`)."""

    name = "local"

    def __init__(self, orchestrator: UnityMLOpsOrchestrator) -> None:
        self.orchestrator = orchestrator
        self._free_gpus: list[str] = visible_gpus()
        self._total_gpus = len(self._free_gpus)
        self._gpu_released: asyncio.Condition | None = None

    async def run(self, job: TrainingJob, run_key: str) -> TrainingResult:
        need = job.resources.gpus
        if not need or need > self._total_gpus:  # more than there are: the job's preflight refuses it
            return await self.orchestrator.execute_training_job(job, run_key=run_key)
        self._gpu_released = self._gpu_released or asyncio.Condition()
        async with self._gpu_released:
            await self._gpu_released.wait_for(lambda: len(self._free_gpus) >= need)
            mine, self._free_gpus = self._free_gpus[:need], self._free_gpus[need:]
        try:
            return await self.orchestrator.execute_training_job(self._on(job, mine[0]), run_key=run_key)
        finally:
            async with self._gpu_released:
                self._free_gpus = sorted(self._free_gpus + mine)
                self._gpu_released.notify_all()

    def close(self) -> None:
        return None

    def _on(self, job: TrainingJob, gpu: str) -> TrainingJob:
        env = (self.orchestrator.trainer_env_path or default_env_path()).expanduser()
        device, _ = resolve_device(job.resources.device, env)
        if device != "cuda" or not gpu.isdigit():
            return job
        return job.model_copy(update={"resources": job.resources.model_copy(update={"device": f"cuda:{gpu}"})})


def executor_from_config(config: Any, orchestrator: UnityMLOpsOrchestrator) -> Executor:
    """`executor:` of a scheduler config: `kind` names a plugin of the `unity_mlops.executors` family, a function
    (config, orchestrator) -> Executor."""
    from .. import plugins

    return plugins.load("executors", "local" if config is None else config.kind)(config, orchestrator)


def local_executor(config: Any, orchestrator: UnityMLOpsOrchestrator) -> Executor:
    return LocalExecutor(orchestrator)
