"""`UnityAssetSpec`: what to train, in the setup guide's words."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator, model_validator

from .base import PlainDict, _check_identifier, _check_safe_id, _Model


class UnityAssetSpec(_Model):
    """A plain description of one agent. `observation_space`/`action_space` are optional: the behavior's
    archetype fills in what the task needs (docs/how-to/behaviours.md)."""

    asset_id: str
    """Your identifier of the asset (letters, digits, '-', '_', '.')."""
    name: str
    """The agent's name: a C# identifier (the class is <name>Agent, the behavior name defaults to it)."""
    asset_type: str = "behavior"
    """What kind of asset (behavior, agent, npc, ...); with the description it picks the archetype."""
    description: str = ""
    """What the agent should do, in plain words ("reach the target while avoiding obstacles")."""
    observation_space: dict[str, int] | None = None
    """Observation keys and sizes, e.g. {raycast: 8, velocity: 2} (default: the archetype's)."""
    action_space: dict[str, Any] | None = None
    """{type: continuous|discrete|hybrid, size: N, branches: [..]} (default: the archetype's)."""
    behavior_name: str | None = Field(default=None, description="ML-Agents behavior name; defaults to `name`.")
    archetype: str | None = Field(default=None, description="Override the archetype chosen from the text.")
    metadata: PlainDict = Field(default_factory=dict)
    """Your own labels, kept with every version."""

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
        if kind not in ("continuous", "discrete", "hybrid"):
            raise ValueError(f"action_space.type must be 'continuous', 'discrete' or 'hybrid', got {kind!r}")
        unknown = set(v) - {"type", "size", "branches"}
        if unknown:
            raise ValueError(f"action_space has unknown keys {sorted(unknown)}; allowed: type, size, branches")
        if "size" in v and (not isinstance(v["size"], int) or v["size"] <= 0):
            raise ValueError(f"action_space.size must be a positive integer, got {v['size']!r}")
        if "branches" in v:
            if kind == "continuous":
                raise ValueError("action_space.branches is only valid with type 'discrete' or 'hybrid'")
            b = v["branches"]
            if not isinstance(b, list) or not b or any(not isinstance(x, int) or x <= 0 for x in b):
                raise ValueError(f"action_space.branches must be a list of positive integers, got {b!r}")
        return v

    @model_validator(mode="after")
    def _behavior(self) -> UnityAssetSpec:
        """The behavior the spec describes must exist: checked where the spec is written, not an hour later."""
        from ..behavior.definition import BehaviorError, build_behavior

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
