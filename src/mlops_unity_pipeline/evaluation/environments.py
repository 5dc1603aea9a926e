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
from ..behavior.simulator import Simulator
from .onnx_policy import PolicySpec
from .outcomes import EpisodeOutcomes, digest_rows
from .policies import Policy

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
    """Exactly `episodes` episodes, one per simulated arena, stepped together; episode i is arena i of `seed`."""
    if episodes <= 0:
        raise ValueError("episodes must be > 0")
    t0 = time.perf_counter()
    sim = Simulator(definition, episodes, seed)
    obs = sim.observe()
    keys = np.int64(seed) * 1_000_000 + np.arange(episodes, dtype=np.int64)
    digests = digest_rows([obs])
    active = np.ones(episodes, bool)
    returns = np.zeros(episodes, np.float64)
    lengths = np.zeros(episodes, np.int64)
    success = np.zeros(episodes, bool)
    collision = np.zeros(episodes, bool)
    timeout = np.zeros(episodes, bool)
    steps = 0
    for _ in range(definition.params.max_steps):
        out = policy.act([obs], None, keys)
        res = sim.step(out.continuous if definition.action.is_continuous else out.discrete)
        steps += int(active.sum())
        returns[active] += res.reward[active]
        lengths[active] += 1
        newly = res.done & active
        success |= res.success & newly
        collision |= res.collision & newly
        timeout |= res.interrupted & newly
        if newly.any():
            policy.end(keys[newly])
            if progress:
                progress(int((~active | newly).sum()), episodes)
        active &= ~res.done
        if not active.any():
            break
        obs = res.obs  # finished arenas keep stepping (not reset) but are no longer counted
    return EpisodeOutcomes(returns, lengths, success, collision, timeout, keys, digests, steps=steps,
                           seconds=time.perf_counter() - t0)
