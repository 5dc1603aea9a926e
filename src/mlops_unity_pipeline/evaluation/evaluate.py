"""Evaluate a policy on held-out episodes, beside a random policy on the same episodes.

Where the episodes are played is an `EvaluationEnvironment` (`environments.py`): the built-in simulator, or the
build the model was trained on. The seed is one that training never uses.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..behavior.definition import BehaviorDefinition
from .environments import EvaluationEnvironment, Progress, SimulatorEnvironment, run_simulator
from .onnx_policy import ContractError, OnnxPolicy, PolicyOutput, PolicySpec
from .outcomes import EpisodeOutcomes, EvaluationReport, summarize, wilson
from .policies import ModelPolicy, Policy, RandomPolicy

HELD_OUT_SEED = 1_000_003  # training seeds are small integers (the run seed + worker id)
_wilson = wilson  # the name earlier releases exported

__all__ = ["HELD_OUT_SEED", "EpisodeOutcomes", "EvaluationReport", "evaluate_model", "evaluate_onnx",
           "evaluate_policy", "random_policy", "model_policy", "summarize"]


def model_policy(model_path: str | Path, spec: PolicySpec, behavior: str) -> ModelPolicy:
    """The model as a policy for `spec`, or a `ContractError` naming every difference."""
    model = OnnxPolicy(model_path)
    problems = model.check_spec(spec)
    if problems:
        raise ContractError(f"{model_path} does not fit behavior {behavior}: " + "; ".join(problems))
    return ModelPolicy(model, spec)


def evaluate_model(model_path: str | Path, environment: EvaluationEnvironment, behavior: str, episodes: int = 500,
                   seed: int = HELD_OUT_SEED, progress: Progress | None = None,
                   ) -> tuple[EvaluationReport, EvaluationReport]:
    """(model report, random-policy baseline) on the same held-out episodes of `environment` (left running for
    the caller to reuse or close)."""
    specs = environment.specs()
    if behavior not in specs:
        raise ContractError(f"the environment has no behavior {behavior!r}; it has {sorted(specs)}")
    spec = specs[behavior]
    policy = model_policy(model_path, spec, behavior)
    model = environment.run({behavior: policy}, episodes, seed, progress)[behavior]
    baseline = environment.run({behavior: RandomPolicy(spec, seed)}, episodes, seed)[behavior]
    return summarize(model, "onnx", seed), summarize(baseline, "random", seed)


def evaluate_onnx(model_path: str, definition: BehaviorDefinition, episodes: int = 500, seed: int = HELD_OUT_SEED,
                  ) -> tuple[EvaluationReport, EvaluationReport]:
    """(model report, random-policy baseline) on held-out episodes of the built-in simulator."""
    return evaluate_model(model_path, SimulatorEnvironment(definition), definition.behavior_name, episodes, seed)


class _FunctionPolicy:
    """A plain function of a single observation batch, as benchmarks write policies."""

    def __init__(self, fn: Callable[[np.ndarray], np.ndarray], definition: BehaviorDefinition) -> None:
        self.fn, self.continuous = fn, definition.action.is_continuous

    def act(self, obs: list[np.ndarray], mask: np.ndarray | None, keys: np.ndarray) -> PolicyOutput:
        a = np.asarray(self.fn(obs[0]))
        n = len(a)
        return PolicyOutput(a.astype(np.float32), np.zeros((n, 0), np.int64)) if self.continuous else \
            PolicyOutput(np.zeros((n, 0), np.float32), a.astype(np.int64).reshape(n, -1))

    def end(self, keys: np.ndarray) -> None:
        pass


def random_policy(definition: BehaviorDefinition, seed: int = 0) -> RandomPolicy:
    return RandomPolicy(PolicySpec.of(definition), seed)


def evaluate_policy(policy: Policy | Callable[[np.ndarray], np.ndarray], definition: BehaviorDefinition,
                    episodes: int = 500, seed: int = HELD_OUT_SEED, name: str = "policy") -> EvaluationReport:
    """Run exactly `episodes` simulator episodes (one per arena) with `policy` and summarise them."""
    if not hasattr(policy, "act"):
        policy = _FunctionPolicy(policy, definition)  # type: ignore[arg-type]
    return summarize(run_simulator(policy, definition, episodes, seed), name, seed)  # type: ignore[arg-type]


def log_to_tensorboard(directory: Path, step: int, model: EvaluationReport, baseline: EvaluationReport) -> None:
    """The held-out evaluation beside the run's training curves (TensorBoard's "Evaluation" section)."""
    from .tfevents import EventWriter

    scalars = {"Evaluation/Mean Reward": model.mean_reward, "Evaluation/Random Policy Mean Reward":
               baseline.mean_reward}
    if model.success_rate is not None:
        scalars["Evaluation/Success Rate"] = model.success_rate
    if baseline.success_rate is not None:
        scalars["Evaluation/Random Policy Success Rate"] = baseline.success_rate
    if model.collision_rate is not None:
        scalars["Evaluation/Collision Rate"] = model.collision_rate
    writer = EventWriter(directory, suffix="evaluation")  # its own file: never one the trainer writes
    writer.add_scalars(step, scalars)
    writer.close()
