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
(d) contract: the ONNX inputs/outputs follow ML-Agents' contract and the behaviour the model was judged on.

Every gate plays where the version was judged (`judged_on`): the built-in simulator, or the very build a model of
a team's own game was trained on (found by its recorded path and digest, or rebuilt with `UNITY_BUILD_COMMAND`).
Episodes are compared pairwise where both policies played the same starts (the simulator always; a build that seeds
its episodes from the `evaluation_seed` parameter), else as two independent samples, and the report says which.
Without a success statistic from the build, the gates judge reward (and collisions, if recorded) only.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..behavior.definition import BehaviorDefinition
from ..evaluation.environments import EvaluationEnvironment, SimulatorEnvironment
from ..evaluation.evaluate import HELD_OUT_SEED, model_policy
from ..evaluation.onnx_policy import ContractError, OnnxPolicy, PolicySpec
from ..evaluation.outcomes import EpisodeOutcomes
from ..evaluation.policies import Policy, RandomPolicy
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


def judged_on(version: ModelVersion) -> dict[str, Any]:
    """Where the version's registration evaluated it: {"kind": "simulator"} or the build's record."""
    evaluation = version.metrics.get("evaluation") or {}
    return dict(evaluation.get("environment") or {"kind": "simulator"})


def spec_of(version: ModelVersion) -> PolicySpec:
    """The behaviour the version must fit: the build's, as the build declared it, or the built-in one."""
    recorded = (version.metrics.get("evaluation") or {}).get("behavior_spec")
    return PolicySpec.from_dict(recorded) if recorded else PolicySpec.of(definition_of(version))


def environment_for(version: ModelVersion, workspace: Path | None = None) -> EvaluationEnvironment:
    """Where the gates play `version`: the simulator for the built-in behaviours (their headless player is the
    same task), else the recorded build, found by digest or rebuilt."""
    record = judged_on(version)
    if record.get("kind") in ("simulator", "headless-player", None):
        return SimulatorEnvironment(definition_of(version))
    from ..build.reuse import ReuseBuilder
    from ..evaluation.build_env import BuildEnvironment
    from ..generate.base import GeneratedArtifacts

    here = version.model_path.parent
    build_dir = (workspace or here.parent) / "_builds" / str(record.get("digest", "unknown"))[:16]
    generated = GeneratedArtifacts(here / "trainer_config.yaml", next(iter(sorted(here.glob("*Agent.cs"))),
                                                                     here / "Agent.cs"), here / "behavior.json")
    builder = ReuseBuilder(record)
    build = builder.build(definition_of(version), generated, build_dir, build_dir / "build.log")
    env = BuildEnvironment(build.env_path, kind=build.kind, digest=build.digest, root=build.root,
                           time_scale=float(record.get("time_scale", 20.0)), graphics=bool(record.get("graphics")),
                           envs=int(record.get("envs", 2)), success_stat=record.get("success_stat"),
                           collision_stat=record.get("collision_stat"), log_dir=build_dir / "evaluation-logs")
    env.reuse = builder.outcome  # type: ignore[attr-defined]
    return env


def _play(env: EvaluationEnvironment, behavior: str, policy: Policy, config: GateConfig) -> EpisodeOutcomes:
    """The gates' episodes: every seed's arenas in the simulator; on a build, one session of as many episodes,
    its rounds seeded from the first seed."""
    if env.kind == "simulator":
        return EpisodeOutcomes.concat([env.run({behavior: policy}, config.episodes_per_seed, s)[behavior]
                                       for s in config.seeds])
    return env.run({behavior: policy}, config.episodes_per_seed * len(config.seeds), config.seeds[0],
                   paired=True)[behavior]


def contract_gate(version: ModelVersion, spec: PolicySpec | BehaviorDefinition) -> GateResult:
    if isinstance(spec, BehaviorDefinition):
        spec = PolicySpec.of(spec)
    try:
        policy = OnnxPolicy(version.model_path)
    except ContractError as exc:
        return GateResult("contract", False, str(exc))
    problems = policy.check_spec(spec)
    numbers = policy.contract.to_dict()
    if problems:
        return GateResult("contract", False, "the model does not fit the behavior: " + "; ".join(problems), numbers)
    return GateResult("contract", True, f"v{policy.contract.version} contract ({policy.contract.kind}), "
                      f"{spec.describe()}", numbers)


def two_sample_bootstrap(a: np.ndarray, b: np.ndarray, samples: int, seed: int = 0) -> tuple[float, float, float]:
    """(mean difference, lower, upper) of a 95 % bootstrap interval of mean(a) - mean(b), the two resampled
    independently: for episodes that were not the same starts."""
    rng = np.random.default_rng(seed)
    means = np.empty(samples)
    for start in range(0, samples, 500):
        k = min(500, samples - start)
        means[start:start + k] = (a[rng.integers(0, len(a), size=(k, len(a)))].mean(axis=1)
                                  - b[rng.integers(0, len(b), size=(k, len(b)))].mean(axis=1))
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(a.mean() - b.mean()), float(lo), float(hi)


def _compare(ch: np.ndarray, base: np.ndarray, paired: bool, samples: int, seed: int = 0):
    if paired:
        return paired_bootstrap(ch - base, samples, seed)
    return two_sample_bootstrap(ch, base, samples, seed)


def reward_and_safety_gates(ch: EpisodeOutcomes, base: EpisodeOutcomes, config: GateConfig) -> list[GateResult]:
    out = []
    paired = ch.paired_with(base)
    pairing = "paired episodes (the same starts)" if paired else \
        "independent samples (the environment did not replay the same starts)"
    mean, lo, hi = _compare(ch.returns, base.returns, paired, config.bootstrap_samples)
    numbers = {"improvement": mean, "ci95": [lo, hi], "threshold": config.min_reward_improvement,
               "challenger_mean_reward": float(ch.returns.mean()), "baseline_mean_reward": float(base.returns.mean()),
               "episodes": len(ch.returns), "seeds": len(config.seeds), "paired": paired}
    if lo > config.min_reward_improvement:
        out.append(GateResult("reward", True, f"mean reward improved by {mean:+.4f} (95 % CI [{lo:+.4f}, {hi:+.4f}], "
                              f"{pairing}), lower bound above {config.min_reward_improvement:+.4f}", numbers))
    else:
        out.append(GateResult("reward", False, f"reward improvement {mean:+.4f} is not clearly above the threshold: "
                              f"95 % CI lower bound {lo:+.4f} <= {config.min_reward_improvement:+.4f} "
                              f"(short by {config.min_reward_improvement - lo:.4f}; {pairing})", numbers))
    problems, safety = [], {"paired": paired}
    rates = [("collision_rate", ch.collision, base.collision, ch.has_collision and base.has_collision),
             ("failure_rate", ~ch.success, ~base.success, ch.has_success and base.has_success)]
    for name, c, b, known in rates:
        if not known:
            safety[name] = "not measured: the environment records no such statistic"
            continue
        m, lo_r, hi_r = _compare(c.astype(float), b.astype(float), paired, config.bootstrap_samples, seed=1)
        safety[name] = {"challenger": float(c.mean()), "baseline": float(b.mean()), "increase": m,
                        "ci95": [lo_r, hi_r], "margin": config.safety_margin}
        if hi_r > config.safety_margin:
            problems.append(f"{name} {b.mean():.3f} -> {c.mean():.3f}: upper bound of the increase {hi_r:+.4f} "
                            f"exceeds the margin {config.safety_margin:.4f} by {hi_r - config.safety_margin:.4f}")
    # time to the goal, over the episodes both policies solved: a collision ends an episode early, so plain episode
    # length would punish the safer policy
    if paired and ch.has_success and base.has_success and (ch.success & base.success).sum() >= 10:
        basis, ch_sel, base_sel = "successful episodes", ch.success & base.success, ch.success & base.success
    elif ch.has_success and base.has_success and ch.success.sum() >= 10 and base.success.sum() >= 10:
        basis, ch_sel, base_sel = "each policy's successful episodes", ch.success, base.success
    else:
        basis, ch_sel, base_sel = "all episodes", np.ones(len(ch), bool), np.ones(len(base), bool)
    base_len, ch_len = float(base.lengths[base_sel].mean()), float(ch.lengths[ch_sel].mean())
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


@dataclass
class _Score:
    """What reproduces: the success rate where the environment measures it, else the mean reward."""

    metric: str
    value: float
    stderr: float
    episodes: int


def _score(out: EpisodeOutcomes, use_success: bool) -> _Score:
    n = len(out)
    if use_success:
        p = float(out.success.mean())
        return _Score("success rate", p, float(np.sqrt(p * (1 - p) / max(n, 1))), n)
    std = float(out.returns.std(ddof=1)) if n > 1 else 0.0
    return _Score("mean reward", float(out.returns.mean()), std / float(np.sqrt(max(n, 1))), n)


def _recorded_score(recorded: dict[str, Any], use_success: bool) -> _Score:
    n = int(recorded.get("episodes", 500))
    if use_success:
        p = float(recorded["success_rate"])
        return _Score("success rate", p, float(np.sqrt(p * (1 - p) / max(n, 1))), n)
    return _Score("mean reward", float(recorded["mean_reward"]),
                  float(recorded.get("reward_std") or 0.0) / float(np.sqrt(max(n, 1))), n)


def _allowance(tol: float, a: _Score, b: _Score) -> float:
    """The tolerance plus the sampling error of the difference (1.96 standard errors): two evaluations of the same
    policy on different episodes differ by chance, and that is not irreproducibility. The tolerance is absolute for
    a success rate and relative to the larger |mean reward| otherwise."""
    scale = 1.0 if a.metric == "success rate" else max(abs(a.value), abs(b.value), 1e-9)
    return tol * scale + 1.96 * float(np.sqrt(a.stderr ** 2 + b.stderr ** 2))


def _fresh(env: EvaluationEnvironment, behavior: str, model: Path, spec: PolicySpec, episodes: int, seed: int,
           use_success: bool) -> _Score:
    return _score(env.run({behavior: model_policy(model, spec, behavior)}, episodes, seed)[behavior], use_success)


def reproducibility_gate(version: ModelVersion, env: EvaluationEnvironment, config: GateConfig,
                         retrain: Callable[..., Path] | None = None) -> GateResult:
    mode = config.reproducibility
    if mode == "off":
        return GateResult("reproducibility", True, "skipped (reproducibility: off)")
    can_retrain = retrain is not None and (version.model_path.parent / "job.json").is_file()
    if mode == "auto":
        mode = "retrain" if can_retrain else "reevaluate"
    recorded = ((version.metrics.get("evaluation") or {}).get("model")) or {}
    fresh = int(recorded.get("seed", HELD_OUT_SEED)) + FRESH_SEED_OFFSET
    behavior, spec = version.behavior_name, spec_of(version)
    where = env.describe()
    if mode == "retrain":
        if retrain is None:
            return GateResult("reproducibility", False, "retrain requested, but no retrainer is configured here")
        return _retrain_gate(version, env, config, retrain, fresh)
    if not recorded:
        return GateResult("reproducibility", False, "the version has no recorded evaluation to reproduce")
    use_success = recorded.get("success_rate") is not None
    was = _recorded_score(recorded, use_success)
    now = _fresh(env, behavior, version.model_path, spec, config.reproducibility_episodes, fresh, use_success)
    allowed, off = _allowance(config.reproducibility_tolerance, now, was), abs(now.value - was.value)
    numbers = {"mode": mode, "metric": now.metric, "evaluation_seed": fresh, "episodes": now.episodes,
               "recorded": was.value, "now": now.value, "tolerance": config.reproducibility_tolerance,
               "allowed_difference": allowed, "environment": where,
               "note": "re-evaluation on fresh held-out episodes; the version has no recorded job to retrain"}
    verdict = (f"reevaluate on the {env.kind}, fresh seed {fresh}: {now.metric} {now.value:.3f} vs recorded "
               f"{was.value:.3f}")
    if off > allowed:
        return GateResult("reproducibility", False, f"{verdict}, off by {off:.3f} (allowed {allowed:.3f}: "
                          f"tolerance {config.reproducibility_tolerance} + sampling error)", numbers)
    return GateResult("reproducibility", True, f"{verdict} (within {allowed:.3f}; not retrained: no recorded job)",
                      numbers)


def _retrain_gate(version: ModelVersion, env: EvaluationEnvironment, config: GateConfig,
                  retrain: Callable[..., Path], fresh: int) -> GateResult:
    from .retrain import RetrainUnavailable

    episodes, tol = config.reproducibility_episodes, config.reproducibility_tolerance
    behavior, spec = version.behavior_name, spec_of(version)
    recorded = ((version.metrics.get("evaluation") or {}).get("model")) or {}
    use_success = recorded.get("success_rate") is not None or env.kind == "simulator"
    base_seed = int((version.lineage.get("seeds") or {}).get("training") or 0)
    seeds = [base_seed + 1000 * (i + 1) for i in range(config.retrain_seeds)]
    results, retrained_on = [], []
    try:
        candidate = _fresh(env, behavior, version.model_path, spec, episodes, fresh, use_success)
        for s in seeds:
            model = retrain(version, s, config.retrain_steps)
            retrained_on.append(getattr(retrain, "last_build", None))
            score = _fresh(env, behavior, model, spec, episodes, fresh, use_success)
            results.append({"seed": s, score.metric: score.value, "model": str(model)})
    except (RetrainUnavailable, ContractError) as exc:
        return GateResult("reproducibility", False, f"retrain: {exc}", {"mode": "retrain", "seeds": seeds})
    values = [r[candidate.metric] for r in results]
    scores = [_Score(candidate.metric, v, candidate.stderr, episodes) for v in values]
    worst = max(abs(v - candidate.value) for v in values)
    allowed = max(_allowance(tol, sc, candidate) for sc in scores)
    numbers = {"mode": "retrain", "metric": candidate.metric, "seeds": seeds,
               "steps": config.retrain_steps or "as recorded", "evaluation_seed": fresh, "episodes": episodes,
               "candidate": candidate.value, "retrained": results, "interval": [min(values), max(values)],
               "tolerance": tol, "allowed_difference": allowed, "environment": env.describe(),
               "retrained_on": retrained_on}
    verdict = (f"retrained with seeds {seeds} on the {env.kind}: {candidate.metric} "
               f"{', '.join(f'{v:.3f}' for v in values)} (interval [{min(values):.3f}, {max(values):.3f}]) vs the "
               f"candidate's {candidate.value:.3f} on fresh seed {fresh}")
    if worst > allowed:
        return GateResult("reproducibility", False, f"{verdict}: off by up to {worst:.3f} (allowed {allowed:.3f}: "
                          f"tolerance {tol} + sampling error); the candidate does not reproduce from its recorded "
                          "configuration", numbers)
    return GateResult("reproducibility", True, f"{verdict}: within {allowed:.3f}", numbers)


def run_gates(challenger: ModelVersion, baseline: ModelVersion | None, config: GateConfig,
              retrain: Callable[..., Path] | None = None, workspace: Path | None = None) -> GateReport:
    """Every gate, played where the challenger was judged at registration (`environment_for`)."""
    spec = spec_of(challenger)
    against = baseline.version if baseline else "random policy"
    results = [contract_gate(challenger, spec)]
    if not results[0].passed:
        return GateReport(challenger.version, against, results)
    from ..build.reuse import BuildUnavailable

    try:
        env = environment_for(challenger, workspace)
    except BuildUnavailable as exc:
        results.append(GateResult("environment", False, str(exc), judged_on(challenger)))
        return GateReport(challenger.version, against, results)
    behavior = challenger.behavior_name
    try:
        ch = _play(env, behavior, model_policy(challenger.model_path, spec, behavior), config)
        if baseline is not None:
            base = _play(env, behavior, model_policy(baseline.model_path, spec, behavior), config)
        else:
            base = _play(env, behavior, RandomPolicy(spec, 0), config)
        where = {**env.describe(), "reused": getattr(env, "reuse", None)}
        results.append(GateResult("environment", True, f"played on the {env.kind}"
                                  + (f" {where.get('path')} (digest {str(where.get('digest'))[:12]}, "
                                     f"{where.get('reused')})" if env.kind != "simulator" else ""), where))
        results += reward_and_safety_gates(ch, base, config)
        results.append(reproducibility_gate(challenger, env, config, retrain))
    finally:
        env.close()
    return GateReport(challenger.version, against, results)
