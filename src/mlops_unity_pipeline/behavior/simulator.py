"""NumPy-vectorized simulator of a `BehaviorDefinition`: N agents, each in its own arena, stepped in one call.

Works with numpy 1.23 (trainer environment) and 2.x (product environment); no per-agent Python loops.
Each agent's episode is independent: `step` reports terminal observations, and `reset_done` starts new episodes
for the agents that finished, so the player can report both in one message, as Unity does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .definition import BehaviorDefinition

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
    """The built-in behaviors' physics, rewards and observations."""

    _POOL = 256  # episode layouts sampled per batch

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
        self._slices = definition.observation_slices()
        ray = self._slices.get("raycast")
        self.n_rays = 0 if ray is None else ray.stop - ray.start
        angles = 2.0 * np.pi * np.arange(self.n_rays) / max(1, self.n_rays)
        self._ray_cos = np.cos(angles).astype(np.float32)
        self._ray_sin = np.sin(angles).astype(np.float32)
        self._all = np.arange(n)
        self._no = np.zeros(n, bool)  # read-only "nobody" mask
        self._no.flags.writeable = False
        self._u = self._v = np.zeros((n, 2), np.float32)
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
        rows are recomputed: with many agents an episode ends on almost every step."""
        idx = np.flatnonzero(done)
        if obs is None or not idx.size:
            return self.reset(done)
        self._spawn(idx)
        out = obs.copy()
        out[idx] = self.observe(idx)
        return out

    def _uniform(self, shape: tuple[int, ...], margin: float) -> np.ndarray:
        lim = self.p.arena_half_size - margin
        return self.rng.uniform(-lim, lim, size=(*shape, 2)).astype(np.float32)

    def _sample_layouts(self, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """k episode layouts (start [k,2], goals [k,W,2], obstacles [k,K,2], radii [k,K]) by rejection sampling:
        each goal at least min_start_distance from the previous point, obstacles clear of the start and goals."""
        p = self.p
        margin = p.agent_radius + 0.2
        pos = self._uniform((k,), margin)
        goals = np.empty((k, self.n_way, 2), np.float32)
        prev = pos
        for w in range(self.n_way):  # waypoints (<= 3) depend on the previous one; vectorized over layouts
            g = self._uniform((k,), margin)
            for _ in range(64):
                bad = np.hypot(*(g - prev).T) < p.min_start_distance
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
        return pos, goals, obstacles, rad

    def _spawn(self, idx: np.ndarray) -> None:
        """New episode layouts for the agents `idx`, drawn from a pool sampled in batches: with many agents a few
        episodes end on most steps, and sampling them one small batch at a time cost more than the physics."""
        k = idx.size
        if self._pool_next + k > len(self._pool[0]):
            rest = [a[self._pool_next:] for a in self._pool]
            fresh = self._sample_layouts(max(self._POOL, k))
            self._pool = tuple(np.concatenate([r, f]) for r, f in zip(rest, fresh, strict=True))
            self._pool_next = 0
        take = slice(self._pool_next, self._pool_next + k)
        self._pool_next += k
        pos, goals, obstacles, rad = (a[take] for a in self._pool)
        self.obstacles[idx] = obstacles
        self.obstacle_r[idx] = rad
        self.pos[idx] = pos
        self.vel[idx] = 0.0
        self.goals[idx] = goals
        self.goal_idx[idx] = 0
        self.steps[idx] = 0
        self.episode_return[idx] = 0.0
        self.prev_dist[idx] = np.hypot(*(goals[:, 0] - pos).T)

    # ------------------------------------------------------------------ geometry
    def _frame(self, idx: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The goal frame of the agents (all, or `idx`): u points at the current goal, v is u turned left."""
        rows = self._all if idx is None else idx
        delta = self.goals[rows, self.goal_idx[rows]] - self.pos[rows]
        dist = np.hypot(delta[:, 0], delta[:, 1])
        u = delta / np.maximum(dist, 1e-6)[:, None]
        v = np.empty_like(u)
        v[:, 0], v[:, 1] = -u[:, 1], u[:, 0]
        return u, v, dist

    def _rays(self, u: np.ndarray, v: np.ndarray, idx: np.ndarray | None = None) -> np.ndarray:
        """Distance along each ray to the first wall or obstacle, over ray_length, [N, R]. Arrays are laid out
        with the short axes (x/y, obstacles) first: NumPy reduces over a short last axis slowly."""
        p = self.p
        pos = self.pos if idx is None else self.pos[idx]
        px, py = pos[:, 0:1], pos[:, 1:2]
        dx = u[:, 0:1] * self._ray_cos + v[:, 0:1] * self._ray_sin  # [N, R] ray directions
        dy = u[:, 1:2] * self._ray_cos + v[:, 1:2] * self._ray_sin
        with np.errstate(divide="ignore", invalid="ignore"):
            # each axis' distance to the wall the ray heads for (a zero component gives +inf)
            half = p.arena_half_size
            t = np.minimum((np.copysign(half, dx) - px) / dx, (np.copysign(half, dy) - py) / dy)
        if p.num_obstacles:
            obstacles = self.obstacles if idx is None else self.obstacles[idx]
            radii = self.obstacle_r if idx is None else self.obstacle_r[idx]
            mx = (pos[:, 0] - obstacles[:, :, 0].T)[:, :, None]  # [K, N, 1]: origin - centre
            my = (pos[:, 1] - obstacles[:, :, 1].T)[:, :, None]
            b = dx * mx + dy * my  # [K, N, R]
            c = mx * mx + my * my - (radii.T**2)[:, :, None]  # inside the obstacle when < 0
            disc = b * b - c
            with np.errstate(invalid="ignore"):
                th = -b - np.sqrt(np.maximum(disc, 0.0))
            th = np.where((disc >= 0) & (th >= -1e-6) | (c < 0), np.maximum(th, 0.0), np.inf)
            t = np.minimum(t, th.min(axis=0))
        return np.clip(t, 0.0, p.ray_length) * np.float32(1.0 / p.ray_length)

    def observe(self, idx: np.ndarray | None = None) -> np.ndarray:
        """Observations of all agents, or of the agents `idx`. Also keeps their goal frame, in which the next
        actions are applied."""
        p = self.p
        u, v, dist = self._frame(idx)
        if idx is None:
            self._u, self._v = u, v
        else:
            self._u[idx], self._v[idx] = u, v
        vel = self.vel if idx is None else self.vel[idx]
        out = np.empty((len(u), self.definition.observation_size), np.float32)
        for key, sl in self._slices.items():
            if key == "raycast":
                out[:, sl] = self._rays(u, v, idx)
            elif key == "velocity":
                out[:, sl.start] = (vel[:, 0] * u[:, 0] + vel[:, 1] * u[:, 1]) * (1.0 / p.max_speed)
                out[:, sl.start + 1] = (vel[:, 0] * v[:, 0] + vel[:, 1] * v[:, 1]) * (1.0 / p.max_speed)
            elif key == "target":
                out[:, sl.start] = dist * (1.0 / (2.0 * np.sqrt(2.0) * p.arena_half_size))
                out[:, sl.start + 1] = np.exp(-dist)
            elif key == "position":
                out[:, sl] = (self.pos if idx is None else self.pos[idx]) * (1.0 / p.arena_half_size)
            elif key == "waypoint_progress":
                out[:, sl.start] = (self.goal_idx if idx is None else self.goal_idx[idx]) / self.n_way
        return out

    # ------------------------------------------------------------------ dynamics
    def _acceleration(self, actions: np.ndarray) -> np.ndarray:
        """Map actions to acceleration in the goal frame, [N, 2] in [-1, 1]."""
        a = self.definition.action
        if a.is_continuous:
            return np.clip(np.asarray(actions, np.float32).reshape(self.n, -1)[:, :2], -1.0, 1.0)
        acts = np.asarray(actions).reshape(self.n, -1).astype(np.int64)
        if a.branches == (5,):
            return _DISCRETE5[np.clip(acts[:, 0], 0, 4)]
        return np.stack([_DISCRETE3[np.clip(acts[:, 0], 0, 2)], _DISCRETE3[np.clip(acts[:, 1], 0, 2)]], axis=1)

    def step(self, actions: np.ndarray) -> StepResult:
        """Apply `actions` (in each agent's goal frame, as last observed) for one `dt`."""
        p = self.p
        acc = self._acceleration(actions)
        acc_world = acc[:, :1] * self._u + acc[:, 1:2] * self._v
        vel = self.vel * p.damping + acc_world * (p.acceleration * p.dt)
        speed = np.hypot(vel[:, 0], vel[:, 1])
        vel *= (p.max_speed / np.maximum(speed, p.max_speed))[:, None]  # cap the speed at max_speed
        pos = self.pos + vel * p.dt
        lim = p.arena_half_size - p.agent_radius
        hit_wall = np.abs(pos) > lim
        np.clip(pos, -lim, lim, out=pos)
        vel[hit_wall] = 0.0
        self.pos, self.vel = pos.astype(np.float32, copy=False), vel.astype(np.float32, copy=False)
        self.steps += 1

        reward = np.full(self.n, p.step_penalty, np.float32)
        collision = self._no
        if p.num_obstacles:
            gap = np.hypot(self.pos[:, 0] - self.obstacles[:, :, 0].T, self.pos[:, 1] - self.obstacles[:, :, 1].T)
            collision = (gap - self.obstacle_r.T < p.agent_radius).any(axis=0)  # [K, N] -> [N]
        delta = self.goals[self._all, self.goal_idx] - self.pos
        dist = np.hypot(delta[:, 0], delta[:, 1])
        reward += p.shaping_per_metre * (self.prev_dist - dist)
        reached = (dist < p.goal_radius) & ~collision
        if reached.any():
            last = self.goal_idx >= self.n_way - 1
            success = reached & last
            waypoint = reached & ~last
            if waypoint.any():
                reward[waypoint] += p.waypoint_reward
                self.goal_idx[waypoint] += 1
                delta = self.goals[self._all, self.goal_idx] - self.pos
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
        return StepResult(self.observe(), reward, done, interrupted, success, collision)


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
