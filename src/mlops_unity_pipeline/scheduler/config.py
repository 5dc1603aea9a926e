"""The scheduler's configuration file (`unity-mlops schedule run CONFIG.yaml`, `k8s render CONFIG.yaml`).

Secrets are never written in it: a webhook's secret is read from the environment variable named by
`secret_env` (a Kubernetes Secret mounted as environment in the rendered manifests).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from .. import settings
from ..errors import SpecError
from ..specs import TrainingSchedule, VertexSettings, _Model, load_document, parse_model
from ..webhooks.outbox import DEFAULT_RETRY_SCHEDULE_S, Endpoint


class WebhookConfig(_Model):
    url: str | None = Field(default=None, description="The receiver's http(s) URL (or url_env).")
    url_env: str | None = Field(default=None, description="Environment variable holding the URL, for a URL that "
                                                            "carries credentials (`k8s render` moves such URLs there).")
    name: str | None = Field(default=None, description="What the outbox stores to refer to this endpoint "
                                                         "(default: the URL without credentials and query).")
    secret_env: str | None = Field(default=None, description="Environment variable holding the whsec_ secret.")
    events: list[str] = Field(default_factory=list, description="Event types to send; empty: all.")

    @model_validator(mode="after")
    def _one_url(self) -> WebhookConfig:
        if (self.url is None) == (self.url_env is None):
            raise ValueError("give the webhook's url or url_env (the variable that holds it), exactly one")
        return self

    def endpoint(self) -> Endpoint:
        secret = None
        if self.secret_env:
            secret = settings.secret(self.secret_env)
            if not secret:
                raise SpecError(f"webhook secret variable {self.secret_env} is not set",
                                hint=f"export {self.secret_env}=whsec_... (or remove secret_env)")
        url = self.url or settings.secret(self.url_env or "")
        if not url:
            raise SpecError(f"webhook URL variable {self.url_env} is not set",
                            hint=f"export {self.url_env}=https://... (in Kubernetes: its Secret's key)")
        return Endpoint(url, secret, tuple(self.events), name=self.name)


class HealthConfig(_Model):
    host: str = "127.0.0.1"
    """The health server's address."""
    port: int | None = None
    """The health server's port (/healthz, /readyz, /metrics); none: no server."""


class Toleration(_Model):
    """A Kubernetes toleration (GPU nodes are often tainted so that only pods that ask may land there)."""

    key: str | None = Field(default=None, max_length=253)
    """The taint's key."""
    operator: Literal["Exists", "Equal"] = "Equal"
    """Exists (any value) or Equal."""
    value: str | None = Field(default=None, max_length=63)
    """The taint's value (with Equal)."""
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    """The taint's effect to tolerate (none: all)."""
    toleration_seconds: int | None = Field(default=None, ge=0)
    """How long a NoExecute taint is tolerated."""

    def manifest(self) -> dict[str, Any]:
        names = {"toleration_seconds": "tolerationSeconds"}
        return {names.get(k, k): v for k, v in self.model_dump().items() if v is not None}


class KubernetesConfig(_Model):
    namespace: str = "unity-mlops"
    """The namespace of every rendered object."""
    image: str = "unity-mlops:latest"
    """The product's image (built with `docker build`, see Deployment)."""
    storage: str = "20Gi"
    """The PersistentVolumeClaim's size (runs, registry, state)."""
    storage_class: str | None = None
    """Its storage class (default: the cluster's)."""
    cpu: str = "2"
    """CPU request and limit of the pods that train."""
    memory: str = "8Gi"
    """Memory request and limit of the pods that train."""
    backoff_limit: int = 2
    """A CronJob's pod retries (each resumes the same run)."""
    active_deadline_s: int = 6 * 3600
    """A CronJob run's time limit when its schedule sets no job_timeout_s."""
    kubernetes_version: str = "1.30.0"
    """The Kubernetes version the manifests are validated against."""
    # --mode cluster: the KubeRay RayCluster that runs the jobs
    ray_version: str = "2.60.0"
    """--mode cluster: the RayCluster's Ray version (the image must have it)."""
    ray_workers: int = Field(default=2, ge=0, le=1000)
    """--mode cluster: CPU workers to start with."""
    ray_min_workers: int = Field(default=1, ge=0, le=1000)
    """--mode cluster: the autoscaler's fewest CPU workers."""
    ray_max_workers: int = Field(default=8, ge=0, le=1000)
    """--mode cluster: the autoscaler's most CPU workers."""
    ray_worker_cpu: int = Field(default=2, ge=1, le=512)
    """--mode cluster: CPUs of each worker."""
    ray_worker_memory: str = "8Gi"
    """--mode cluster: memory of each worker."""
    ray_job_cpus: int = Field(default=1, ge=1, le=512, description="CPUs each job declares (jobs per worker = "
                                                                     "ray_worker_cpu / ray_job_cpus)")
    # GPUs: the pods that train get `gpu_resource` limits, and land on GPU nodes through these three
    gpus: int | None = Field(default=None, ge=0, le=64, description="GPUs of the scheduler pod in --mode deployment "
                                                                     "(default: the most any schedule needs).")
    gpu_resource: str = Field(default="nvidia.com/gpu", pattern=r"^[a-z0-9.-]+/[a-z0-9.-]+$",
                              description="The device plugin's extended resource.")
    gpu_node_selector: dict[str, str] = Field(default_factory=dict, description="nodeSelector of pods with GPUs.")
    gpu_tolerations: list[Toleration] = Field(default_factory=list, description="Tolerations of pods with GPUs.")
    gpu_runtime_class: str | None = Field(default=None, max_length=253,
                                          description="runtimeClassName of pods with GPUs (e.g. nvidia).")
    ray_gpu_workers: int = Field(default=0, ge=0, le=1000, description="--mode cluster: GPU workers to start with.")
    ray_max_gpu_workers: int = Field(default=0, ge=0, le=1000, description="--mode cluster: the autoscaler's most.")
    ray_gpus_per_worker: int = Field(default=1, ge=1, le=64, description="--mode cluster: GPUs of each GPU worker.")


class ExecutorConfig(_Model):
    kind: str = "local"
    """local: jobs run in the scheduler's process; ray: a Ray task per job."""
    address: str | None = Field(default=None, max_length=500, description="Ray cluster address (HOST:PORT).")
    num_cpus: float = Field(default=1.0, gt=0, le=1024, description="CPUs each job declares to Ray.")
    max_retries: int = Field(default=3, ge=0, le=100, description="Ray's retries of a job lost with its node.")

    @field_validator("kind")
    @classmethod
    def _installed(cls, v: str) -> str:
        from ..plugins import names

        if v.lower() not in names("executors"):
            raise ValueError(f"executor {v!r} is not installed; installed: {', '.join(names('executors'))}")
        return v.lower()


class SchedulerConfig(_Model):
    profile: str = "local"
    """A label for the deployment (local, staging, production)."""
    workspace: str = "runs"
    """The workspace (relative to where the scheduler runs)."""
    state_dir: str | None = None
    """The scheduler's state, webhook outbox and control-plane log (default <workspace>/_state)."""
    max_concurrent_jobs: int = Field(default_factory=settings.default_concurrent_jobs,
                                     description="Jobs running at once (default: one per two CPUs, at least one).")
    poll_interval_s: float = 5.0
    """How often the scheduler looks for due slots."""
    grace_period_s: float = 120.0
    """On SIGTERM: how long running trainings get to checkpoint."""
    health: HealthConfig = Field(default_factory=HealthConfig)
    """The health server."""
    webhooks: list[WebhookConfig] = Field(default_factory=list)
    """Endpoints that receive lifecycle events."""
    webhook_retry_schedule_s: list[float] = Field(
        default_factory=lambda: list(DEFAULT_RETRY_SCHEDULE_S),
        description="Delays before each webhook retry (default: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h); a "
                    "delivery is dead-lettered after the last one fails.")
    kubernetes: KubernetesConfig = Field(default_factory=KubernetesConfig)
    """What `k8s render` writes."""
    vertex: VertexSettings | None = Field(default=None, description="Register every version in Vertex AI too.")
    executor: ExecutorConfig = Field(default_factory=ExecutorConfig, description="Where jobs run: local or ray.")
    registry: str | None = Field(default=None, min_length=1, max_length=2000,
                                 description="Registry URI (a path, file:, sqlite:, vertex://...; default: "
                                             "<workspace>/_registry).")
    database: str | None = Field(default=None, min_length=1, max_length=2000,
                                 description="Shared database URL (postgresql://user@host:port/db) for the registry "
                                             "index, scheduler state and webhook outbox; default: SQLite files, or "
                                             "UNITY_MLOPS_DATABASE_URL.")
    artifacts: str | None = Field(default=None, min_length=1, max_length=2000,
                                  description="Shared artifact store (gs://bucket/prefix, or a shared directory) for "
                                              "models, checkpoints and reports; default: the local workspace only, "
                                              "or UNITY_MLOPS_ARTIFACTS.")
    schedules: list[TrainingSchedule] = Field(default_factory=list)
    """The schedules."""

    @field_validator("schedules")
    @classmethod
    def _unique(cls, v: list[TrainingSchedule]) -> list[TrainingSchedule]:
        ids = [s.schedule_id for s in v]
        if len(set(ids)) != len(ids):
            raise ValueError(f"duplicate schedule_id values: {ids}")
        return v

    @field_validator("webhook_retry_schedule_s")
    @classmethod
    def _retry_schedule(cls, v: list[float]) -> list[float]:
        if not 1 <= len(v) <= 50 or not all(math.isfinite(d) and 0 <= d <= 7 * 86400 for d in v):
            raise ValueError("webhook_retry_schedule_s must list 1 to 50 delays, each finite and between 0 and "
                             f"604800 seconds, got {v}")
        return v

    @field_validator("max_concurrent_jobs")
    @classmethod
    def _concurrency(cls, v: int) -> int:
        if v < 1:
            raise ValueError(f"max_concurrent_jobs must be >= 1, got {v}")
        return v

    def endpoints(self) -> list[Endpoint]:
        return [w.endpoint() for w in self.webhooks]

    def outbox(self, state_dir: Path):
        """The webhook outbox of this configuration (plus `WEBHOOK_URL` from the environment)."""
        from ..webhooks.outbox import WebhookOutbox

        return WebhookOutbox.from_environment(state_dir / settings.OUTBOX_FILENAME, self.endpoints(),
                                              tuple(self.webhook_retry_schedule_s), self.database_url())

    def database_url(self) -> str | None:
        """`database:` here, else `UNITY_MLOPS_DATABASE_URL`, else none (SQLite files in the state directory)."""
        return settings.Paths.resolve(self.workspace, database=self.database).database

    def resolved_state_dir(self, base: Path | None = None) -> Path:
        root = Path(self.workspace) if base is None else base / self.workspace
        return Path(self.state_dir) if self.state_dir else root / settings.STATE_DIRNAME


def load_scheduler_config(path: str | Path) -> SchedulerConfig:
    data: dict[str, Any] = load_document(path)
    return parse_model(SchedulerConfig, data, str(path))
