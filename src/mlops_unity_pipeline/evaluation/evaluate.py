"""Evaluate a policy on held-out episodes of the behavior simulator.

Each of the N episodes runs in its own simulated arena, all N stepped together in one batch (one onnxruntime
call per step), from a seed that training never uses. The same code evaluates a random policy as the baseline.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..behavior.definition import BehaviorDefinition
from ..behavior.simulator import Simulator

HELD_OUT_SEED = 1_000_003  # training seeds are small integers (the run seed + worker id)

Policy = Callable[[np.ndarray], np.ndarray]


@dataclass
class EvaluationReport:
    policy: str
    episodes: int
    seed: int
    success_rate: float
    success_ci95: tuple[float, float]
    mean_reward: float
    reward_ci95: tuple[float, float]
    reward_std: float
    mean_episode_length: float
    collision_rate: float
    timeout_rate: float

    def to_dict(self) -> dict:
        d = asdict(self)
        d["success_ci95"] = list(self.success_ci95)
        d["reward_ci95"] = list(self.reward_ci95)
        return d


def _wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return (0.0, 0.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def random_policy(definition: BehaviorDefinition, seed: int = 0) -> Policy:
    rng = np.random.default_rng(seed)
    a = definition.action

    def act(obs: np.ndarray) -> np.ndarray:
        if a.is_continuous:
            return rng.uniform(-1.0, 1.0, size=(obs.shape[0], a.continuous)).astype(np.float32)
        return np.stack([rng.integers(0, b, size=obs.shape[0]) for b in a.branches], axis=1)

    return act


@dataclass
class EpisodeOutcomes:
    """Per-episode results, in a fixed order (seed, arena), so two policies can be compared pairwise."""

    returns: np.ndarray
    lengths: np.ndarray
    success: np.ndarray
    collision: np.ndarray
    timeout: np.ndarray

    @classmethod
    def concat(cls, parts: list[EpisodeOutcomes]) -> EpisodeOutcomes:
        return cls(*(np.concatenate([getattr(p, f) for p in parts]) for f in
                     ("returns", "lengths", "success", "collision", "timeout")))


def run_episodes(policy: Policy, definition: BehaviorDefinition, episodes: int, seed: int) -> EpisodeOutcomes:
    """Exactly `episodes` episodes, one per simulated arena, stepped together."""
    if episodes <= 0:
        raise ValueError("episodes must be > 0")
    sim = Simulator(definition, episodes, seed)
    obs = sim.observe()
    active = np.ones(episodes, bool)
    returns = np.zeros(episodes, np.float64)
    lengths = np.zeros(episodes, np.int64)
    success = np.zeros(episodes, bool)
    collision = np.zeros(episodes, bool)
    timeout = np.zeros(episodes, bool)
    for _ in range(definition.params.max_steps):
        res = sim.step(policy(obs))
        returns[active] += res.reward[active]
        lengths[active] += 1
        newly = res.done & active
        success |= res.success & newly
        collision |= res.collision & newly
        timeout |= res.interrupted & newly
        active &= ~res.done
        if not active.any():
            break
        obs = res.obs  # finished arenas keep stepping (not reset) but are no longer counted
    return EpisodeOutcomes(returns, lengths, success, collision, timeout)


def summarize(outcomes: EpisodeOutcomes, name: str, seed: int) -> EvaluationReport:
    n = len(outcomes.returns)
    mean = float(outcomes.returns.mean())
    std = float(outcomes.returns.std(ddof=1)) if n > 1 else 0.0
    half = 1.96 * std / math.sqrt(n)
    return EvaluationReport(
        policy=name, episodes=n, seed=seed,
        success_rate=float(outcomes.success.mean()),
        success_ci95=_wilson(int(outcomes.success.sum()), n),
        mean_reward=mean, reward_ci95=(mean - half, mean + half), reward_std=std,
        mean_episode_length=float(outcomes.lengths.mean()),
        collision_rate=float(outcomes.collision.mean()),
        timeout_rate=float(outcomes.timeout.mean()),
    )


def evaluate_policy(
    policy: Policy, definition: BehaviorDefinition, episodes: int = 500, seed: int = HELD_OUT_SEED,
    name: str = "policy",
) -> EvaluationReport:
    """Run exactly `episodes` episodes (one per simulated arena) and summarise them."""
    return summarize(run_episodes(policy, definition, episodes, seed), name, seed)


def evaluate_onnx(
    model_path: str, definition: BehaviorDefinition, episodes: int = 500, seed: int = HELD_OUT_SEED
) -> tuple[EvaluationReport, EvaluationReport]:
    """(model report, random-policy baseline) on the same held-out episodes."""
    from .onnx_policy import ContractError, OnnxPolicy

    policy = OnnxPolicy(model_path)
    problems = policy.check_against(definition)
    if problems:
        raise ContractError(f"{model_path} does not fit behavior {definition.behavior_name}: " + "; ".join(problems))
    model = evaluate_policy(lambda o: policy.act(o, deterministic=True), definition, episodes, seed, "onnx")
    baseline = evaluate_policy(random_policy(definition, seed), definition, episodes, seed, "random")
    return model, baseline


def log_to_tensorboard(directory: Path, step: int, model: EvaluationReport, baseline: EvaluationReport) -> None:
    """The held-out evaluation beside the run's training curves (TensorBoard's "Evaluation" section)."""
    from .tfevents import EventWriter

    writer = EventWriter(directory, suffix="evaluation")  # its own file: never one the trainer writes
    writer.add_scalars(step, {"Evaluation/Success Rate": model.success_rate,
                              "Evaluation/Mean Reward": model.mean_reward,
                              "Evaluation/Collision Rate": model.collision_rate,
                              "Evaluation/Random Policy Success Rate": baseline.success_rate})
    writer.close()
