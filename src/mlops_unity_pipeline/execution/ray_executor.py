"""Jobs as Ray tasks on an existing cluster (a local one, or KubeRay's): `pip install ray`, `executor: {kind: ray,
address: HOST:PORT}`.

Each job is one task that declares its CPUs; it runs the same pipeline on a worker, with the scheduler's run key,
against the same stores: the shared database (registry index, ledger) and artifact store (models, checkpoints,
reports) when configured, so the nodes need not share a filesystem; else the workspace the nodes share. When a
worker node is lost, Ray retries the task (`max_retries`) on another node, where the run continues from its last
checkpoint and registers at most once — the run key guarantees it, not Ray. A worker with its own scratch
workspace (`UNITY_MLOPS_WORKER_WORKSPACE`, a pod's emptyDir) restores the run from the artifact store first.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..specs import TrainingJob, TrainingResult


def run_on_worker(job: dict[str, Any], run_key: str, workspace: str, registry: str | None,
                  database: str | None = None, artifacts: str | None = None) -> dict[str, Any]:
    """What a Ray worker runs (plain data in and out: nothing but the job and where the stores are crosses the
    wire; credentials come from the worker's own environment)."""
    from .. import settings
    from ..pipeline.orchestrator import UnityMLOpsOrchestrator

    orchestrator = UnityMLOpsOrchestrator(settings.worker_workspace() or workspace, registry=registry,
                                          show_progress=False, database=database, artifacts=artifacts)
    result = orchestrator.execute_training_job_sync(TrainingJob.model_validate(job), run_key=run_key)
    return result.model_dump(mode="json")


class RayExecutor:
    name = "ray"

    def __init__(self, address: str | None, workspace: Path, registry: str | None = None, *, num_cpus: float = 1.0,
                 max_retries: int = 3, database: str | None = None, artifacts: str | None = None) -> None:
        try:
            import ray
        except ImportError:
            raise UserError("executor 'ray' needs Ray: pip install 'ray==2.60.0'") from None
        self.ray = ray
        self.address, self.workspace, self.registry = address, str(workspace), registry
        self.num_cpus, self.max_retries = num_cpus, max_retries
        self.database, self.artifacts = database, artifacts
        self._task: Any = None

    def _remote(self, gpus: int = 0) -> Any:
        if self._task is None:
            if not self.ray.is_initialized():
                try:
                    self.ray.init(address=self.address or "auto", logging_level="WARNING", log_to_driver=False)
                except ConnectionError as exc:
                    raise UserError(f"cannot reach the Ray cluster at {self.address or 'auto'}: {exc}",
                                    hint="start one (`ray start --head`) or fix executor.address") from None
            self._task = self.ray.remote(run_on_worker)
        # Ray places a job that needs GPUs on a node that has them and sets its CUDA_VISIBLE_DEVICES
        return self._task.options(num_cpus=self.num_cpus, num_gpus=gpus, max_retries=self.max_retries,
                                  retry_exceptions=False)

    async def run(self, job: TrainingJob, run_key: str) -> TrainingResult:
        ref = self._remote(job.resources.gpus).remote(job.model_dump(mode="json"), run_key, self.workspace,
                                                      self.registry, self.database, self.artifacts)
        try:
            data = await asyncio.wrap_future(ref.future())
        except asyncio.CancelledError:  # shutdown: stop the task; the run continues from its checkpoint next time
            self.ray.cancel(ref)
            return TrainingResult(job_id=job.job_id, status="cancelled", failed_stage="train",
                                  error="stopped by shutdown; resumes on restart")
        except self.ray.exceptions.RayError as exc:  # retries exhausted, the cluster gone: the scheduler retries
            return TrainingResult(job_id=job.job_id, status="failed", failed_stage="executor",
                                  error=f"{type(exc).__name__}: {str(exc)[:500]}")
        return TrainingResult.model_validate(data)

    def close(self) -> None:
        if self.ray.is_initialized():
            self.ray.shutdown()


def ray_executor(config: Any, orchestrator: Any) -> RayExecutor:
    """The `ray` executor of a config (`executor: {kind: ray, address, num_cpus, max_retries}`): its jobs use the
    orchestrator's workspace, registry, database and artifact store."""
    from .. import settings

    paths = orchestrator.paths
    default = paths.registry == str(paths.workspace / settings.REGISTRY_DIRNAME)  # then: the worker's workspace's
    return RayExecutor(config.address, orchestrator.workspace, None if default else paths.registry,
                       num_cpus=config.num_cpus, max_retries=config.max_retries, database=paths.database,
                       artifacts=paths.artifacts)
