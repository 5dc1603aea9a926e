"""Promotion gates for staging -> production. Each reports pass/fail with the numbers behind it.

The challenger and the baseline (the current production version, or a random policy when there is none) play
the *same* held-out episodes: several fixed scenario seeds, many arenas each. Because the episodes are paired,
the improvement is estimated per episode and its 95 % interval comes from a paired bootstrap.

(a) reward: the lower bound of the improvement's interval must clear `min_reward_improvement`;
(b) safety: collision rate and failure rate may not rise by more than `safety_margin` (upper bound of the
    paired interval), and the time to the goal (mean length of the episodes both solved) may not grow by more
    than `max_length_increase`;
(c) reproducibility: `retrain` (the default where training is possible) re-runs the candidate's recorded job with
    `retrain_seeds` further training seeds at `retrain_steps` (default: its own budget) and requires every
    retrained model's success on fresh held-out episodes to be within `reproducibility_tolerance` of the
    candidate's on the same episodes; `reevaluate` (the cheap check) plays the candidate on fresh held-out seeds
    (never the recorded ones) and compares with the success recorded at registration;
(d) contract: the ONNX inputs/outputs follow ML-Agents' v3 contract and the behavior spec.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..behavior.definition import BehaviorDefinition
from ..evaluation.evaluate import HELD_OUT_SEED, EpisodeOutcomes, random_policy, run_episodes
from ..evaluation.onnx_policy import ContractError, OnnxPolicy
from ..registry.base import ModelVersion

DEFAULT_SEEDS = (2_000_003, 2_000_029, 2_000_039, 2_000_081, 2_000_083)


@dataclass
class GateConfig:
    seeds: tuple[int, ...] = DEFAULT_SEEDS
    episodes_per_seed: int = 200
    min_reward_improvement: float = 0.0
    safety_margin: float = 0.02
    max_length_increase: float = 0.25
    reproducibility: Literal["auto", "reevaluate", "retrain", "off"] = "auto"  # auto: retrain where possible
    reproducibility_tolerance: float = 0.05
    retrain_seeds: int = 2
    retrain_steps: int | None = None
    reproducibility_episodes: int = 300
    bootstrap_samples: int = 4000

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> GateConfig:
        data = dict(data or {})
        if "seeds" in data:
            data["seeds"] = tuple(data["seeds"])
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown gate settings {sorted(unknown)}")
        return cls(**data)


@dataclass
class GateResult:
    name: str
    passed: bool
    message: str
    numbers: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"gate": self.name, "passed": self.passed, "message": self.message, "numbers": self.numbers}


@dataclass
class GateReport:
    challenger: str
    baseline: str
    results: list[GateResult]

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    def failures(self) -> list[GateResult]:
        return [r for r in self.results if not r.passed]

    def to_dict(self) -> dict[str, Any]:
        return {"challenger": self.challenger, "baseline": self.baseline, "passed": self.passed,
                "gates": [r.to_dict() for r in self.results]}


def paired_bootstrap(diff: np.ndarray, samples: int, seed: int = 0) -> tuple[float, float, float]:
    """(mean, lower, upper) of a 95 % percentile bootstrap interval of the mean of paired differences."""
    rng = np.random.default_rng(seed)
    n = len(diff)
    means = np.empty(samples)
    for start in range(0, samples, 500):  # chunks keep memory small for large n
        k = min(500, samples - start)
        means[start:start + k] = diff[rng.integers(0, n, size=(k, n))].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(diff.mean()), float(lo), float(hi)


def definition_of(version: ModelVersion) -> BehaviorDefinition:
    path = version.model_path.parent / "behavior.json"
    return BehaviorDefinition.from_dict(json.loads(path.read_text()))


def _play(policy, definition: BehaviorDefinition, config: GateConfig) -> EpisodeOutcomes:
    return EpisodeOutcomes.concat([run_episodes(policy, definition, config.episodes_per_seed, s) for s in config.seeds])


def contract_gate(version: ModelVersion, definition: BehaviorDefinition) -> GateResult:
    try:
        policy = OnnxPolicy(version.model_path)
    except ContractError as exc:
        return GateResult("contract", False, str(exc))
    problems = policy.check_against(definition)
    numbers = policy.contract.to_dict()
    if problems:
        return GateResult("contract", False, "the model does not fit the behavior: " + "; ".join(problems), numbers)
    return GateResult("contract", True, f"v{policy.contract.version} contract, {definition.observation_size} "
                      f"observations, actions {definition.action.to_dict()}", numbers)


def reward_and_safety_gates(ch: EpisodeOutcomes, base: EpisodeOutcomes, config: GateConfig) -> list[GateResult]:
    out = []
    mean, lo, hi = paired_bootstrap(ch.returns - base.returns, config.bootstrap_samples)
    numbers = {"improvement": mean, "ci95": [lo, hi], "threshold": config.min_reward_improvement,
               "challenger_mean_reward": float(ch.returns.mean()), "baseline_mean_reward": float(base.returns.mean()),
               "episodes": len(ch.returns), "seeds": len(config.seeds)}
    if lo > config.min_reward_improvement:
        out.append(GateResult("reward", True, f"mean reward improved by {mean:+.4f} (95 % CI [{lo:+.4f}, {hi:+.4f}]), "
                              f"lower bound above {config.min_reward_improvement:+.4f}", numbers))
    else:
        out.append(GateResult("reward", False, f"reward improvement {mean:+.4f} is not clearly above the threshold: "
                              f"95 % CI lower bound {lo:+.4f} <= {config.min_reward_improvement:+.4f} "
                              f"(short by {config.min_reward_improvement - lo:.4f})", numbers))
    problems, safety = [], {}
    for name, c, b in (("collision_rate", ch.collision, base.collision),
                       ("failure_rate", ~ch.success, ~base.success)):
        m, lo_r, hi_r = paired_bootstrap(c.astype(float) - b.astype(float), config.bootstrap_samples, seed=1)
        safety[name] = {"challenger": float(c.mean()), "baseline": float(b.mean()), "increase": m,
                        "ci95": [lo_r, hi_r], "margin": config.safety_margin}
        if hi_r > config.safety_margin:
            problems.append(f"{name} {b.mean():.3f} -> {c.mean():.3f}: upper bound of the increase {hi_r:+.4f} "
                            f"exceeds the margin {config.safety_margin:.4f} by {hi_r - config.safety_margin:.4f}")
    # time to the goal, over the episodes both policies solved: a collision ends an episode early, so plain episode
    # length would punish the safer policy
    both = ch.success & base.success
    basis = "successful episodes" if both.sum() >= 10 else "all episodes"
    sel = both if both.sum() >= 10 else np.ones_like(both)
    base_len, ch_len = float(base.lengths[sel].mean()), float(ch.lengths[sel].mean())
    growth = ch_len / max(base_len, 1e-9) - 1
    safety["episode_length"] = {"challenger": ch_len, "baseline": base_len, "relative_increase": growth,
                                "limit": config.max_length_increase, "basis": basis}
    if growth > config.max_length_increase:
        problems.append(f"episode length ({basis}) {base_len:.1f} -> {ch_len:.1f} (+{growth:.0%}, limit "
                        f"+{config.max_length_increase:.0%})")
    out.append(GateResult("safety", not problems, "; ".join(problems) or "no safety regression beyond the margins",
                          safety))
    return out


FRESH_SEED_OFFSET = 7_000_003  # fresh held-out seeds: never the one the registration's evaluation used


def _success(policy_path: Path, definition: BehaviorDefinition, episodes: int, seed: int) -> tuple[float, float]:
    policy = OnnxPolicy(policy_path)
    out = run_episodes(lambda o: policy.act(o), definition, episodes, seed)
    return float(out.success.mean()), float(out.returns.mean())


def _allowance(tol: float, p1: float, n1: int, p2: float, n2: int) -> float:
    """The tolerance plus the sampling error of a difference of two success rates (1.96 standard errors): two
    evaluations of the same policy on different episodes differ by chance, and that is not irreproducibility."""
    return tol + 1.96 * float(np.sqrt(p1 * (1 - p1) / max(n1, 1) + p2 * (1 - p2) / max(n2, 1)))


def reproducibility_gate(version: ModelVersion, definition: BehaviorDefinition, config: GateConfig,
                         retrain: Callable[..., Path] | None = None) -> GateResult:
    mode = config.reproducibility
    if mode == "off":
        return GateResult("reproducibility", True, "skipped (reproducibility: off)")
    can_retrain = retrain is not None and (version.model_path.parent / "job.json").is_file()
    if mode == "auto":
        mode = "retrain" if can_retrain else "reevaluate"
    recorded = ((version.metrics.get("evaluation") or {}).get("model")) or {}
    fresh = int(recorded.get("seed", HELD_OUT_SEED)) + FRESH_SEED_OFFSET
    episodes, tol = config.reproducibility_episodes, config.reproducibility_tolerance
    if mode == "retrain":
        if retrain is None:
            return GateResult("reproducibility", False, "retrain requested, but no retrainer is configured here")
        return _retrain_gate(version, definition, config, retrain, fresh)
    if not recorded:
        return GateResult("reproducibility", False, "the version has no recorded evaluation to reproduce")
    success, reward = _success(version.model_path, definition, episodes, fresh)
    d_success = abs(success - recorded["success_rate"])
    allowed = _allowance(tol, success, episodes, recorded["success_rate"], int(recorded.get("episodes", 500)))
    numbers = {"mode": mode, "evaluation_seed": fresh, "episodes": episodes,
               "recorded_success_rate": recorded["success_rate"], "success_rate": success,
               "recorded_mean_reward": recorded["mean_reward"], "mean_reward": reward, "tolerance": tol,
               "allowed_difference": allowed,
               "note": "re-evaluation on fresh held-out episodes; the version has no recorded job to retrain"}
    verdict = f"reevaluate on fresh seed {fresh}: success {success:.3f} vs recorded {recorded['success_rate']:.3f}"
    if d_success > allowed:
        return GateResult("reproducibility", False, f"{verdict}, off by {d_success:.3f} (allowed {allowed:.3f}: "
                          f"tolerance {tol} + sampling error)", numbers)
    return GateResult("reproducibility", True, f"{verdict} (within {allowed:.3f}; not retrained: no recorded job)",
                      numbers)


def _retrain_gate(version: ModelVersion, definition: BehaviorDefinition, config: GateConfig,
                  retrain: Callable[..., Path], fresh: int) -> GateResult:
    from .retrain import RetrainUnavailable

    episodes, tol = config.reproducibility_episodes, config.reproducibility_tolerance
    base_seed = int((version.lineage.get("seeds") or {}).get("training") or 0)
    seeds = [base_seed + 1000 * (i + 1) for i in range(config.retrain_seeds)]
    candidate, _ = _success(version.model_path, definition, episodes, fresh)
    results = []
    try:
        for s in seeds:
            success, reward = _success(retrain(version, s, config.retrain_steps), definition, episodes, fresh)
            results.append({"seed": s, "success_rate": success, "mean_reward": reward})
    except (RetrainUnavailable, ContractError) as exc:
        return GateResult("reproducibility", False, f"retrain: {exc}", {"mode": "retrain", "seeds": seeds})
    rates = [r["success_rate"] for r in results]
    worst = max(abs(r - candidate) for r in rates)
    allowed = max(_allowance(tol, r, episodes, candidate, episodes) for r in rates)
    numbers = {"mode": "retrain", "seeds": seeds, "steps": config.retrain_steps or "as recorded",
               "evaluation_seed": fresh, "episodes": episodes, "candidate_success_rate": candidate,
               "retrained": results, "interval": [min(rates), max(rates)], "tolerance": tol,
               "allowed_difference": allowed}
    verdict = (f"retrained with seeds {seeds}: success {', '.join(f'{r:.3f}' for r in rates)} (interval "
               f"[{min(rates):.3f}, {max(rates):.3f}]) vs the candidate's {candidate:.3f} on fresh seed {fresh}")
    if worst > allowed:
        return GateResult("reproducibility", False, f"{verdict}: off by up to {worst:.3f} (allowed {allowed:.3f}: "
                          f"tolerance {tol} + sampling error); the candidate does not reproduce from its recorded "
                          "configuration", numbers)
    return GateResult("reproducibility", True, f"{verdict}: within {allowed:.3f}", numbers)


def run_gates(challenger: ModelVersion, baseline: ModelVersion | None, config: GateConfig,
              retrain: Callable[..., Path] | None = None) -> GateReport:
    definition = definition_of(challenger)
    results = [contract_gate(challenger, definition)]
    if not results[0].passed:
        return GateReport(challenger.version, baseline.version if baseline else "random policy", results)
    ch_policy = OnnxPolicy(challenger.model_path)
    ch = _play(lambda o: ch_policy.act(o), definition, config)
    if baseline is not None:
        base_policy = OnnxPolicy(baseline.model_path)
        base = _play(lambda o: base_policy.act(o), definition, config)
    else:
        base = _play(random_policy(definition, 0), definition, config)
    results += reward_and_safety_gates(ch, base, config)
    results.append(reproducibility_gate(challenger, definition, config, retrain))
    return GateReport(challenger.version, baseline.version if baseline else "random policy", results)
