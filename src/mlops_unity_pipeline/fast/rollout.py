"""Experience collection on the vectorized simulator, and GAE.

The actor runs in NumPy, one call per step for all agents; actions' log-probabilities are computed from the
sampled noise as the actions are drawn (as ML-Agents stores them), so no second pass over the buffer is needed.
Buffers are allocated once and refilled each update.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..behavior.definition import BehaviorDefinition
from ..behavior.simulator import Simulator
from .loss import HALF_LOG_2PI
from .network import NumpyActor


@dataclass
class Rollout:
    """T steps x N agents. The trajectory chain is cut after a step where `cut` is set (episode end, time horizon,
    end of the buffer); where `boot` is set the return is bootstrapped with the value of `next_obs`."""

    obs: np.ndarray        # [T, N, O] float32
    actions: np.ndarray    # [T, N, width] float32 (discrete branches as whole numbers)
    logp: np.ndarray       # [T, N] float32
    rewards: np.ndarray    # [T, N] float32
    cut: np.ndarray        # [T, N] bool
    boot: np.ndarray       # [T, N] bool
    next_obs: np.ndarray   # [T, N, O] float32, meaningful where `boot`


@dataclass
class EpisodeLog:
    returns: list[float] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)


def sample_branches(logits: np.ndarray, branches: tuple[int, ...], rng: np.random.Generator
                    ) -> tuple[np.ndarray, np.ndarray]:
    """(actions [N, len(branches)], summed log-probabilities [N]) from independent categorical branches."""
    out, logp, start = [], np.zeros(len(logits), np.float32), 0
    for b in branches:
        z = logits[:, start:start + b]
        z = z - z.max(1, keepdims=True)
        p = np.exp(z)
        total = p.sum(1, keepdims=True)
        u = rng.random((len(z), 1)) * total
        a = np.minimum((u > np.cumsum(p, 1)).sum(1), b - 1)
        logp += (np.take_along_axis(z, a[:, None], 1) - np.log(total))[:, 0]
        out.append(a)
        start += b
    return np.stack(out, 1).astype(np.float32), logp


class RolloutCollector:
    """Steps `num_agents` simulated agents with the current policy; keeps episodes running across updates."""

    def __init__(self, definition: BehaviorDefinition, num_agents: int, steps: int, *, horizon: int,
                 reward_scale: float, seed: int) -> None:
        self.d, self.n, self.T, self.horizon, self.scale = definition, num_agents, steps, horizon, reward_scale
        self.sim = Simulator(definition, num_agents, seed)
        self.rng = np.random.default_rng(seed)
        self.obs = self.sim.observe()
        self.ep_return, self.ep_length = np.zeros(num_agents), np.zeros(num_agents, np.int64)
        self.episodes = EpisodeLog()
        a, o = definition.action, definition.observation_size
        width = a.continuous or len(a.branches)
        shape = (steps, num_agents)
        self.buf = Rollout(np.empty((*shape, o), np.float32), np.empty((*shape, width), np.float32),
                           np.empty(shape, np.float32), np.empty(shape, np.float32), np.empty(shape, bool),
                           np.empty(shape, bool), np.zeros((*shape, o), np.float32))

    def collect(self, policy: NumpyActor) -> Rollout:
        a, buf, rng = self.d.action, self.buf, self.rng
        if a.is_continuous:
            logp_const = float(np.log(policy.std).sum()) + len(policy.std) * HALF_LOG_2PI
        obs = self.obs
        for t in range(self.T):
            out = policy(obs)
            if a.is_continuous:
                noise = rng.standard_normal(out.shape, np.float32)
                act = out + noise * policy.std
                buf.logp[t] = -0.5 * np.einsum("ij,ij->i", noise, noise) - logp_const
                res = self.sim.step(np.clip(act, -3.0, 3.0) / 3.0)  # ML-Agents clips sampled actions to [-3, 3] / 3
            else:
                act, buf.logp[t] = sample_branches(out, a.branches, rng)
                res = self.sim.step(act)
            buf.obs[t], buf.actions[t] = obs, act
            np.multiply(res.reward, self.scale, out=buf.rewards[t])
            self.ep_return += res.reward
            self.ep_length += 1
            cut = res.done | ((t + 1) % self.horizon == 0) | (t == self.T - 1)
            boot = cut & ~(res.done & ~res.interrupted)  # the value continues unless a true terminal
            buf.cut[t], buf.boot[t] = cut, boot
            if boot.any():
                buf.next_obs[t, boot] = res.obs[boot]
            if res.done.any():
                idx = np.flatnonzero(res.done)
                self.episodes.returns.extend(self.ep_return[idx].tolist())
                self.episodes.lengths.extend(self.ep_length[idx].tolist())
                self.ep_return[idx], self.ep_length[idx] = 0.0, 0
                obs = self.sim.reset_done(res.done, res.obs)
            else:
                obs = res.obs
        self.obs = obs
        return buf


def gae(rewards: np.ndarray, values: np.ndarray, next_values: np.ndarray, cut: np.ndarray, gamma: float,
        lam: float) -> np.ndarray:
    """Generalized advantage estimates [T, N], the chain cut where `cut` (bootstrapped by `next_values` there)."""
    T = len(rewards)
    adv = np.empty_like(rewards)
    last = np.zeros(rewards.shape[1], np.float32)
    for t in range(T - 1, -1, -1):
        following = next_values[t] if t == T - 1 else np.where(cut[t], next_values[t], values[t + 1])
        delta = rewards[t] + gamma * following - values[t]
        last = delta + gamma * lam * np.where(cut[t], 0.0, last)
        adv[t] = last
    return adv
