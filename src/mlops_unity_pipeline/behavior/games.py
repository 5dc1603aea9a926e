"""The games of several agents and the memory task, vectorized over arenas (numpy only; runs in the trainer
environment too). Each is what an ML-Agents feature needs to be exercised for real:

* `DuelTask` (self-play): two teams, one agent each per arena, race for one flag; the first there wins (+1) and the
  other loses (-1); they block each other on contact. One behaviour, two teams (`Name?team=0`, `Name?team=1`).
* `PadsTask` (MA-POCA): a group of two agents per arena must hold both pads at the same time; only the group is
  rewarded (+1 group reward) and both episodes end together.
* `CorridorTask` (memory): a cue shows which of two goals is right during the first steps only, in a corridor too
  narrow to turn the cue into a position; the choice comes later. A feed-forward policy can be right half the
  time; a recurrent one every time.
"""

from __future__ import annotations

import numpy as np

from .definition import BehaviorDefinition
from .tasks import SlotFrame, SlotSpec, Task, frame, sensors_of

_DIAG = 2.0 * np.sqrt(2.0)


def _move(pos: np.ndarray, vel: np.ndarray, acc: np.ndarray, p) -> tuple[np.ndarray, np.ndarray]:
    """One `dt` of the arenas' kinematics (damping, acceleration, speed cap, walls), for [..., 2] arrays; `acc` in
    world axes, already clamped as the C# Agent clamps its actions."""
    vel = vel * p.damping + acc * (p.acceleration * p.dt)
    speed = np.linalg.norm(vel, axis=-1, keepdims=True)
    vel = vel * (p.max_speed / np.maximum(speed, p.max_speed))
    pos = pos + vel * p.dt
    lim = p.arena_half_size - p.agent_radius
    vel = np.where(np.abs(pos) > lim, 0.0, vel)
    return np.clip(pos, -lim, lim).astype(np.float32), vel.astype(np.float32)


def _frame_of(direction: np.ndarray) -> np.ndarray:
    """Unit u towards a direction and v = u turned left, as [..., 2, 2] (rows u, v)."""
    u = direction / np.maximum(np.linalg.norm(direction, axis=-1, keepdims=True), 1e-6)
    v = np.stack([-u[..., 1], u[..., 0]], axis=-1)
    return np.stack([u, v], axis=-2)


class DuelTask(Task):
    def __init__(self, definition: BehaviorDefinition, arenas: int, seed: int = 0) -> None:
        self.d, self.p, self.n = definition, definition.params, arenas
        self.rng = np.random.default_rng(seed)
        sensors = sensors_of(definition)
        a = definition.action
        self.slots = [SlotSpec(definition.behavior_name, team, arenas, sensors, a.continuous, a.branches)
                      for team in (0, 1)]
        self.pos = np.zeros((arenas, 2, 2), np.float32)
        self.vel = np.zeros_like(self.pos)
        self.flag = np.zeros((arenas, 2), np.float32)
        self.steps = np.zeros(arenas, np.int64)
        self.prev = np.zeros((arenas, 2), np.float32)
        self._ended = np.zeros(arenas, bool)

    def _spawn(self, idx: np.ndarray) -> None:
        k = len(idx)
        self.flag[idx] = self.rng.uniform(-1.0, 1.0, (k, 2))
        angle = self.rng.uniform(0, 2 * np.pi, k)
        dist = self.rng.uniform(2.5, 3.5, k)
        offset = np.stack([np.cos(angle), np.sin(angle)], axis=1) * dist[:, None]
        self.pos[idx, 0] = self.flag[idx] + offset  # mirror images through the flag: a fair race
        self.pos[idx, 1] = self.flag[idx] - offset
        self.vel[idx] = 0.0
        self.steps[idx] = 0
        self.prev[idx] = np.linalg.norm(self.pos[idx] - self.flag[idx][:, None], axis=-1)

    def _observe(self) -> list[list[np.ndarray]]:
        out = []
        for team in (0, 1):
            me, other = self.pos[:, team], self.pos[:, 1 - team]
            to_flag = self.flag - me
            dist = np.linalg.norm(to_flag, axis=-1)
            uv = _frame_of(to_flag)
            rel = np.einsum("nij,nj->ni", uv, other - me) / (_DIAG * self.p.arena_half_size)
            obs = np.concatenate([
                np.stack([dist / (_DIAG * self.p.arena_half_size), np.exp(-dist)], axis=1),
                np.einsum("nij,nj->ni", uv, self.vel[:, team]) / self.p.max_speed,
                rel, np.einsum("nij,nj->ni", uv, self.vel[:, 1 - team]) / self.p.max_speed,
            ], axis=1).astype(np.float32)
            out.append([obs])
        return out

    def reset(self) -> list[list[np.ndarray]]:
        self._spawn(np.arange(self.n))
        return self._observe()

    def step(self, actions: list[tuple[np.ndarray, np.ndarray]]) -> list[SlotFrame]:
        """As Unity steps the generated agents: team 0 moves, then team 1 (each blocked by where the other is
        now), then the arena looks at the flag: the first alone there wins, both there at once both lose."""
        p = self.p
        reward = np.empty((self.n, 2), np.float32)
        for t in (0, 1):
            act = np.clip(np.asarray(actions[t][0], np.float32)[:, :2], -1.0, 1.0)
            acc = np.einsum("nij,ni->nj", _frame_of(self.flag - self.pos[:, t]), act)  # au * u + av * v
            pos, vel = _move(self.pos[:, t], self.vel[:, t], acc, p)
            gap = pos - self.pos[:, 1 - t]
            norm = np.linalg.norm(gap, axis=-1)
            touching = norm < 2 * p.agent_radius
            if touching.any():  # blocked: pushed back to touching distance, both stopped
                push = gap[touching] / np.where(norm[touching] > 1e-5, norm[touching], np.inf)[:, None]
                pos[touching] = self.pos[touching, 1 - t] + push * (2 * p.agent_radius)
                vel[touching] = 0.0
                self.vel[touching, 1 - t] = 0.0
            self.pos[:, t], self.vel[:, t] = pos, vel
            dist = np.linalg.norm(pos - self.flag, axis=-1)
            reward[:, t] = p.step_penalty + p.shaping_per_metre * (self.prev[:, t] - dist)
            self.prev[:, t] = dist
        self.steps += 1
        there = self.prev < p.goal_radius
        won = there & ~there[:, ::-1]  # first alone at the flag
        decided = there.any(axis=1)
        reward = reward + np.where(won, p.success_reward, np.where(decided[:, None] & ~won, -p.success_reward, 0.0))
        interrupted = (self.steps >= p.max_steps) & ~decided
        done = decided | interrupted
        self._ended = done
        obs = self._observe()
        return [frame(self.n, obs[t], reward[:, t], done, interrupted, won[:, t]) for t in (0, 1)]

    def restart(self, frames: list[SlotFrame]) -> list[list[np.ndarray]]:
        if self._ended.any():
            self._spawn(np.flatnonzero(self._ended))
        return self._observe()


class PadsTask(Task):
    PAD_RADIUS = 1.0
    # the group's only shaping: +HOLD_REWARD when a pad becomes held, - when it is let go (potential-based, so
    # loitering on one pad earns nothing; only holding both, the success, pays)
    HOLD_REWARD = 0.1

    def set_parameters(self, get) -> None:
        self.parameter = get

    def __init__(self, definition: BehaviorDefinition, groups: int, seed: int = 0) -> None:
        self.parameter = None
        self.radius = np.full(groups, self.PAD_RADIUS, np.float32)
        self.d, self.p, self.n = definition, definition.params, groups
        self.rng = np.random.default_rng(seed)
        a = definition.action
        self.slots = [SlotSpec(definition.behavior_name, 0, 2 * groups, sensors_of(definition), a.continuous,
                               a.branches)]
        self.pos = np.zeros((groups, 2, 2), np.float32)
        self.vel = np.zeros_like(self.pos)
        self.pads = np.zeros((groups, 2, 2), np.float32)
        self.steps = np.zeros(groups, np.int64)
        self.held = np.zeros(groups, np.int64)
        self._ended = np.zeros(groups, bool)
        self.group_id = np.repeat(np.arange(1, groups + 1), 2)  # a SimpleMultiAgentGroup per arena, for good

    def _spawn(self, idx: np.ndarray) -> None:
        k, lim = len(idx), self.p.arena_half_size - 1.0
        pads = self.rng.uniform(-lim, lim, (k, 2, 2)).astype(np.float32)
        for _ in range(64):
            close = np.linalg.norm(pads[:, 0] - pads[:, 1], axis=-1) < 4.0
            if not close.any():
                break
            pads[close, 1] = self.rng.uniform(-lim, lim, (int(close.sum()), 2))
        self.pads[idx] = pads
        self.pos[idx] = self.rng.uniform(-lim, lim, (k, 2, 2))
        self.vel[idx] = 0.0
        self.steps[idx] = 0
        get = self.parameter  # a curriculum can start with wide pads
        self.radius[idx] = [get("pad_radius", self.PAD_RADIUS) if get else self.PAD_RADIUS for _ in range(k)]
        self.held[idx] = self._occupied()[idx].any(axis=1).sum(axis=1)

    def _occupied(self) -> np.ndarray:
        """[n, 2 agents, 2 pads]: agent on pad."""
        return np.linalg.norm(self.pos[:, :, None] - self.pads[:, None], axis=-1) < self.radius[:, None, None]

    def _observe(self) -> list[list[np.ndarray]]:
        h = self.p.arena_half_size
        on = self._occupied()
        held = on.any(axis=1).astype(np.float32)  # [n, 2 pads]
        rows = []
        for i in (0, 1):
            me = self.pos[:, i]
            rows.append(np.concatenate([self.vel[:, i] / self.p.max_speed,
                                        ((self.pads - me[:, None]) / h).reshape(self.n, 4),
                                        (self.pos[:, 1 - i] - me) / h, held], axis=1))
        return [[np.stack(rows, axis=1).reshape(2 * self.n, -1).astype(np.float32)]]

    def reset(self) -> list[list[np.ndarray]]:
        self._spawn(np.arange(self.n))
        return self._observe()

    def step(self, actions: list[tuple[np.ndarray, np.ndarray]]) -> list[SlotFrame]:
        p = self.p
        acc = np.clip(np.asarray(actions[0][0], np.float32)[:, :2], -1.0, 1.0).reshape(self.n, 2, 2)
        self.pos, self.vel = _move(self.pos, self.vel, acc, p)
        self.steps += 1
        on = self._occupied()
        success = (on[:, 0, 0] & on[:, 1, 1]) | (on[:, 0, 1] & on[:, 1, 0])  # both pads held, one each
        interrupted = (self.steps >= p.max_steps) & ~success
        done = success | interrupted
        self._ended = done
        twice = lambda x: np.repeat(x, 2)  # noqa: E731 (per group -> per agent)
        f = frame(2 * self.n, self._observe()[0], np.full(2 * self.n, p.step_penalty, np.float32), twice(done),
                  twice(interrupted), twice(success))
        f.group_id = self.group_id.copy()
        held = on.any(axis=1).sum(axis=1)  # pads held now
        shaping = (held - self.held) * self.HOLD_REWARD
        self.held = held
        f.group_reward = twice(np.where(success, p.success_reward, shaping)).astype(np.float32)
        return [f]

    def restart(self, frames: list[SlotFrame]) -> list[list[np.ndarray]]:
        if self._ended.any():
            self._spawn(np.flatnonzero(self._ended))
        return self._observe()


class CorridorTask(Task):
    # short enough that cue and choice fit in one LSTM sequence (ML-Agents back-propagates within sequence_length)
    START_Y, JUNCTION_Y, GOAL_Y, GOAL_X, HALF_WIDTH, GOAL_RADIUS = -2.0, 1.0, 3.0, 2.5, 0.5, 0.75

    def __init__(self, definition: BehaviorDefinition, agents: int, seed: int = 0) -> None:
        self.d, self.p, self.n = definition, definition.params, agents
        self.rng = np.random.default_rng(seed)
        a = definition.action
        self.slots = [SlotSpec(definition.behavior_name, 0, agents, sensors_of(definition), a.continuous,
                               a.branches)]
        self.pos = np.zeros((agents, 2), np.float32)
        self.vel = np.zeros_like(self.pos)
        self.cue = np.zeros(agents, np.int64)
        self.steps = np.zeros(agents, np.int64)
        self._ended = np.zeros(agents, bool)

    def _spawn(self, idx: np.ndarray) -> None:
        self.pos[idx] = (0.0, self.START_Y)
        self.vel[idx] = 0.0
        self.cue[idx] = self.rng.integers(0, 2, len(idx))
        self.steps[idx] = 0

    def _observe(self) -> list[list[np.ndarray]]:
        shown = (self.steps < self.p.cue_steps)[:, None]
        cue = np.eye(2, dtype=np.float32)[self.cue] * shown
        return [[np.concatenate([cue, self.pos / self.p.arena_half_size, self.vel / self.p.max_speed],
                                axis=1).astype(np.float32)]]

    def reset(self) -> list[list[np.ndarray]]:
        self._spawn(np.arange(self.n))
        return self._observe()

    def step(self, actions: list[tuple[np.ndarray, np.ndarray]]) -> list[SlotFrame]:
        p = self.p
        before = self.pos[:, 1].copy()
        self.pos, self.vel = _move(self.pos, self.vel, np.clip(np.asarray(actions[0][0], np.float32)[:, :2], -1, 1), p)
        inside = self.pos[:, 1] < self.JUNCTION_Y  # the corridor's walls
        hit = inside & (np.abs(self.pos[:, 0]) > self.HALF_WIDTH)
        self.pos[inside, 0] = np.clip(self.pos[inside, 0], -self.HALF_WIDTH, self.HALF_WIDTH)
        self.vel[hit, 0] = 0.0
        self.steps += 1
        progress = np.minimum(self.pos[:, 1], self.JUNCTION_Y) - np.minimum(before, self.JUNCTION_Y)
        reward = p.step_penalty + p.shaping_per_metre * progress
        goals = np.array([[-self.GOAL_X, self.GOAL_Y], [self.GOAL_X, self.GOAL_Y]], np.float32)
        at = np.linalg.norm(self.pos[:, None] - goals[None], axis=-1) < self.GOAL_RADIUS  # [n, 2]
        right = at[np.arange(self.n), self.cue]
        wrong = at[np.arange(self.n), 1 - self.cue] & ~right
        reward = reward + np.where(right, p.success_reward, 0.0)  # the wrong goal ends it with nothing (a T-maze)
        interrupted = (self.steps >= p.max_steps) & ~(right | wrong)
        done = right | wrong | interrupted
        self._ended = done
        return [frame(self.n, self._observe()[0], reward, done, interrupted, right)]

    def restart(self, frames: list[SlotFrame]) -> list[list[np.ndarray]]:
        if self._ended.any():
            self._spawn(np.flatnonzero(self._ended))
        return self._observe()
