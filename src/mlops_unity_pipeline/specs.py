"""The user-facing specifications: what to train (`UnityAssetSpec`), how (`RLTrainingConfig`), and when
(`TrainingJob`, `TrainingSchedule`), plus the outcome (`TrainingResult`).

Field names follow the setup guides, so their code runs as written. Every model rejects unknown fields and
validates values up front, because a typo found after an hour of training loses that hour.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import SpecError

ALGORITHMS = ("PPO", "SAC")
TRAINERS = ("mlagents", "fast")

_CSHARP_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_CSHARP_KEYWORDS = frozenset(
    "abstract as base bool break byte case catch char checked class const continue decimal default delegate do "
    "double else enum event explicit extern false finally fixed float for foreach goto if implicit in int "
    "interface internal is lock long namespace new null object operator out override params private protected "
    "public readonly ref return sbyte sealed short sizeof stackalloc static string struct switch this throw true "
    "try typeof uint ulong unchecked unsafe ushort using virtual void volatile while".split()
)


def _check_identifier(value: str, what: str) -> str:
    if not _CSHARP_IDENT.match(value) or value in _CSHARP_KEYWORDS:
        raise ValueError(
            f"{what} {value!r} must be a C# identifier (letters, digits, underscore; not starting with a digit; "
            f"no spaces, dots or path separators), because the Agent class and files are named after it; "
            f"for example {re.sub(r'[^A-Za-z0-9_]', '', value.title()) or 'MyAgent'!r}"
        )
    return value


def _check_safe_id(value: str, what: str) -> str:
    if not _SAFE_ID.match(value) or len(value) > 100:
        raise ValueError(
            f"{what} {value!r} may only contain letters, digits, '.', '_' and '-' (at most 100, not starting "
            f"with '.' or '-'), because directories are named after it"
        )
    return value


class _Model(BaseModel):
    # NaN and infinities are refused in every float field: they pass range checks and fail an hour later
    model_config = ConfigDict(extra="forbid", validate_assignment=True, str_strip_whitespace=True,
                              allow_inf_nan=False)


LIMITS = {"max_steps": 10**10, "num_envs": 64, "seed": 2**31 - 1, "bc_updates": 10**6, "agents_per_env": 1024,
          "summary_freq": 10**9, "checkpoint_interval": 10**10, "keep_checkpoints": 1000, "time_horizon": 10**6}
MAX_SECONDS = 366 * 86400.0  # a timeout, deadline or backoff beyond a year is a typo

class UnityAssetSpec(_Model):
    """A plain description of one agent. `observation_space`/`action_space` are optional: the behavior's
    archetype fills in what the task needs (README "The behaviors")."""

    asset_id: str
    name: str
    asset_type: str = "behavior"
    description: str = ""
    observation_space: dict[str, int] | None = None
    action_space: dict[str, Any] | None = None
    behavior_name: str | None = Field(default=None, description="ML-Agents behavior name; defaults to `name`.")
    archetype: str | None = Field(default=None, description="Override the archetype chosen from the text.")
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("asset_id")
    @classmethod
    def _asset_id(cls, v: str) -> str:
        return _check_safe_id(v, "asset_id")

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return _check_identifier(v, "name")

    @field_validator("behavior_name")
    @classmethod
    def _behavior_name(cls, v: str | None) -> str | None:
        return None if v is None else _check_identifier(v, "behavior_name")

    @field_validator("observation_space")
    @classmethod
    def _obs(cls, v: dict[str, int] | None) -> dict[str, int] | None:
        if v is None:
            return v
        for key, size in v.items():
            if size <= 0:
                raise ValueError(f"observation_space[{key!r}] must be a positive size, got {size}")
        return v

    @field_validator("action_space")
    @classmethod
    def _act(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        if v is None:
            return v
        kind = v.get("type")
        if kind not in ("continuous", "discrete"):
            raise ValueError(f"action_space.type must be 'continuous' or 'discrete', got {kind!r}")
        unknown = set(v) - {"type", "size", "branches"}
        if unknown:
            raise ValueError(f"action_space has unknown keys {sorted(unknown)}; allowed: type, size, branches")
        if "size" in v and (not isinstance(v["size"], int) or v["size"] <= 0):
            raise ValueError(f"action_space.size must be a positive integer, got {v['size']!r}")
        if "branches" in v:
            if kind != "discrete":
                raise ValueError("action_space.branches is only valid with type 'discrete'")
            b = v["branches"]
            if not isinstance(b, list) or not b or any(not isinstance(x, int) or x <= 0 for x in b):
                raise ValueError(f"action_space.branches must be a list of positive integers, got {b!r}")
        return v

    @model_validator(mode="after")
    def _behavior(self) -> UnityAssetSpec:
        """The behavior the spec describes must exist: checked where the spec is written, not an hour later."""
        from .behavior.definition import BehaviorError, build_behavior

        try:
            build_behavior(behavior_name=self.effective_behavior_name, asset_type=self.asset_type,
                           description=self.description, observation_space=self.observation_space,
                           action_space=self.action_space, archetype=self.archetype)
        except BehaviorError as exc:
            raise ValueError(str(exc)) from None
        return self

    @property
    def effective_behavior_name(self) -> str:
        return self.behavior_name or self.name


class RLTrainingConfig(_Model):
    """How to train. Unset hyperparameters come from the behavior archetype's tuned defaults."""

    algorithm: str = "PPO"
    max_steps: int = 500_000
    num_envs: int = 1
    time_scale: float = 20.0
    seed: int = 42
    agents_per_env: int | None = Field(
        default=None, description="Agents simulated per headless player; default per archetype."
    )
    trainer: Literal["mlagents", "fast"] = Field(
        default="mlagents", description="mlagents: the real ML-Agents trainer; fast: in-process PPO on the simulator.")
    use_offline_rl: bool = False
    demonstrations_path: str | None = None
    offline_mode: Literal["hybrid", "offline_only"] = Field(
        default="hybrid", description="With use_offline_rl: behavior cloning only, or BC then online fine-tuning.")
    bc_updates: int = Field(default=100, description="Offline behavior-cloning updates (epochs over the demos).")
    hyperparameters: dict[str, Any] = Field(default_factory=dict)
    network_settings: dict[str, Any] = Field(default_factory=dict)
    summary_freq: int | None = None
    checkpoint_interval: int | None = None
    keep_checkpoints: int | None = None
    time_horizon: int | None = None
    reward_signals: dict[str, dict[str, Any]] | None = Field(
        default=None, description="ML-Agents reward_signals block; default: extrinsic, gamma 0.99."
    )
    behavioral_cloning: dict[str, Any] | None = None
    environment_parameters: dict[str, Any] | None = Field(
        default=None, description="ML-Agents environment_parameters (samplers, curriculum)."
    )
    curriculum_behavior: str | None = Field(
        default=None, description="The behavior name in the curricula's completion criteria that means this job's "
                                  "behavior (needed when they name several; set by from_mlagents_yaml).")
    trainer_settings: dict[str, Any] = Field(
        default_factory=dict, description="Other ML-Agents behavior keys: init_path, threaded, self_play, ..."
    )

    @field_validator("algorithm")
    @classmethod
    def _algorithm(cls, v: str) -> str:
        up = v.upper()
        if up not in ALGORITHMS:
            raise ValueError(f"algorithm {v!r} is not supported; choose one of {', '.join(ALGORITHMS)}")
        return up

    @field_validator("max_steps", "num_envs", "bc_updates", "agents_per_env", "summary_freq", "checkpoint_interval",
                     "keep_checkpoints", "time_horizon")
    @classmethod
    def _positive(cls, v: int | None, info: Any) -> int | None:
        limit = LIMITS[info.field_name]
        if v is not None and not 0 < v <= limit:
            raise ValueError(f"{info.field_name} must be > 0 and at most {limit:,}, got {v:,}")
        return v

    @field_validator("seed")
    @classmethod
    def _seed(cls, v: int) -> int:
        if not 0 <= v <= LIMITS["seed"]:
            raise ValueError(f"seed must be between 0 and {LIMITS['seed']:,} (a 32-bit seed), got {v:,}")
        return v

    @field_validator("time_scale")
    @classmethod
    def _time_scale(cls, v: float) -> float:
        if not 0 < v <= 1000:
            raise ValueError(f"time_scale must be > 0 and at most 1000, got {v}")
        return v

    @field_validator("trainer_settings")
    @classmethod
    def _trainer_settings(cls, v: dict[str, Any]) -> dict[str, Any]:
        allowed = ("init_path", "even_checkpoints", "threaded", "self_play")
        unknown = sorted(set(v) - set(allowed))
        if unknown:
            raise ValueError(f"trainer_settings has unknown keys {unknown}; allowed: {', '.join(allowed)}")
        return v

    @classmethod
    def from_mlagents_yaml(cls, path: str | Path, behavior: str | None = None, **overrides: Any) -> RLTrainingConfig:
        """Import one behavior of an existing ML-Agents trainer config (keeps its tuned settings)."""
        from .trainer.config import curriculum_behaviors
        from .trainer.mlagents_yaml import import_mlagents_yaml

        fields = import_mlagents_yaml(path, behavior)
        named = curriculum_behaviors(fields.get("environment_parameters"))
        chosen = fields.pop("_behavior", None) or behavior
        if len(named) > 1 and chosen in named:  # the user named the behavior: its lessons are this job's
            fields["curriculum_behavior"] = chosen
        fields.update(overrides)
        return parse_model(cls, fields, str(path))

    @model_validator(mode="after")
    def _fast_supports_it(self) -> RLTrainingConfig:
        """Honoured or refused before any work starts: trainer 'fast' never ignores an option silently."""
        if self.trainer == "fast":
            from .fast.options import unsupported_in_config

            problems = unsupported_in_config(self)
            if problems:
                raise ValueError("trainer 'fast' does not support " + ", ".join(problems) +
                                 "; use trainer 'mlagents' (the default) for them")
        return self

    @model_validator(mode="after")
    def _one_curriculum_behavior(self) -> RLTrainingConfig:
        from .trainer.config import curriculum_behaviors

        names = curriculum_behaviors(self.environment_parameters)
        if len(names) > 1 and self.curriculum_behavior not in names:
            raise ValueError(f"environment_parameters: the curricula's completion criteria name {len(names)} behaviors "
                             f"({', '.join(names)}) and a job trains one; say which is this job's with "
                             f"curriculum_behavior: {names[0]} (or import with behavior=...)")
        return self

    @model_validator(mode="after")
    def _offline(self) -> RLTrainingConfig:
        if self.use_offline_rl and not self.demonstrations_path:
            raise ValueError(
                "use_offline_rl=True needs demonstrations_path (a .demo file or a directory of them)"
            )
        return self


class VertexSettings(_Model):
    """Register versions in Vertex AI too (extra `vertex`). In a job file or scheduler config as `vertex:`; from the
    environment as the setup guide writes it: `GOOGLE_CLOUD_PROJECT` (or `UNITY_MLOPS_VERTEX_PROJECT`),
    `VERTEX_REGION`, `UNITY_MLOPS_VERTEX_BUCKET`; `UNITY_MLOPS_VERTEX=off` keeps models local regardless."""

    project: str = Field(min_length=1, max_length=200)
    region: str = Field(default="us-central1", max_length=100)
    bucket: str | None = Field(default=None, description="gs://bucket (default: <project>-mlops-unity-models)")
    serving_image: str | None = Field(default=None, description="An ONNX-capable serving container you host "
                                                                "(default: none; models are for Unity clients).")

    @classmethod
    def from_environment(cls) -> VertexSettings | None:
        from . import settings

        found = settings.vertex_env()
        return cls(**found) if found else None


class TrainingJob(_Model):
    """One run of the pipeline for one asset."""

    job_id: str
    asset_spec: UnityAssetSpec
    rl_config: RLTrainingConfig = Field(default_factory=RLTrainingConfig)
    timeout_s: float | None = Field(default=None, gt=0, le=MAX_SECONDS,
                                    description="Stop training (with a checkpoint) after this.")
    vertex: VertexSettings | None = Field(default=None, description="Also register the version in Vertex AI.")
    registry: str | None = Field(default=None, min_length=1, max_length=2000,
                                 description="Registry URI for this job (a path, file:, sqlite:, vertex://...; "
                                             "default: the workspace's).")

    @field_validator("job_id")
    @classmethod
    def _job_id(cls, v: str) -> str:
        return _check_safe_id(v, "job_id")


class TrainingSchedule(_Model):
    """Retrain assets on a cron schedule."""

    schedule_id: str
    cron_expression: str
    asset_specs: list[UnityAssetSpec]
    rl_config: RLTrainingConfig = Field(default_factory=RLTrainingConfig)
    enabled: bool = True
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
    retry_backoff_s: float = 60.0

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
        from .scheduler.triggers import CronTrigger

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


def format_validation_error(err: ValidationError, source: str | None = None) -> str:
    """One line per problem, naming the field path, so the user knows exactly what to change."""
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown field (check the spelling; see `unity-mlops train --help`)"
        elif e["type"] == "missing":
            msg = "required field is missing"
        lines.append(f"  {loc}: {msg}")
    where = f" in {source}" if source else ""
    return f"invalid {err.title}{where}:\n" + "\n".join(lines)


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's spec forbids duplicate keys; PyYAML keeps the last one silently. Here it is an error."""


def _mapping_without_duplicates(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates)


def _unique_json(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    dup = next((k for k in keys if keys.count(k) > 1), None)
    if dup is not None:
        raise ValueError(f"duplicate key {dup!r}")
    return dict(pairs)


def load_document(path: str | Path) -> dict[str, Any]:
    """Read a YAML or JSON mapping, with errors that name the file."""
    p = Path(path)
    if not p.is_file():
        raise SpecError(f"file not found: {p}", hint="pass the path of a YAML or JSON file")
    try:
        text = p.read_text(encoding="utf-8")
        data = json.loads(text, object_pairs_hook=_unique_json) if p.suffix.lower() == ".json" else \
            yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except (yaml.YAMLError, json.JSONDecodeError, UnicodeDecodeError, ValueError) as exc:
        raise SpecError(f"could not parse {p}: {exc}") from None
    if not isinstance(data, dict):
        raise SpecError(f"{p} must contain a mapping at the top level, got {type(data).__name__}")
    return data


def parse_model(model: type[_Model], data: dict[str, Any], source: str | None = None) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise SpecError(format_validation_error(exc, source)) from None


def load_job(path: str | Path) -> TrainingJob:
    """Load a `TrainingJob` from YAML/JSON (keys as in the Python API)."""
    return parse_model(TrainingJob, load_document(path), str(path))


def load_asset_spec(path: str | Path) -> UnityAssetSpec:
    data = load_document(path)
    if "asset_spec" in data:  # a job file is fine too
        data = data["asset_spec"]
    return parse_model(UnityAssetSpec, data, str(path))
