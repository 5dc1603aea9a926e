"""Record demonstrations from the simulator with a scripted expert, written as Unity writes them.

The expert heads for the goal (u = +1 in the goal frame) and, where the behavior has rays, steers away from the side
whose diagonal ray (+-45 degrees) sees an obstacle closer. Discrete behaviors take the nearest discrete action.
Each agent's episodes are written contiguously, because ML-Agents pairs each record with the next one of the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..behavior.definition import BehaviorDefinition
from ..behavior.simulator import Simulator
from .demofile import write_demo


def expert_policy(definition: BehaviorDefinition):
    sl = definition.observation_slices().get("raycast")
    rays = 0 if sl is None else sl.stop - sl.start
    branches = definition.action.branches

    def continuous(obs: np.ndarray) -> np.ndarray:
        act = np.zeros((len(obs), 2), np.float32)
        act[:, 0] = 1.0
        if rays >= 4:
            r = obs[:, sl]
            k = max(1, rays // 8)  # the ray closest to +45 degrees
            act[:, 0] = 0.2 + r[:, 0]
            act[:, 1] = 3.0 * (r[:, k] - r[:, rays - k])
        return np.clip(act, -1.0, 1.0)

    def act(obs: np.ndarray) -> np.ndarray:
        a = continuous(obs)
        if definition.action.is_continuous:
            return a
        if branches == (5,):
            u, v = a[:, 0], a[:, 1]
            choice = np.where(np.abs(v) > 0.5 * np.abs(u), np.where(v > 0, 3, 4), np.where(u >= 0, 1, 2))
            return choice[:, None].astype(np.int64)
        axis = lambda x: np.where(x > 0.33, 1, np.where(x < -0.33, 2, 0))  # noqa: E731
        return np.stack([axis(a[:, 0]), axis(a[:, 1])], axis=1).astype(np.int64)

    return act


@dataclass
class RecordingSummary:
    path: Path
    steps: int
    episodes: int
    mean_reward: float
    success_rate: float


def record_demonstrations(definition: BehaviorDefinition, episodes: int, path: str | Path, seed: int = 7,
                          agents: int = 32) -> RecordingSummary:
    if episodes <= 0:
        raise ValueError("episodes must be > 0")
    sim = Simulator(definition, min(agents, episodes), seed)  # the arena archetypes: each has a scripted expert
    policy = expert_policy(definition)
    n = sim.n
    pending: list[list[tuple]] = [[] for _ in range(n)]
    rewards_in = np.zeros(n, np.float32)
    rows: list[tuple] = []
    done_eps = successes = 0
    returns = []
    obs = sim.observe()
    while done_eps < episodes:
        actions = policy(obs)
        res = sim.step(actions)
        for i in range(n):
            pending[i].append((obs[i].copy(), actions[i].copy(), float(rewards_in[i]), False, False))
        rewards_in = res.reward.copy()
        for i in np.flatnonzero(res.done):
            if done_eps >= episodes:
                break
            zero = np.zeros_like(actions[i])
            pending[i].append((res.obs[i].copy(), zero, float(res.reward[i]), True, bool(res.interrupted[i])))
            rows.extend(pending[i])
            returns.append(float(sim.episode_return[i]))
            successes += bool(res.success[i])
            pending[i] = []
            done_eps += 1
        rewards_in[res.done] = 0.0
        obs = sim.reset_done(res.done, res.obs)
    o = np.stack([r[0] for r in rows])
    a = np.stack([r[1] for r in rows])
    write_demo(path, definition.behavior_name, o, a, np.array([r[2] for r in rows], np.float32),
               np.array([r[3] for r in rows]), continuous=definition.action.continuous,
               branches=definition.action.branches, interrupted=np.array([r[4] for r in rows]))
    return RecordingSummary(Path(path), len(rows), episodes, float(np.mean(returns)), successes / episodes)


def check_compatible(demos, definition) -> list[str]:
    """Problems between demonstrations and a behaviour (a `BehaviorDefinition`, or what a build declares: a
    `PolicySpec`), as ML-Agents' `demo_to_buffer` would see them; each names both specs."""
    from ..evaluation.onnx_policy import PolicySpec

    spec = definition if isinstance(definition, PolicySpec) else PolicySpec.of(definition)
    want = [tuple(s) for s in spec.obs_shapes]
    problems = []
    for d in demos:
        where = str(d.path)
        if [tuple(s) for s in d.observation_shapes] != want and not _same_images(d.observation_shapes, want):
            problems.append(f"{where}: observation shapes {d.observation_shapes} do not match the behavior's {want}")
        if d.continuous_size != spec.continuous or tuple(d.branches) != tuple(spec.branches):
            problems.append(f"{where}: actions (continuous {d.continuous_size}, branches {list(d.branches)}) do not "
                            f"match the behavior's (continuous {spec.continuous}, branches {list(spec.branches)})")
    return problems


def _same_images(got, want) -> bool:
    """Older writers store camera images HWC; current ML-Agents reads CHW."""
    if len(got) != len(want):
        return False
    return all(tuple(g) == tuple(w) or (len(g) == 3 and (g[2], g[0], g[1]) == tuple(w)) for g, w in zip(got, want,
                                                                                                       strict=True))
