"""Worlds as ML-Agents sees them: behaviours (with teams), their agents, sensors, rewards, episode ends and groups.

A `Task` is what the headless player serves and the in-process evaluator plays: one or more *slots* (an ML-Agents
behaviour name with a team id), each with its agents, its sensors (a vector, a camera image) and its action spec.
`step` applies every slot's actions and reports, per slot, the observations after the step (the terminal ones for
agents whose episode ended), rewards, ends, group ids and rewards, what each ended episode meant, and the task
parameters it started with; `restart` starts new episodes for the agents that ended.

`ArenaTask` serves the single-agent behaviours (the vectorized `Simulator`) and adds a camera and a boost; the games
of several agents (a duel of two teams, a cooperative pair, a memory corridor) live in `games.py`; `worlds.make_task`
picks the world of a behaviour.

Imports only numpy and this package: it runs in the trainer environment too.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .definition import BehaviorDefinition
from .simulator import Simulator


@dataclass(frozen=True)
class SensorSpec:
    name: str  # ML-Agents sorts sensors by name: the model's obs_i is the i-th in that order
    shape: tuple[int, ...]  # (n,) vector or (3, S, S) image (CHW, values in [0, 1])

    @property
    def visual(self) -> bool:
        return len(self.shape) == 3


@dataclass(frozen=True)
class SlotSpec:
    behavior: str
    team: int
    agents: int
    sensors: tuple[SensorSpec, ...]
    continuous: int
    branches: tuple[int, ...]

    @property
    def name(self) -> str:
        """The fully qualified behaviour name Unity sends (`BehaviorParameters.FullyQualifiedBehaviorName`)."""
        return f"{self.behavior}?team={self.team}"


@dataclass
class SlotFrame:
    obs: list[np.ndarray]
    reward: np.ndarray
    done: np.ndarray
    interrupted: np.ndarray
    success: np.ndarray
    collision: np.ndarray
    group_id: np.ndarray
    group_reward: np.ndarray
    params: dict[str, np.ndarray] = field(default_factory=dict)  # each agent's episode's task parameters


def sensors_of(definition: BehaviorDefinition) -> tuple[SensorSpec, ...]:
    out = []
    if definition.camera:
        out.append(SensorSpec("CameraSensor", (3, definition.camera, definition.camera)))
    if definition.observation_size:
        out.append(SensorSpec(f"VectorSensor_size{definition.observation_size}", (definition.observation_size,)))
    return tuple(sorted(out, key=lambda s: s.name))


def frame(n: int, obs: list[np.ndarray], reward: np.ndarray, done: np.ndarray | None = None,
          interrupted: np.ndarray | None = None, success: np.ndarray | None = None,
          collision: np.ndarray | None = None) -> SlotFrame:
    no = np.zeros(n, bool)
    return SlotFrame(obs, np.asarray(reward, np.float32), no if done is None else done,
                     no if interrupted is None else interrupted, no if success is None else success,
                     no if collision is None else collision, np.zeros(n, np.int64), np.zeros(n, np.float32))


class Task(ABC):
    """What every world offers the player and the evaluator (a world implements reset, step and restart)."""

    slots: list[SlotSpec]

    @abstractmethod
    def reset(self) -> list[list[np.ndarray]]:
        """New episodes for every agent; the observations of every slot."""

    @abstractmethod
    def step(self, actions: list[tuple[np.ndarray, np.ndarray]]) -> list[SlotFrame]:
        """One decision for every agent: (continuous [n, c], discrete [n, b]) per slot."""

    @abstractmethod
    def restart(self, frames: list[SlotFrame]) -> list[list[np.ndarray]]:
        """New episodes for the agents that ended in `frames`; every slot's observations for the next decision."""

    def set_parameters(self, get: Callable[[str, float], float] | None) -> None:
        """Environment parameters for the episodes that start from now on (a world without any ignores them)."""
        return None


# ------------------------------------------------------------------ the single-agent arenas
def render_camera(sim: Simulator, size: int, rows: np.ndarray | None = None) -> np.ndarray:
    """A top-down image around each agent, turned so that its goal is straight ahead (up): obstacles (red),
    walls and the outside (green), the goal (blue); CHW float32 in [0, 1], as ML-Agents decodes a camera PNG."""
    p = sim.p
    idx = np.arange(sim.n) if rows is None else np.asarray(rows)
    view = p.ray_length  # metres from the agent to the image's edge
    ticks = (np.arange(size, dtype=np.float32) + 0.5) / size * 2.0 * view - view
    ahead, side = np.meshgrid(ticks[::-1], -ticks, indexing="ij")  # row 0 = furthest ahead; column 0 = left (+v)
    uv = sim._uv[idx].reshape(-1, 2, 2)  # (u, v) per agent
    local = np.stack([ahead.ravel(), side.ravel()], axis=1)  # [P, 2] in (u, v)
    world = sim.pos[idx][:, None, :] + np.einsum("pk,nkj->npj", local, uv)  # [n, P, 2]
    img = np.zeros((len(idx), 3, size * size), np.float32)
    if p.num_obstacles:
        d2 = np.square(world[:, :, None, :] - sim.obstacles[idx][:, None, :, :]).sum(-1)  # [n, P, K]
        img[:, 0] = (d2 < np.square(sim.obstacle_r[idx])[:, None, :]).any(-1)
    img[:, 1] = (np.abs(world) > p.arena_half_size).any(-1)
    goal_r = np.maximum(sim._goal_r[idx], 1.5 * view / size)  # at least a pixel or so
    img[:, 2] = np.square(world - sim._goal[idx][:, None, :]).sum(-1) < np.square(goal_r)[:, None]
    return img.reshape(len(idx), 3, size, size)


class ArenaTask(Task):
    """One agent per arena: the built-in single-agent behaviours."""

    def __init__(self, definition: BehaviorDefinition, agents: int, seed: int = 0, null: bool = False) -> None:
        from .simulator import NullSimulator

        self.definition = definition
        self.sim = (NullSimulator if null else Simulator)(definition, agents, seed)
        a = definition.action
        self.slots = [SlotSpec(definition.behavior_name, 0, agents, sensors_of(definition), a.continuous,
                               a.branches)]
        self._camera = definition.camera if not null else 0

    def _obs(self, vector: np.ndarray, rows: np.ndarray | None = None) -> list[np.ndarray]:
        """In sensor order: `CameraSensor` sorts before `VectorSensor_size<N>`."""
        out = []
        if self._camera:
            out.append(render_camera(self.sim, self._camera, rows))
        if self.definition.observation_size:
            out.append(vector if rows is None else vector[rows])
        return out

    def reset(self) -> list[list[np.ndarray]]:
        return [self._obs(self.sim.reset(np.ones(self.sim.n, bool)))]

    def step(self, actions: list[tuple[np.ndarray, np.ndarray]]) -> list[SlotFrame]:
        cont, disc = actions[0]
        a = self.definition.action
        if a.is_hybrid:
            res = self.sim.step(cont, discrete=disc)
        else:
            res = self.sim.step(cont if a.is_continuous else disc)
        self._last = res
        f = frame(self.sim.n, self._obs(res.obs), res.reward, res.done, res.interrupted, res.success,
                  res.collision)
        f.params = {k: v.copy() for k, v in getattr(self.sim, "episode_params", {}).items()}
        return [f]

    def restart(self, frames: list[SlotFrame]) -> list[list[np.ndarray]]:
        res = self._last
        if not res.done.any():
            return [frames[0].obs]
        vector = self.sim.reset_done(res.done, res.obs)
        if not self._camera:
            return [self._obs(vector)]
        image = frames[0].obs[0].copy()  # only the new episodes' images change
        rows = np.flatnonzero(res.done)
        image[rows] = render_camera(self.sim, self._camera, rows)
        return [[image, vector] if self.definition.observation_size else [image]]

    def set_parameters(self, get: Callable[[str, float], float] | None) -> None:
        if hasattr(self.sim, "set_parameters"):
            self.sim.set_parameters(get)
