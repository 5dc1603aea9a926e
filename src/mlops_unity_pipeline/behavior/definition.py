"""One behavior definition per asset: archetype, observation layout, action spec, rewards and episode ends.

This module is the single source of truth that the simulator, the headless player, the C# generator and the
evaluator read. It imports only the standard library, because it also runs inside the ML-Agents trainer
environment (Python 3.10/3.11, numpy 1.23).

All geometry is expressed in the agent's *goal frame*: axis ``u`` points from the agent to its current goal and
``v`` is ``u`` turned 90 degrees counter-clockwise. Observations and actions use that frame, which is what makes
the tasks learnable in about 100k steps (world-axis variants stall; see shared/reference/rl-measurements.md).
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from .archetypes import ARCHETYPES, TaskParameters, archetype_for, provided
from .archetypes import archetype as archetype_named
from .observations import KINDS

# What an episode meant and how an evaluator replays starts: shared by the headless player, the generated C# Agent
# and the evaluator (ML-Agents statistics and environment-parameter names).
SUCCESS_STAT, COLLISION_STAT = "Episode/Success", "Episode/Collision"
EVALUATION_SEED = "evaluation_seed"

# Observation keys the worlds own (a camera is a sensor of its own; the games compute theirs), beside the arenas'
# observation kinds (observations.py): canonical name -> (fixed size or None, meaning).
WORLD_KEYS: dict[str, tuple[int | None, str]] = {
    "camera": (None, "S x S top-down image around the agent, goal ahead (RGB: obstacles, walls, goal); a camera "
                     "sensor of its own, not part of the vector"),
    "cue": (2, "which of two goals is right (one-hot), shown only during the first steps (memory task)"),
    "opponent": (4, "the other team's agent: its position and velocity in the goal frame (duel)"),
    "pads": (4, "both pads' positions relative to the agent, world axes / arena half-size (pads)"),
    "partner": (4, "the partner's position relative to the agent and whether each pad is held (pads)"),
}
CAMERA_SIZES = (8, 84)  # smallest and largest camera side, in pixels


def observation_keys() -> dict[str, tuple[int | None, str]]:
    """Every observation key: the arenas' kinds (plugins' included) and the worlds' own."""
    provided()
    return {**{k: (kind.size, kind.description) for k, kind in KINDS.items()}, **WORLD_KEYS}


def observation_aliases() -> dict[str, str]:
    provided()
    return {"image": "camera", "visual": "camera", **{a: k for k, kind in KINDS.items() for a in kind.aliases}}


@dataclass(frozen=True)
class ObservationComponent:
    key: str
    size: int


@dataclass(frozen=True)
class ActionSpec:
    continuous: int = 0
    branches: tuple[int, ...] = ()

    @property
    def is_continuous(self) -> bool:
        return self.continuous > 0

    @property
    def is_hybrid(self) -> bool:
        return self.continuous > 0 and bool(self.branches)

    def to_dict(self) -> dict[str, Any]:
        if self.is_hybrid:
            return {"type": "hybrid", "size": self.continuous, "branches": list(self.branches)}
        if self.is_continuous:
            return {"type": "continuous", "size": self.continuous}
        return {"type": "discrete", "branches": list(self.branches)}


class BehaviorError(ValueError):
    """An asset description that cannot be turned into a behavior; the message names the field."""


@dataclass(frozen=True)
class BehaviorDefinition:
    behavior_name: str
    archetype: str
    observations: tuple[ObservationComponent, ...]
    action: ActionSpec
    params: TaskParameters = field(default_factory=TaskParameters)
    description: str = ""

    @property
    def observation_size(self) -> int:
        """Floats of the vector observation (`CollectObservations`); a camera is a sensor of its own."""
        return sum(c.size for c in self.observations if c.key != "camera")

    @property
    def camera(self) -> int:
        """The camera image's side in pixels (0: no camera)."""
        return next((c.size for c in self.observations if c.key == "camera"), 0)

    def observation_shapes(self) -> list[tuple[int, ...]]:
        """One shape per sensor, in the order ML-Agents sorts them by name (`CameraSensor` before
        `VectorSensor_size<N>`): the model's `obs_0..obs_n`. A camera image is CHW."""
        shapes: list[tuple[int, ...]] = [(3, self.camera, self.camera)] if self.camera else []
        return shapes + ([(self.observation_size,)] if self.observation_size else [])

    def observation_slices(self) -> dict[str, slice]:
        out, start = {}, 0
        for c in self.observations:
            if c.key == "camera":
                continue
            out[c.key] = slice(start, start + c.size)
            start += c.size
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "behavior_name": self.behavior_name,
            "archetype": self.archetype,
            "description": self.description,
            "observations": [{"key": c.key, "size": c.size} for c in self.observations],
            "action": {"continuous": self.action.continuous, "branches": list(self.action.branches)},
            "params": asdict(self.params),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BehaviorDefinition:
        return cls(
            behavior_name=d["behavior_name"],
            archetype=d["archetype"],
            description=d.get("description", ""),
            observations=tuple(ObservationComponent(o["key"], int(o["size"])) for o in d["observations"]),
            action=ActionSpec(int(d["action"]["continuous"]), tuple(int(b) for b in d["action"]["branches"])),
            params=TaskParameters(**d.get("params", {})),
        )


def choose_archetype(asset_type: str, description: str, override: str | None = None) -> str:
    """Pick the archetype from the words of the description; `override` wins."""
    if override:
        key = override.strip().lower().replace("-", "_").replace(" ", "_")
        provided()
        if key not in ARCHETYPES:
            raise BehaviorError(f"archetype {override!r} is unknown; choose one of {', '.join(ARCHETYPES)}")
        return key
    return archetype_for(f"{asset_type} {description}").name


def _observations(name: str, requested: dict[str, int] | None) -> tuple[ObservationComponent, ...]:
    layout: dict[str, int] = {}
    problems: list[str] = []
    arch = archetype_named(name)
    keys, aliases = observation_keys(), observation_aliases()
    if arch.params.task != "arena" and requested and \
            {aliases.get(k.lower(), k.lower()): v for k, v in requested.items()} != arch.observations:
        raise BehaviorError(f"archetype {name} observes exactly {arch.observations}; leave observation_space "
                            f"out (got {requested})")
    source = requested if requested else arch.observations
    for raw_key, size in source.items():
        key = aliases.get(raw_key.lower(), raw_key.lower())
        if key not in keys:
            near = difflib.get_close_matches(key, [*keys, *aliases], n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            problems.append(f"observation_space key {raw_key!r} is unknown{hint}; known keys: "
                            f"{', '.join(sorted(keys))}")
            continue
        if key in layout:
            problems.append(f"observation_space lists {key!r} twice (aliases count as the same key)")
            continue
        fixed, _ = keys[key]
        if fixed is not None and size != fixed:
            problems.append(f"observation_space[{raw_key!r}] must be {fixed}, got {size}")
        elif key in KINDS and fixed is None and not KINDS[key].sizes[0] <= size <= KINDS[key].sizes[1]:
            (low, high), unit = KINDS[key].sizes, f" {KINDS[key].unit}" if KINDS[key].unit else ""
            problems.append(f"observation_space[{raw_key!r}] must be between {low} and {high}{unit}, got {size}")
        elif key == "camera" and not CAMERA_SIZES[0] <= size <= CAMERA_SIZES[1]:
            problems.append(f"observation_space[{raw_key!r}] is the camera image's side, between "
                            f"{CAMERA_SIZES[0]} and {CAMERA_SIZES[1]} pixels, got {size}")
        elif key not in arch.exclusive_observations and _owner(key) is not None:
            problems.append(f"observation_space key {key!r} only exists for {_owner(key)} behaviors")
        layout[key] = int(size)
    if problems:
        raise BehaviorError("; ".join(problems))
    if "camera" not in layout:  # the task cannot be solved without them (a camera sees the goal)
        for key in arch.required_observations:
            layout.setdefault(key, keys[key][0] or 1)
    return tuple(ObservationComponent(k, s) for k, s in layout.items())


def _owner(key: str) -> str | None:
    """The archetype an observation key belongs to, if only one has it (patrol's waypoint progress)."""
    return next((a.name for a in ARCHETYPES.values() if key in a.exclusive_observations), None)


def _action(requested: dict[str, Any] | None) -> ActionSpec:
    if not requested:
        return ActionSpec(continuous=2)
    kind = requested.get("type")
    if kind == "hybrid":
        size, branches = requested.get("size", 2), tuple(int(b) for b in requested.get("branches", [2]))
        if size != 2 or branches != (2,):
            raise BehaviorError(f"a hybrid action_space is 2 continuous (acceleration along u and v) plus one "
                                f"branch of 2 (boost: off, on); got size {size}, branches {list(branches)}")
        return ActionSpec(continuous=2, branches=(2,))
    if kind == "continuous":
        size = requested.get("size", 2)
        if size != 2:
            raise BehaviorError(
                f"action_space.size must be 2 for continuous movement (acceleration along u and v), got {size}"
            )
        return ActionSpec(continuous=2)
    if kind == "discrete":
        branches = requested.get("branches")
        if branches is None:
            branches = [requested.get("size", 5)]
        branches = tuple(int(b) for b in branches)
        if branches not in ((5,), (3, 3)):
            raise BehaviorError(
                f"action_space branches {list(branches)} are not supported for movement; use one branch of 5 "
                "(none, +u, -u, +v, -v) or two branches of 3 (per axis: none, +, -)"
            )
        return ActionSpec(branches=branches)
    raise BehaviorError(f"action_space.type must be 'continuous', 'discrete' or 'hybrid', got {kind!r}")


_NON_IDENT = re.compile(r"[^A-Za-z0-9_]")


def build_behavior(
    *,
    behavior_name: str,
    asset_type: str = "behavior",
    description: str = "",
    observation_space: dict[str, int] | None = None,
    action_space: dict[str, Any] | None = None,
    archetype: str | None = None,
) -> BehaviorDefinition:
    """Derive the behavior from the fields of a `UnityAssetSpec`. Every problem is reported at once."""
    problems: list[str] = []
    if _NON_IDENT.search(behavior_name):
        problems.append(f"behavior name {behavior_name!r} must be a C# identifier")
    try:
        kind = choose_archetype(asset_type, description, archetype)
    except BehaviorError as exc:
        problems.append(str(exc))
        kind = choose_archetype(asset_type, description)  # still check the spaces against the described task
    observations, action = None, None
    try:
        observations = _observations(kind, observation_space)
    except BehaviorError as exc:
        problems.append(str(exc))
    fixed = archetype_named(kind).action
    try:
        action = _action(action_space or fixed)
        if action_space and fixed and action != _action(fixed):
            problems.append(f"archetype {kind} acts with {fixed}; leave action_space out")
    except BehaviorError as exc:
        problems.append(str(exc))
    if problems or observations is None or action is None:
        raise BehaviorError("; ".join(problems))
    return BehaviorDefinition(
        behavior_name=behavior_name,
        archetype=kind,
        observations=observations,
        action=action,
        params=archetype_named(kind).params,
        description=description,
    )
