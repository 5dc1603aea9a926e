"""Archetypes: the kinds of task a description can mean. One archetype is one object, registered in one place.

An archetype carries everything that differs between tasks: the words that select it, its default and required
observations, its physical and reward constants (`TaskParameters`, which the simulator, the headless player, the
C# template and the scripted expert all read: none of them has per-archetype code), and its trainer defaults.
Adding one: an `Archetype(...)` passed to `register_archetype` (below), or a package's `unity_mlops.archetypes`
entry point naming one.

Imports only the standard library: it runs inside the trainer environment too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class TaskParameters:
    """Physical and reward constants. Units are Unity metres and seconds."""

    arena_half_size: float = 5.0
    agent_radius: float = 0.25
    goal_radius: float = 0.5
    min_start_distance: float = 3.0
    max_speed: float = 2.0
    acceleration: float = 5.0
    damping: float = 0.9
    dt: float = 0.1
    ray_length: float = 6.0
    num_obstacles: int = 0
    obstacle_radius_min: float = 0.5
    obstacle_radius_max: float = 0.9
    num_waypoints: int = 0
    max_steps: int = 200
    success_reward: float = 1.0
    waypoint_reward: float = 0.3
    collision_penalty: float = -0.5
    step_penalty: float = -0.001
    shaping_per_metre: float = 0.1
    # the kind of world (behavior/tasks.py): "arena" (one agent per arena, the simulator), "duel" (two teams race
    # for one flag), "pads" (a group of two must hold both pads at once), "corridor" (a cue, then a choice)
    task: str = "arena"
    teams: int = 1  # agents of different teams in one arena (self-play)
    group_size: int = 0  # agents that share a group reward and end their episodes together (POCA)
    cue_steps: int = 0  # corridor: decisions during which the cue is shown

@dataclass(frozen=True)
class TrainerDefaults:
    """What the generated trainer YAML starts from for this task (the user's config overrides it)."""

    ppo: dict[str, Any] = field(default_factory=dict)  # over the shared PPO base (batch 256, buffer 2048, ...)
    hidden_units: int = 128
    num_layers: int = 2
    time_horizon: int = 64  # at most: PPO's default shrinks it for many agents (trainer/config.py)
    normalize: bool = True
    trainer_type: str = "ppo"  # "poca" for group tasks: what `algorithm: PPO` means there
    memory: dict[str, int] | None = None  # network_settings.memory (a recurrent policy)
    self_play: dict[str, Any] | None = None  # the ghost trainer's settings (two teams)

@dataclass(frozen=True)
class Archetype:
    name: str
    summary: str  # one line, in the generated C# and SETUP.md
    keywords: tuple[str, ...]  # any of these in the asset type or description selects it
    observations: dict[str, int]  # the default observation layout
    params: TaskParameters
    required_observations: tuple[str, ...] = ("target",)  # added when a requested layout lacks them
    exclusive_observations: tuple[str, ...] = ()  # keys that only this archetype has
    trainer: TrainerDefaults = field(default_factory=TrainerDefaults)
    action: dict[str, Any] | None = None  # the action space the task fixes (None: the spec's, default continuous 2)
    # environment parameters the task reads at every episode start (curricula, randomization), shared by the
    # simulator, the headless player and the generated C# (`EnvironmentParameters.GetWithDefault`)
    parameters: tuple[str, ...] = ("goal_distance", "goal_radius", "num_obstacles")


ARCHETYPES: dict[str, Archetype] = {}
DEFAULT_ARCHETYPE = "reach_target"
# Called once, before the first lookup: they register more archetypes and observation kinds (the product's plugin
# loader, which reads the `unity_mlops.archetypes` and `unity_mlops.observations` entry points, is one). The
# headless player has none: what its build needs was copied next to it.
PROVIDERS: list[Callable[[], None]] = []
_provided: list[bool] = []


def provided() -> None:
    if not _provided:
        for provide in PROVIDERS:
            provide()
        _provided.append(True)


def register_archetype(archetype: Archetype) -> Archetype:
    """Later registrations are matched first (they are the more specific tasks)."""
    ARCHETYPES[archetype.name] = archetype
    return archetype


def archetype(name: str) -> Archetype:
    provided()
    return ARCHETYPES[name]


def archetype_for(text: str) -> Archetype:
    """The archetype whose keywords the text contains (the most recently registered first), else the default."""
    provided()
    text = text.lower()
    for archetype in reversed(ARCHETYPES.values()):
        if any(w in text for w in archetype.keywords):
            return archetype
    return ARCHETYPES[DEFAULT_ARCHETYPE]


_WIDER = TrainerDefaults(ppo={"buffer_size": 4096, "batch_size": 512})
REACH_TARGET = register_archetype(Archetype(
    "reach_target", "Move to a randomly placed target in a walled arena.",
    ("reach", "target", "goal", "move to", "go to"), {"velocity": 2, "target": 2, "position": 2},
    TaskParameters(max_steps=200)))
NAVIGATION = register_archetype(Archetype(
    "navigation", "Reach a randomly placed target while avoiding 3 round obstacles; touching one fails.",
    ("obstacle", "avoid", "navigat", "maze", "collision"), {"raycast": 8, "velocity": 2, "target": 2},
    TaskParameters(num_obstacles=3, max_steps=300),
    # tuned for the setup guide's quick start (8 players, 100k steps) on ML-Agents:
    # docs/benchmarks/quickstart.md#learning-with-the-defaults
    trainer=TrainerDefaults(ppo={"buffer_size": 4096, "batch_size": 256, "learning_rate": 3.0e-3},
                            normalize=False)))
PATROL = register_archetype(Archetype(
    "patrol", "Visit 3 waypoints in order while avoiding 2 round obstacles; touching one fails.",
    ("patrol", "waypoint", "guard route"), {"raycast": 8, "velocity": 2, "target": 2, "waypoint_progress": 1},
    TaskParameters(num_obstacles=2, num_waypoints=3, max_steps=500), exclusive_observations=("waypoint_progress",),
    trainer=TrainerDefaults(ppo=_WIDER.ppo, time_horizon=128)))
OBSTACLE_COURSE = register_archetype(Archetype(
    "obstacle_course", "Visit 4 targets in turn across a wide arena cluttered with 10 round obstacles, with little "
    "reward shaping; touching an obstacle fails.",
    ("obstacle course", "cluttered", "dense obstacles", "crowded arena"),
    {"raycast": 12, "velocity": 2, "target": 2},
    TaskParameters(arena_half_size=7.0, goal_radius=0.4, min_start_distance=5.0, num_obstacles=10,
                   obstacle_radius_min=0.5, obstacle_radius_max=1.0, ray_length=5.0, num_waypoints=4,
                   max_steps=800, shaping_per_metre=0.02),
    trainer=TrainerDefaults(ppo=_WIDER.ppo, time_horizon=128)))

DUEL = register_archetype(Archetype(
    "duel", "Two agents of rival teams race for one flag; the first there wins, and they block each other.",
    ("duel", "race against", "compete", "opponent", "self-play", "self play"),
    {"target": 2, "velocity": 2, "opponent": 4},
    TaskParameters(task="duel", teams=2, max_steps=200, shaping_per_metre=0.02),
    exclusive_observations=("opponent",), action={"type": "continuous", "size": 2}, parameters=(),
    trainer=TrainerDefaults(ppo={"buffer_size": 4096, "batch_size": 512, "learning_rate": 1.0e-3},
                            self_play={"save_steps": 4000, "team_change": 16000, "swap_steps": 2000, "window": 10,
                                       "play_against_latest_model_ratio": 0.5, "initial_elo": 1200.0})))
PADS = register_archetype(Archetype(
    "pads", "Two agents of one group must hold both pads at the same time; only the group is rewarded.",
    ("cooperat", "together", "both pads", "pads", "pair of agents", "team of two"),
    {"velocity": 2, "pads": 4, "partner": 4},
    TaskParameters(task="pads", group_size=2, max_steps=250),
    required_observations=(), exclusive_observations=("pads", "partner"), action={"type": "continuous", "size": 2},
    parameters=("pad_radius",),
    trainer=TrainerDefaults(trainer_type="poca",
                            ppo={"buffer_size": 4096, "batch_size": 512, "learning_rate": 1.0e-3})))
CORRIDOR = register_archetype(Archetype(
    "corridor", "A cue shows which of two goals is right, only at the start of a narrow corridor; the choice comes "
    "at its end, so the agent must remember.", ("remember", "memory", "cue", "hallway"),
    {"cue": 2, "position": 2, "velocity": 2},
    TaskParameters(task="corridor", max_steps=100, cue_steps=3, shaping_per_metre=0.05),
    required_observations=(), exclusive_observations=("cue",), action={"type": "continuous", "size": 2},
    parameters=(), trainer=TrainerDefaults(ppo={"buffer_size": 4096, "batch_size": 256, "learning_rate": 1.0e-3},
                                           memory={"memory_size": 64, "sequence_length": 64}, normalize=False)))
