"""`RLTrainingConfig`: how to train (ML-Agents' trainer settings, validated before any work starts)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from .base import ALGORITHMS, LIMITS, PlainDict, _Model, parse_model


class RLTrainingConfig(_Model):
    """How to train. Unset hyperparameters come from the behavior archetype's tuned defaults."""

    algorithm: str = "PPO"
    """PPO, SAC or POCA (case-insensitive); POCA for agents in groups."""
    max_steps: int = 500_000
    """Steps to train for (all agents together, as ML-Agents counts them)."""
    num_envs: int = 1
    """Player processes the trainer steps at once (`--num-envs`)."""
    time_scale: float = 20.0
    """Unity's time scale while training (engine_settings.time_scale)."""
    seed: int = 42
    """The training seed (`--seed`); held-out evaluation uses other seeds."""
    agents_per_env: int | None = Field(
        default=None, description="Agents simulated per headless player; default per archetype."
    )
    trainer: str = Field(
        default="mlagents", description="mlagents: the real ML-Agents trainer; fast: in-process PPO on the simulator; "
                                        "or an installed trainer plugin (`unity-mlops plugins`).")
    use_offline_rl: bool = False
    """Train from the demonstrations first (`offline_mode`)."""
    demonstrations_path: str | None = None
    """A .demo file or a folder of them (recorded in Unity or with `unity-mlops demos record`)."""
    offline_mode: Literal["hybrid", "offline_only"] = Field(
        default="hybrid", description="With use_offline_rl: behavior cloning only, or BC then online fine-tuning.")
    bc_updates: int = Field(default=100, description="Offline behavior-cloning updates (epochs over the demos).")
    hyperparameters: PlainDict = Field(default_factory=dict)
    """ML-Agents hyperparameters over the archetype's defaults (batch_size, buffer_size, learning_rate, ...)."""
    network_settings: PlainDict = Field(default_factory=dict)
    """ML-Agents network_settings over the archetype's (hidden_units, num_layers, normalize, memory, ...)."""
    summary_freq: int | None = None
    """Steps between summaries (TensorBoard, progress)."""
    checkpoint_interval: int | None = None
    """Steps between checkpoints (a restart resumes from the last one)."""
    keep_checkpoints: int | None = None
    """Checkpoints kept (ML-Agents' keep_checkpoints, default 5)."""
    time_horizon: int | None = None
    """Steps an agent collects before its experience is used (default: derived from the buffer)."""
    reward_signals: dict[str, PlainDict] | None = Field(
        default=None, description="ML-Agents reward_signals block; default: extrinsic, gamma 0.99."
    )
    behavioral_cloning: PlainDict | None = None
    """ML-Agents' behavioral_cloning settings (demo_path, strength, steps)."""
    environment_parameters: PlainDict | None = Field(
        default=None, description="ML-Agents environment_parameters (samplers, curriculum)."
    )
    curriculum_behavior: str | None = Field(
        default=None, description="The behavior name in the curricula's completion criteria that means this job's "
                                  "behavior (needed when they name several; set by from_mlagents_yaml).")
    trainer_settings: PlainDict = Field(
        default_factory=dict, description="Other ML-Agents behavior keys: init_path, threaded, self_play, ..."
    )
    mlagents_config: PlainDict | str | None = Field(
        default=None, description="Your ML-Agents trainer config (a file, or its contents), kept whole: every "
                                  "behaviour and section; fields set beside it override its `mlagents_behavior`.")
    mlagents_behavior: str | None = Field(
        default=None, description="The behaviour of mlagents_config that is this job's (default: its only one); "
                                  "it trains under the job's behaviour name when the config names it otherwise.")
    mlagents_config_path: str | None = Field(default=None, description="Where mlagents_config was read from.")

    @field_validator("trainer")
    @classmethod
    def _installed_trainer(cls, v: str) -> str:
        from ..plugins import names

        installed = names("trainers")
        if v.lower() not in installed:
            raise ValueError(f"trainer {v!r} is not installed; installed: {', '.join(installed)}")
        return v.lower()

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
        """An existing ML-Agents trainer config, kept whole; `behavior` is this job's (default: its only one) and
        `overrides` change that behaviour's settings."""
        data = {"mlagents_config": str(path), **({"mlagents_behavior": behavior} if behavior else {}), **overrides}
        return parse_model(cls, data, str(path))

    @model_validator(mode="before")
    @classmethod
    def _read_mlagents_config(cls, data: Any) -> Any:
        """`mlagents_config: path.yaml` is read here (strictly, paths resolved against the file); the fields given
        beside it override its behaviour's settings, in the document too, so the file and the job agree."""
        if isinstance(data, dict) and isinstance(data.get("mlagents_config"), dict) and data.get("mlagents_behavior"):
            from ..trainer.mlagents_yaml import sync_document

            # a config already read (a job.json, a sweep's trial): fields changed since follow into the document
            return {**data, "mlagents_config": sync_document(data["mlagents_config"], data["mlagents_behavior"],
                                                             data, _DEFAULTS)}
        if not (isinstance(data, dict) and isinstance(data.get("mlagents_config"), str)):
            return data
        from ..trainer.config import curriculum_behaviors
        from ..trainer.mlagents_yaml import apply_overrides, import_mlagents_yaml

        fields = import_mlagents_yaml(data["mlagents_config"], data.get("mlagents_behavior"))
        chosen = fields.pop("_behavior")
        overrides = {k: v for k, v in data.items() if k not in ("mlagents_config", "mlagents_behavior")}
        apply_overrides(fields["mlagents_config"], chosen, overrides)
        named = curriculum_behaviors(fields.get("environment_parameters"))
        if len(named) > 1 and chosen in named:  # the user named the behavior: its lessons are this job's
            fields["curriculum_behavior"] = chosen
        return {**fields, **overrides, "mlagents_behavior": chosen}

    @model_validator(mode="after")
    def _fast_supports_it(self) -> RLTrainingConfig:
        """Honoured or refused before any work starts: trainer 'fast' never ignores an option silently."""
        if self.trainer == "fast":
            from ..fast.options import unsupported_in_config

            problems = unsupported_in_config(self)
            if problems:
                raise ValueError("trainer 'fast' does not support " + ", ".join(problems) +
                                 "; use trainer 'mlagents' (the default) for them")
        return self

    @model_validator(mode="after")
    def _one_curriculum_behavior(self) -> RLTrainingConfig:
        from ..trainer.config import curriculum_behaviors

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


_DEFAULTS = {name: f.default for name, f in RLTrainingConfig.model_fields.items() if not f.is_required()
             and f.default_factory is None}
