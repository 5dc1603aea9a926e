"""NumPy-vectorized simulator of a `BehaviorDefinition`: N agents, each in its own arena, stepped in one call.

Works with numpy 1.23 (trainer environment) and 2.x (product environment); no per-agent Python loops.
Each agent's episode is independent: `step` reports terminal observations, and `reset_done` starts new episodes
for the agents that finished, so the player can report both in one message, as Unity does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .definition import BehaviorDefinition
from .observations import KINDS, ObservationState

_DISCRETE5 = np.array([[0, 0], [1, 0], [-1, 0], [0, 1], [0, -1]], dtype=np.float32)
_DISCRETE3 = np.array([0.0, 1.0, -1.0], dtype=np.float32)


@dataclass
class StepResult:
    obs: np.ndarray          # [N, obs_size] observation after the step (terminal one for finished agents)
    reward: np.ndarray       # [N] float32
    done: np.ndarray         # [N] bool: episode ended (success, failure or max steps)
    interrupted: np.ndarray  # [N] bool: ended by the step limit (ML-Agents `max_step_reached`)
    success: np.ndarray      # [N] bool
    collision: np.ndarray    # [N] bool


class Simulator:
    """The built-in behaviors' physics, rewards and observations.

    Costs are counted in NumPy calls, not in arithmetic: at 64 agents each call on [N, rays] arrays takes about
    as long as its arithmetic on 1,000 agents would. So the goal frame is kept as one [N, 4] array (u, v), from
    which one matmul gives every ray's direction and one batched matmul every ray/obstacle projection; and the
    first observation of each new episode is computed with its layout, a pool at a time, so that episodes ending
    on most steps cost a few row copies instead of a second observation pass."""

    _POOL = 256  # episode layouts sampled (and observed) per batch
    _UV = np.array([0, 1, 1, 0])  # (u_x, u_y) -> (u_x, u_y, v_x, v_y) with v = u turned left: (-u_y, u_x)
    _UV_SIGN = np.array([1.0, 1.0, -1.0, 1.0], np.float32)

    def __init__(self, definition: BehaviorDefinition, num_agents: int, seed: int = 0) -> None:
        if num_agents <= 0:
            raise ValueError(f"num_agents must be > 0, got {num_agents}")
        self.definition = definition
        self.p = definition.params
        self.n = num_agents
        self.rng = np.random.default_rng(seed)
        n, p = num_agents, self.p
        self.pos = np.zeros((n, 2), np.float32)
        self.vel = np.zeros((n, 2), np.float32)
        self.n_way = max(1, p.num_waypoints)
        self.goals = np.zeros((n, self.n_way, 2), np.float32)
        self.goal_idx = np.zeros(n, np.int64)
        self.obstacles = np.zeros((n, p.num_obstacles, 2), np.float32)
        self.obstacle_r = np.zeros((n, p.num_obstacles), np.float32)
        self.steps = np.zeros(n, np.int64)
        self.prev_dist = np.zeros(n, np.float32)
        self.episode_return = np.zeros(n, np.float32)
        self._goal = np.zeros((n, 2), np.float32)  # goals[i, goal_idx[i]], kept with them
        self._hit_r2 = np.zeros((n, p.num_obstacles), np.float32)  # (obstacle radius + agent radius)^2
        self._uv = np.zeros((n, 4), np.float32)  # goal frame (u, v) of the last observation: actions apply in it
        self._slices = definition.observation_slices()
        foreign = [k for k in self._slices if k not in KINDS]
        if foreign:  # a world of its own (the corridor's cue, a duel's opponent ...) computes those: see games.py
            raise ValueError(f"the arena simulator cannot compute the observation(s) {', '.join(foreign)} of "
                             f"{definition.behavior_name} (archetype {definition.archetype}): that world has its own "
                             "task in the headless player")
        ray = self._slices.get("raycast")
        self.n_rays = R = 0 if ray is None else ray.stop - ray.start
        angles = 2.0 * np.pi * np.arange(R) / max(1, R)
        # (u, v) @ basis = ray directions, x components then y: d_r = cos_r * u + sin_r * v
        self._ray_basis = np.zeros((4, 2 * R), np.float32)
        self._ray_basis[0, :R] = self._ray_basis[1, R:] = np.cos(angles)
        self._ray_basis[2, :R] = self._ray_basis[3, R:] = np.sin(angles)
        self._all = np.arange(n)
        self._no = np.zeros(n, bool)  # read-only "nobody" mask
        self._no.flags.writeable = False
        self.parameter: Callable[[str, float], float] | None = None  # environment parameters, read per episode
        self._goal_r = np.full(n, p.goal_radius, np.float32)
        self.episode_params: dict[str, np.ndarray] = {}  # the parameter values each agent's episode started with
        self._pool = self._sample_layouts(0)
        self._pool_next = 0
        self.reset(np.ones(n, bool))

    # ------------------------------------------------------------------ episodes
    def reset(self, mask: np.ndarray) -> np.ndarray:
        """Start new episodes for the agents in `mask`; return observations of all agents."""
        idx = np.flatnonzero(mask)
        if idx.size:
            self._spawn(idx)
        return self.observe()

    def reset_done(self, done: np.ndarray, obs: np.ndarray | None = None) -> np.ndarray:
        """New episodes for the `done` agents. With `obs` (the observations `step` just returned), only the reset
        rows change, to their episodes' first observations."""
        idx = np.flatnonzero(done)
        if obs is None or not idx.size:
            return self.reset(done)
        out = obs.copy()
        out[idx] = self._spawn(idx)
        return out

    def _uniform(self, shape: tuple[int, ...], margin: float) -> np.ndarray:
        lim = self.p.arena_half_size - margin
        return self.rng.uniform(-lim, lim, size=(*shape, 2)).astype(np.float32)

    def _sample_layouts(self, k: int) -> tuple[np.ndarray, ...]:
        """k episode layouts (start [k,2], goals [k,W,2], obstacles [k,K,2], radii [k,K]) by rejection sampling:
        each goal at least min_start_distance from the previous point, obstacles clear of the start and goals;
        with each layout's first observation and goal frame."""
        p = self.p
        margin = p.agent_radius + 0.2
        params = self._layout_parameters(k)
        pos = self._uniform((k,), margin)
        goals = np.empty((k, self.n_way, 2), np.float32)
        prev = pos
        for w in range(self.n_way):  # waypoints (<= 3) depend on the previous one; vectorized over layouts
            g = self._uniform((k,), margin)
            for _ in range(64):
                bad = np.hypot(*(g - prev).T) < params["goal_distance"]
                if not bad.any():
                    break
                g[bad] = self._uniform((int(bad.sum()),), margin)
            goals[:, w] = g
            prev = g
        K = p.num_obstacles
        rad = self.rng.uniform(p.obstacle_radius_min, p.obstacle_radius_max, (k, K)).astype(np.float32)
        obstacles = self._uniform((k, K), 0.0)
        if K:
            keep_clear = np.concatenate([pos[:, None], goals], axis=1)[:, None]  # [k, 1, 1+W, 2]
            clearance = rad + p.agent_radius + p.goal_radius + 0.3
            for _ in range(64):
                gap = np.hypot(*np.moveaxis(keep_clear - obstacles[:, :, None], -1, 0)).min(axis=2)  # [k, K]
                bad = gap < clearance
                if not bad.any():
                    break
                obstacles[bad] = self._uniform((int(bad.sum()),), 0.0)
            # obstacles a lesson leaves out stand far away: no ray reaches them, nobody touches them
            obstacles[np.arange(K)[None, :] >= params["num_obstacles"][:, None]] = FAR
        obs, uv, dist = self._observe(pos, np.zeros_like(pos), goals[:, 0], np.zeros(k, np.int64), obstacles, rad)
        return pos, goals, obstacles, rad, obs, uv, dist, params["goal_radius"], params["goal_distance"], \
            params["num_obstacles"]

    def _layout_parameters(self, k: int) -> dict[str, np.ndarray]:
        """Each layout's task parameters: the archetype's values, or what the environment parameters say (a
        sampler draws anew for every episode, as Unity's `EnvironmentParameters.GetWithDefault` does)."""
        p, get = self.p, self.parameter
        defaults = {"goal_distance": p.min_start_distance, "goal_radius": p.goal_radius,
                    "num_obstacles": float(p.num_obstacles)}
        if get is None:
            return {name: np.full(k, value, np.float32) for name, value in defaults.items()}
        out = {name: np.array([get(name, value) for _ in range(k)], np.float32) for name, value in defaults.items()}
        out["num_obstacles"] = np.clip(np.round(out["num_obstacles"]), 0, p.num_obstacles)
        out["goal_distance"] = np.clip(out["goal_distance"], 0.0, 1.8 * p.arena_half_size)
        out["goal_radius"] = np.clip(out["goal_radius"], 0.05, p.arena_half_size)
        return out

    def set_parameters(self, get: Callable[[str, float], float] | None) -> None:
        """Read task parameters from `get(name, default)` for every episode from now on (layouts sampled ahead
        with the old values are dropped)."""
        self.parameter = get
        self._pool = self._sample_layouts(0)
        self._pool_next = 0

    def _spawn(self, idx: np.ndarray) -> np.ndarray:
        """New episodes for the agents `idx`, drawn from the pool of layouts; returns their first observations.
        With many agents a few episodes end on most steps, and sampling them one small batch at a time cost more
        than the physics."""
        k = idx.size
        if self._pool_next + k > len(self._pool[0]):
            rest = [a[self._pool_next:] for a in self._pool]
            fresh = self._sample_layouts(max(self._POOL, k))
            self._pool = tuple(np.concatenate([r, f]) for r, f in zip(rest, fresh, strict=True))
            self._pool_next = 0
        take = slice(self._pool_next, self._pool_next + k)
        self._pool_next += k
        pos, goals, obstacles, rad, obs, uv, dist, goal_r, goal_d, n_obs = (a[take] for a in self._pool)
        self._goal_r[idx] = goal_r
        if self.parameter is not None:
            for name, values in (("goal_distance", goal_d), ("goal_radius", goal_r), ("num_obstacles", n_obs)):
                self.episode_params.setdefault(name, np.zeros(self.n, np.float32))[idx] = values
        self.obstacles[idx] = obstacles
        self.obstacle_r[idx] = rad
        self._hit_r2[idx] = np.square(rad + self.p.agent_radius)
        self.pos[idx] = pos
        self.vel[idx] = 0.0
        self.goals[idx] = goals
        self._goal[idx] = goals[:, 0]
        self.goal_idx[idx] = 0
        self.steps[idx] = 0
        self.episode_return[idx] = 0.0
        self.prev_dist[idx] = dist
        self._uv[idx] = uv
        return obs

    # ------------------------------------------------------------------ geometry
    def _goal_frame(self, pos: np.ndarray, goal: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """((u, v) [N, 4], distance to the goal [N])."""
        delta = goal - pos
        dist = np.hypot(delta[:, 0], delta[:, 1])
        delta /= np.maximum(dist, 1e-6)[:, None]
        return delta[:, self._UV] * self._UV_SIGN, dist

    def _rays(self, pos: np.ndarray, uv: np.ndarray, obstacles: np.ndarray, radii: np.ndarray) -> np.ndarray:
        """Distance along each ray to the first wall or obstacle, over ray_length, [N, R]."""
        p, R = self.p, self.n_rays
        d = uv @ self._ray_basis  # [N, 2R]: the rays' x components, then their y components
        with np.errstate(divide="ignore", invalid="ignore"):
            # each axis' distance to the wall the ray heads for (a zero component gives +inf); the nearer one
            t = (np.copysign(p.arena_half_size, d) - np.repeat(pos, R, axis=1)) / d
            t = np.minimum(t[:, :R], t[:, R:])
            if p.num_obstacles:
                m = pos[:, None, :] - obstacles  # [N, K, 2]: origin - centre
                b = np.matmul(m, d.reshape(-1, 2, R))  # [N, K, R]: projection of (origin - centre) on each ray
                c = np.einsum("nkj,nkj->nk", m, m) - radii * radii  # inside the obstacle where < 0
                hit = -b - np.sqrt(b * b - c[:, :, None])  # NaN where the ray's line misses the circle
                hit = np.where(hit >= -1e-6, hit, np.inf)  # misses, and circles behind the origin
                inside = c < 0
                if inside.any():
                    hit[inside] = 0.0
                t = np.minimum(t, hit.min(axis=1))
        return np.minimum(np.maximum(t, 0.0), p.ray_length) * np.float32(1.0 / p.ray_length)

    def _observe(self, pos: np.ndarray, vel: np.ndarray, goal: np.ndarray, goal_idx: np.ndarray,
                 obstacles: np.ndarray, radii: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(observations, goal frames (u, v), distances to the goal) of agents in the given state."""
        uv, dist = self._goal_frame(pos, goal)
        out = np.empty((len(pos), self.definition.observation_size), np.float32)
        state = ObservationState(pos, vel, goal, goal_idx, self.n_way, uv, dist, self.p,
                                 lambda: self._rays(pos, uv, obstacles, radii))
        for key, sl in self._slices.items():
            out[:, sl] = KINDS[key].compute(state, sl.stop - sl.start)  # observations.py: each kind, once
        return out, uv, dist

    def observe(self, idx: np.ndarray | None = None) -> np.ndarray:
        """Observations of all agents, or of the agents `idx`. Also keeps their goal frame, in which the next
        actions are applied."""
        rows = self._all if idx is None else idx
        obs, uv, _ = self._observe(self.pos[rows], self.vel[rows], self.goals[rows, self.goal_idx[rows]],
                                   self.goal_idx[rows], self.obstacles[rows], self.obstacle_r[rows])
        self._uv[rows] = uv
        return obs

    # ------------------------------------------------------------------ dynamics
    def _acceleration(self, actions: np.ndarray) -> np.ndarray:
        """Map actions to acceleration in the goal frame, [N, 2] in [-1, 1]."""
        a = self.definition.action
        if a.is_continuous:
            acc = np.asarray(actions, np.float32).reshape(self.n, -1)[:, :2]
            return np.minimum(np.maximum(acc, -1.0), 1.0)
        acts = np.asarray(actions).reshape(self.n, -1).astype(np.int64)
        if a.branches == (5,):
            return _DISCRETE5[np.clip(acts[:, 0], 0, 4)]
        return np.stack([_DISCRETE3[np.clip(acts[:, 0], 0, 2)], _DISCRETE3[np.clip(acts[:, 1], 0, 2)]], axis=1)

    def step(self, actions: np.ndarray, discrete: np.ndarray | None = None) -> StepResult:
        """Apply `actions` (in each agent's goal frame, as last observed) for one `dt`. A hybrid behaviour's
        `discrete` branch is a boost: 1 raises the speed limit by half for the step."""
        p = self.p
        acc = self._acceleration(actions)
        acc_world = np.matmul(acc[:, None, :], self._uv.reshape(-1, 2, 2))[:, 0]  # acc_u * u + acc_v * v
        vel = self.vel * p.damping + acc_world * (p.acceleration * p.dt)
        speed = np.hypot(vel[:, 0], vel[:, 1])
        limit = p.max_speed if discrete is None else \
            np.where(np.asarray(discrete).reshape(self.n, -1)[:, 0] == 1, 1.5 * p.max_speed, p.max_speed)
        vel *= (limit / np.maximum(speed, limit))[:, None]  # cap the speed
        pos = self.pos + vel * p.dt
        lim = p.arena_half_size - p.agent_radius
        inside = np.abs(pos) <= lim
        pos = np.minimum(np.maximum(pos, -lim), lim)
        vel *= inside  # stopped by the wall it hit
        self.pos, self.vel = pos.astype(np.float32, copy=False), vel.astype(np.float32, copy=False)
        self.steps += 1

        reward = np.full(self.n, p.step_penalty, np.float32)
        collision = self._no
        if p.num_obstacles:
            m = self.pos[:, None, :] - self.obstacles
            collision = (np.einsum("nkj,nkj->nk", m, m) < self._hit_r2).any(axis=1)
        delta = self._goal - self.pos
        dist = np.hypot(delta[:, 0], delta[:, 1])
        reward += p.shaping_per_metre * (self.prev_dist - dist)
        reached = (dist < self._goal_r) & ~collision
        if reached.any():
            last = self.goal_idx >= self.n_way - 1
            success = reached & last
            waypoint = reached & ~last
            if waypoint.any():
                reward[waypoint] += p.waypoint_reward
                self.goal_idx[waypoint] += 1
                self._goal[waypoint] = self.goals[waypoint, self.goal_idx[waypoint]]
                delta = self._goal - self.pos
                dist = np.hypot(delta[:, 0], delta[:, 1])
            reward[success] += p.success_reward
        else:
            success = self._no
        if collision is not self._no:
            reward[collision] += p.collision_penalty
        self.prev_dist = dist.astype(np.float32, copy=False)
        terminal = success | collision
        interrupted = (self.steps >= p.max_steps) & ~terminal
        done = terminal | interrupted
        self.episode_return += reward
        obs, self._uv, _ = self._observe(self.pos, self.vel, self._goal, self.goal_idx, self.obstacles,
                                         self.obstacle_r)
        return StepResult(obs, reward, done, interrupted, success, collision)


FAR = 1.0e4  # where obstacles a lesson leaves out are parked


class NullSimulator:
    """Constant observations and zero reward: the ceiling for measuring the player's own cost."""

    def __init__(self, definition: BehaviorDefinition, num_agents: int, seed: int = 0) -> None:
        self.definition = definition
        self.n = num_agents
        self.steps = np.zeros(num_agents, np.int64)
        self._obs = np.full((num_agents, definition.observation_size), 0.5, np.float32)
        self._zeros = np.zeros(num_agents, bool)

    def reset(self, mask: np.ndarray) -> np.ndarray:
        self.steps[mask] = 0
        return self._obs

    def reset_done(self, done: np.ndarray, obs: np.ndarray | None = None) -> np.ndarray:
        return self.reset(done)

    def step(self, actions: np.ndarray) -> StepResult:
        self.steps += 1
        done = self.steps >= self.definition.params.max_steps
        return StepResult(self._obs, np.zeros(self.n, np.float32), done, done, self._zeros, self._zeros)
