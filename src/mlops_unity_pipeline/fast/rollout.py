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
    """Steps `num_agents` simulated agents with the current policy; keeps episodes running across updates.

    The loop does per step only what depends on the step (policy, simulator, stores): the Gaussian noise is drawn
    for the whole rollout at once, and log-probabilities, reward scaling and the trajectory cuts are computed over
    the whole buffer after it."""

    def __init__(self, definition: BehaviorDefinition, num_agents: int, steps: int, *, horizon: int,
                 reward_scale: float, seed: int) -> None:
        self.d, self.n, self.T, self.horizon, self.scale = definition, num_agents, steps, horizon, reward_scale
        self.sim = Simulator(definition, num_agents, seed)
        self.rng = np.random.default_rng(seed)
        self.obs = self.sim.observe()
        self.episodes = EpisodeLog()
        a, o = definition.action, definition.observation_size
        width = a.continuous or len(a.branches)
        shape = (steps, num_agents)
        self.buf = Rollout(np.empty((*shape, o), np.float32), np.empty((*shape, width), np.float32),
                           np.empty(shape, np.float32), np.empty(shape, np.float32), np.empty(shape, bool),
                           np.empty(shape, bool), np.zeros((*shape, o), np.float32))
        self._done, self._interrupted = np.empty(shape, bool), np.empty(shape, bool)
        # steps after which every agent's trajectory is cut: each time horizon, and the end of the buffer
        self._horizon_cut = np.zeros(steps, bool)
        self._horizon_cut[horizon - 1::horizon] = True
        self._horizon_cut[-1] = True

    def collect(self, policy: NumpyActor) -> Rollout:
        a, buf, sim, episodes = self.d.action, self.buf, self.sim, self.episodes
        if a.is_continuous:
            noise = self.rng.standard_normal(buf.actions.shape, np.float32)
            np.multiply(noise, policy.std, out=buf.actions)  # the policy's means are added step by step
        obs = self.obs
        for t in range(self.T):
            buf.obs[t] = obs
            out = policy(obs)
            if a.is_continuous:
                act = buf.actions[t]
                act += out
                # ML-Agents clips sampled actions to [-3, 3] and divides by 3
                res = sim.step(np.minimum(np.maximum(act, -3.0), 3.0) * (1.0 / 3.0))
            else:
                buf.actions[t], buf.logp[t] = sample_branches(out, a.branches, self.rng)
                res = sim.step(buf.actions[t])
            buf.rewards[t] = res.reward
            self._done[t], self._interrupted[t] = res.done, res.interrupted
            if self._horizon_cut[t]:
                buf.next_obs[t] = res.obs
            if res.done.any():
                idx = np.flatnonzero(res.done)
                buf.next_obs[t, idx] = res.obs[idx]  # terminal observations (used where the episode was interrupted)
                episodes.returns.extend(sim.episode_return[idx].tolist())
                episodes.lengths.extend(sim.steps[idx].tolist())
                obs = sim.reset_done(res.done, res.obs)
            else:
                obs = res.obs
        self.obs = obs
        if a.is_continuous:
            logp_const = float(np.log(policy.std).sum()) + len(policy.std) * HALF_LOG_2PI
            np.einsum("tnk,tnk->tn", noise, noise, out=buf.logp)
            buf.logp *= -0.5
            buf.logp -= logp_const
        if self.scale != 1.0:
            buf.rewards *= self.scale
        np.logical_or(self._done, self._horizon_cut[:, None], out=buf.cut)
        # the value continues (is bootstrapped) at every cut but a true terminal
        np.logical_and(buf.cut, ~(self._done & ~self._interrupted), out=buf.boot)
        return buf


def gae(rewards: np.ndarray, values: np.ndarray, next_values: np.ndarray, cut: np.ndarray, gamma: float,
        lam: float) -> np.ndarray:
    """Generalized advantage estimates [T, N], the chain cut where `cut` (bootstrapped by `next_values` there).
    Only the recursion runs per step; the TD errors are computed over the whole buffer first."""
    following = np.empty_like(values)
    following[:-1] = values[1:]
    following[-1] = next_values[-1]
    following = np.where(cut, next_values, following)
    delta = rewards + gamma * following - values
    carry = np.where(cut, np.float32(0.0), np.float32(gamma * lam))  # the discount through each step; 0 at a cut
    adv = np.empty_like(rewards)
    last = np.zeros(rewards.shape[1], np.float32)
    for t in range(len(rewards) - 1, -1, -1):
        np.multiply(carry[t], last, out=last)
        np.add(delta[t], last, out=adv[t])
        last[:] = adv[t]
    return adv
