"""When and where: `TrainingJob`, `TrainingSchedule`, `VertexSettings`, and the outcome `TrainingResult`."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from ..errors import SpecError
from .asset import UnityAssetSpec
from .base import MAX_SECONDS, _check_safe_id, _Model
from .training import RLTrainingConfig


class VertexSettings(_Model):
    """Register versions in Vertex AI too (extra `vertex`). In a job file or scheduler config as `vertex:`; from the
    environment as the setup guide writes it: `GOOGLE_CLOUD_PROJECT` (or `UNITY_MLOPS_VERTEX_PROJECT`),
    `VERTEX_REGION`, `UNITY_MLOPS_VERTEX_BUCKET`; `UNITY_MLOPS_VERTEX=off` keeps models local regardless."""

    project: str = Field(min_length=1, max_length=200)
    """The Google Cloud project."""
    region: str = Field(default="us-central1", max_length=100)
    """Vertex AI's region."""
    bucket: str | None = Field(default=None, description="gs://bucket (default: <project>-mlops-unity-models)")
    serving_image: str | None = Field(default=None, description="An ONNX-capable serving container you host "
                                                                "(default: none; models are for Unity clients).")

    @classmethod
    def from_environment(cls) -> VertexSettings | None:
        from .. import settings

        found = settings.vertex_env()
        return cls(**found) if found else None


# ML-Agents' smallest image side per visual encoder (`ModelUtils.MIN_RESOLUTION_FOR_ENCODER`)
VISUAL_ENCODER_MIN = {"simple": 20, "nature_cnn": 36, "resnet": 15, "match3": 5, "fully_connected": 1}


class EvaluationSettings(_Model):
    """How the evaluate stage (and, for the versions it registers, the promotion gates) judge a model."""

    environment: Literal["auto", "simulator", "build"] = Field(
        default="auto", description="auto: the built-in simulator for the built-in behaviours' players, the build "
                                    "itself for a Unity build; build: always play the built executable.")
    episodes: int | None = Field(default=None, ge=1, le=100_000,
                                 description="Held-out episodes (default: the orchestrator's, 500).")
    envs: int = Field(default=2, ge=1, le=16, description="Environment processes at once on a build.")
    success_stat: str | None = Field(
        default="Episode/Success", min_length=1, max_length=200,
        description="The statistic (StatsRecorder key) a build records when an episode ends: 1 success, 0 not. "
                    "None: no notion of success; reward-based gates only.")
    collision_stat: str | None = Field(default="Episode/Collision", min_length=1, max_length=200,
                                       description="The statistic a build records for a collision (1) or not (0).")
    timeout_s: float = Field(default=60.0, gt=0, le=3600,
                             description="How long a build may take to answer one step (ML-Agents' timeout_wait).")


class Resources(_Model):
    """What a job needs of the machine it runs on: GPUs (Ray schedules it on a node that has them, Kubernetes
    requests `nvidia.com/gpu`, the local executor never runs more GPU jobs at once than there are GPUs) and the torch
    device training uses."""

    gpus: int = Field(default=0, ge=0, le=64, description="GPUs the job needs.")
    device: str = Field(default="auto", description="auto (CUDA where there is one, else the CPU), cpu, cuda or "
                                                     "cuda:N.")

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        from ..devices import DEVICE

        if not DEVICE.match(v):
            raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {v!r}")
        return v

    @model_validator(mode="after")
    def _cuda_is_there(self) -> Resources:
        """A job that asks for CUDA without asking for a GPU runs where it is written: there must be one. (With
        `gpus`, it is for a GPU node of a cluster, checked where it is placed.)"""
        from ..devices import gpu_count

        if self.device.startswith("cuda") and not self.gpus and not gpu_count():
            raise ValueError(f"device {self.device!r}, but this machine has no CUDA device (no NVIDIA driver lists a "
                             "GPU); use device: auto or cpu, or gpus: N to run it on a GPU node")
        return self


class TrainingJob(_Model):
    """One run of the pipeline for one asset."""

    job_id: str
    """The job's name: its folder in the workspace and part of its run key."""
    asset_spec: UnityAssetSpec
    """What to train."""
    rl_config: RLTrainingConfig = Field(default_factory=RLTrainingConfig)
    """How to train it."""
    timeout_s: float | None = Field(default=None, gt=0, le=MAX_SECONDS,
                                    description="Stop training (with a checkpoint) after this.")
    vertex: VertexSettings | None = Field(default=None, description="Also register the version in Vertex AI.")
    registry: str | None = Field(default=None, min_length=1, max_length=2000,
                                 description="Registry URI for this job (a path, file:, sqlite:, vertex://...; "
                                             "default: the workspace's).")
    evaluation: EvaluationSettings = Field(default_factory=EvaluationSettings,
                                           description="Where and how the model is judged.")
    resources: Resources = Field(default_factory=Resources, description="GPUs and the torch device.")

    @field_validator("job_id")
    @classmethod
    def _job_id(cls, v: str) -> str:
        return _check_safe_id(v, "job_id")

    @model_validator(mode="after")
    def _trainable(self) -> TrainingJob:
        """Refused where the job is written: a camera smaller than ML-Agents' visual encoder takes (it fails at
        its first update otherwise), and what trainer 'fast' does not implement of the behaviour itself."""
        from ..behavior.definition import build_behavior

        spec = self.asset_spec
        d = build_behavior(behavior_name=spec.effective_behavior_name, asset_type=spec.asset_type,
                           description=spec.description, observation_space=spec.observation_space,
                           action_space=spec.action_space, archetype=spec.archetype)
        encoder = str(self.rl_config.network_settings.get("vis_encode_type", "simple"))
        smallest = VISUAL_ENCODER_MIN.get(encoder, 1)
        if d.camera and d.camera < smallest:
            raise ValueError(f"a {d.camera}x{d.camera} camera is too small for ML-Agents' {encoder!r} visual "
                             f"encoder, which needs at least {smallest}x{smallest}; use a larger camera or "
                             f"network_settings.vis_encode_type: fully_connected")
        if self.rl_config.trainer == "fast":
            from ..fast.options import unsupported_behavior

            problems = unsupported_behavior(d)
            if problems:
                raise ValueError("trainer 'fast' does not implement " + ", ".join(problems) +
                                 "; use trainer 'mlagents' (the default) for them")
        return self


class TrainingSchedule(_Model):
    """Retrain assets on a cron schedule."""

    schedule_id: str
    """The schedule's name (its runs are keyed by schedule, slot and asset)."""
    cron_expression: str
    """When: 5 cron fields (6 with seconds), read in `timezone`."""
    asset_specs: list[UnityAssetSpec]
    """What each run trains: one job per asset."""
    rl_config: RLTrainingConfig = Field(default_factory=RLTrainingConfig)
    """How to train it."""
    enabled: bool = True
    """A disabled schedule fires nothing (its CronJob is suspended)."""
    timezone: str = Field(default="UTC", description="IANA time zone the cron expression is read in.")
    missed_run_policy: Literal["skip", "latest", "all"] = Field(
        default="latest", description="After downtime: run nothing missed, only the latest slot, or all (bounded)."
    )
    starting_deadline_s: float | None = Field(
        default=None, description="A slot that cannot start within this many seconds is missed (None: no limit)."
    )
    max_catchup_runs: int = Field(default=10, description="Bound for missed_run_policy 'all'.")
    overlap_policy: Literal["forbid", "queue", "allow"] = Field(
        default="forbid", description="When a run of this schedule is still going: skip, wait, or run both."
    )
    jitter_s: float = Field(default=0.0, description="Deterministic delay in [0, jitter_s) per slot.")
    job_timeout_s: float | None = Field(default=None, description="Stop a run's training after this long.")
    max_retries: int = 2
    """Retries of a failed run, with exponential backoff."""
    retry_backoff_s: float = 60.0
    """The first retry's delay; it doubles each time."""
    evaluation: EvaluationSettings = Field(default_factory=EvaluationSettings,
                                           description="Where and how each run's model is judged.")
    resources: Resources = Field(default_factory=Resources, description="GPUs and the torch device of each run.")

    @field_validator("schedule_id")
    @classmethod
    def _schedule_id(cls, v: str) -> str:
        return _check_safe_id(v, "schedule_id")

    @field_validator("cron_expression")
    @classmethod
    def _cron(cls, v: str) -> str:
        fields = v.split()
        if not (v.startswith("@") or len(fields) in (5, 6)):
            raise ValueError(f"cron_expression {v!r} must have 5 fields (minute hour day month weekday)")
        return v

    @model_validator(mode="after")
    def _trigger(self) -> TrainingSchedule:
        """Checked where it is written: anything the scheduler's trigger would reject later is rejected here."""
        from ..scheduler.triggers import CronTrigger

        try:
            CronTrigger(self.cron_expression, self.timezone)
        except SpecError as exc:
            raise ValueError(exc.message + (f" ({exc.hint})" if exc.hint else "")) from None
        return self

    @field_validator("starting_deadline_s", "job_timeout_s")
    @classmethod
    def _positive_seconds(cls, v: float | None, info: Any) -> float | None:
        if v is not None and not 0 < v <= MAX_SECONDS:
            raise ValueError(f"{info.field_name} must be > 0 and at most {MAX_SECONDS:.0f} seconds, got {v}")
        return v

    @field_validator("max_catchup_runs")
    @classmethod
    def _catchup(cls, v: int) -> int:
        if not 1 <= v <= 100:
            raise ValueError(f"max_catchup_runs must be between 1 and 100, got {v}")
        return v

    @field_validator("jitter_s", "retry_backoff_s", "max_retries")
    @classmethod
    def _non_negative(cls, v: float, info: Any) -> float:
        limit = 100 if info.field_name == "max_retries" else MAX_SECONDS
        if not 0 <= v <= limit:
            raise ValueError(f"{info.field_name} must be between 0 and {limit:.0f}, got {v}")
        return v

    @field_validator("asset_specs")
    @classmethod
    def _assets(cls, v: list[UnityAssetSpec]) -> list[UnityAssetSpec]:
        if not v:
            raise ValueError("asset_specs must list at least one asset")
        ids = [a.asset_id for a in v]
        if len(set(ids)) != len(ids):
            raise ValueError(f"asset_specs has duplicate asset_id values: {ids}")
        return v


class TrainingResult(_Model):
    """The outcome of a job, for both success and failure."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    job_id: str
    status: Literal["completed", "failed", "cancelled"]
    model_version: str | None = None
    trained_model_path: str | None = None
    model_uri: str | None = Field(default=None, description="file://... or the Vertex AI model resource name@version")
    metrics: dict[str, Any] = Field(default_factory=dict)
    artifacts: dict[str, str] = Field(default_factory=dict)
    failed_stage: str | None = None
    error: str | None = None
    log_tail: str | None = None
    started_at: datetime = Field(default_factory=lambda: datetime.now(timezone.utc))
    finished_at: datetime | None = None

    @property
    def succeeded(self) -> bool:
        return self.status == "completed"
