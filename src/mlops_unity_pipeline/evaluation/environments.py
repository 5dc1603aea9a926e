"""Where a policy is judged: one interface, two implementations.

* `SimulatorEnvironment`: the built-in behaviours' simulator, in this process (fast: one episode per simulated
  arena, all stepped together).
* `BuildEnvironment` (`build_env.py`): any executable that speaks ML-Agents' protocol (the headless player or a
  team's own Unity build), driven through ML-Agents' own `UnityEnvironment` in the trainer environment.

Both return `EpisodeOutcomes` per behaviour, so the report, the gates, sweeps and the dashboard do not care which
one ran; `describe()` says which did (kind, path, digest), for the record.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

import numpy as np

from ..behavior.definition import BehaviorDefinition
from ..behavior.worlds import make_task
from .onnx_policy import PolicySpec
from .outcomes import EpisodeOutcomes, digest_rows
from .policies import Policy, RandomPolicy

Progress = Callable[[int, int], None]  # (episodes done, episodes wanted)


class EvaluationEnvironment(Protocol):
    kind: str  # "simulator" | "headless-player" | "unity"

    def specs(self) -> dict[str, PolicySpec]:
        """Every behaviour of the environment (by name, without `?team=`) and what it observes and does."""
        ...

    def describe(self) -> dict: ...

    def close(self) -> None:
        """Stop whatever the environment started (processes of a build); it may be run again afterwards."""
        ...

    def run(self, policies: dict[str, Policy], episodes: int, seed: int, progress: Progress | None = None,
            paired: bool = False) -> dict[str, EpisodeOutcomes]:
        """Play `episodes` episodes of each behaviour in `policies` (others act at random) from `seed`; `paired`
        asks for the same episode starts whatever the policy (the simulator always gives them)."""
        ...


class SimulatorEnvironment:
    kind = "simulator"

    def __init__(self, definition: BehaviorDefinition) -> None:
        self.definition = definition

    def specs(self) -> dict[str, PolicySpec]:
        return {self.definition.behavior_name: PolicySpec.of(self.definition)}

    def describe(self) -> dict:
        return {"kind": self.kind, "archetype": self.definition.archetype,
                "behavior": self.definition.behavior_name}

    def close(self) -> None:
        pass

    def run(self, policies: dict[str, Policy], episodes: int, seed: int, progress: Progress | None = None,
            paired: bool = False) -> dict[str, EpisodeOutcomes]:
        name = self.definition.behavior_name
        return {name: run_simulator(policies[name], self.definition, episodes, seed, progress)}


def run_simulator(policy: Policy, definition: BehaviorDefinition, episodes: int, seed: int,
                  progress: Progress | None = None) -> EpisodeOutcomes:
    """Exactly `episodes` episodes: each agent's first episode in the world of `seed` (`behavior.tasks`), all
    stepped together; agent i's episode is the same start whatever the policy. Other teams (a duel's opponents)
    act at random."""
    if episodes <= 0:
        raise ValueError("episodes must be > 0")
    t0 = time.perf_counter()
    per_arena = max(1, definition.params.group_size)
    task = make_task(definition, -(-episodes // per_arena), seed)
    obs = task.reset()
    spec = task.slots[0]
    n = spec.agents
    others = [RandomPolicy(PolicySpec(tuple(s.shape for s in o.sensors), o.continuous, o.branches), seed + k)
              for k, o in enumerate(task.slots[1:], 1)]
    keys = np.int64(seed) * 1_000_000 + np.arange(n, dtype=np.int64)
    digests = digest_rows(obs[0])
    active = np.ones(n, bool)
    returns = np.zeros(n, np.float64)
    lengths = np.zeros(n, np.int64)
    success, collision, timeout = np.zeros(n, bool), np.zeros(n, bool), np.zeros(n, bool)
    steps = 0
    for _ in range(definition.params.max_steps):
        outs = [policy.act(obs[0], None, keys)] + [p.act(o, None, keys) for p, o in zip(others, obs[1:],
                                                                                         strict=True)]
        frames = task.step([(o.continuous, o.discrete) for o in outs])
        f = frames[0]
        steps += int(active.sum())
        returns[active] += (f.reward + f.group_reward)[active]
        lengths[active] += 1
        newly = f.done & active
        success |= f.success & newly
        collision |= f.collision & newly
        timeout |= f.interrupted & newly
        if newly.any():
            policy.end(keys[newly])
            if progress:
                progress(min(episodes, int((~active | newly).sum())), episodes)
        active &= ~f.done
        if not active.any():
            break
        obs = [fr.obs for fr in frames]  # finished episodes keep stepping (not restarted) but no longer count
    out = EpisodeOutcomes(returns, lengths, success, collision, timeout, keys, digests, steps=steps,
                          seconds=time.perf_counter() - t0)
    return out.take(episodes)
