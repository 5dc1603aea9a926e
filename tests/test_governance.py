"""Promotion gates, rollback with incidents, freezes, the ledger under concurrency, and the report.

Challengers are small hand-built ONNX policies of known quality on the navigation task (see onnx_policies.py):
`straight` heads for the goal (83 % success, 17 % collisions), `avoid` also steers away from obstacles seen by the
side rays (98 %, 2 %), `cautious` avoids but crawls (reward ~0, 9 % collisions)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mlops_unity_pipeline.behavior import build_behavior
from mlops_unity_pipeline.evaluation.evaluate import HELD_OUT_SEED, evaluate_onnx
from mlops_unity_pipeline.governance import GateConfig, Governance, GovernanceError, PromotionBlocked
from mlops_unity_pipeline.registry import LocalModelRegistry, RegistrationRequest
from racing import race

sys.path.insert(0, str(Path(__file__).parent))
from onnx_policies import linear_policy  # noqa: E402

NAV = build_behavior(behavior_name="Nav", archetype="navigation")


def _w(entries):
    w = np.zeros((12, 2), np.float32)
    for (i, j), v in entries.items():
        w[i, j] = v
    return w


POLICIES = {  # rays 0..7 (ray 0 towards the goal), velocity 8..9, target 10..11
    "straight": (None, (1.0, 0.0)),
    "avoid": (_w({(1, 1): 3, (7, 1): -3, (0, 0): 1}), (0.2, 0.0)),
    "avoid_b": (_w({(1, 1): 4, (7, 1): -4}), (1.0, 0.0)),
    "avoid_b2": (_w({(1, 1): 4.5, (7, 1): -4.5}), (1.0, 0.0)),  # avoid_b with a slightly stronger steering gain
    "cautious": (_w({(1, 1): 4, (7, 1): -4, (2, 1): 2, (6, 1): -2, (0, 0): 0.4}), (-0.3, 0.0)),
}
QUICK = GateConfig(seeds=(11, 12), episodes_per_seed=150, bootstrap_samples=1000)


@pytest.fixture
def registry(tmp_path):
    return LocalModelRegistry(tmp_path / "reg")


@pytest.fixture
def db_registry(tmp_path, database):
    """For the store-level tests (aliases, ledger, freezes, incidents): each runs on SQLite and on PostgreSQL."""
    return LocalModelRegistry(tmp_path / "reg", database)


def register(registry, tmp_path, name, asset="Nav", evaluate=True):
    w, b = POLICIES[name]
    model = linear_policy(tmp_path / "models" / f"{name}.onnx", 12, w, b)
    behavior = tmp_path / "behavior.json"
    behavior.write_text(NAV.to_json())
    metrics = {}
    if evaluate:
        m, base = evaluate_onnx(str(model), NAV, 300)
        metrics = {"evaluation": {"source": "held-out simulator episodes", "model": m.to_dict(),
                                  "random_baseline": base.to_dict()}}
    return registry.register(RegistrationRequest(
        asset_id="nav-1", asset_name=asset, behavior_name="Nav", job_id=f"job-{name}", model_path=model,
        files={"behavior.json": behavior}, metrics=metrics, lineage={"seeds": {"training": 1}}, git_sha="abc1234"))


def to_production(gov, v, config=QUICK):
    gov.promote(v.version, "staging", reason="candidate")
    return gov.promote(v.version, "production", reason="release", gate_config=config)


def test_better_challenger_passes_and_worse_one_is_blocked_with_the_reason(registry, tmp_path):
    gov = Governance(registry)
    champion = register(registry, tmp_path, "straight")
    first = to_production(gov, champion)  # no production yet: compared with a random policy
    assert first.report.baseline == "random policy" and first.report.passed
    better = register(registry, tmp_path, "avoid")
    outcome = to_production(gov, better)
    gates = {g.name: g for g in outcome.report.results}
    assert set(gates) == {"contract", "environment", "reward", "safety", "reproducibility"} and outcome.report.passed
    assert gates["environment"].numbers["kind"] == "simulator" and gates["reward"].numbers["paired"] is True
    assert gates["reward"].numbers["ci95"][0] > 0
    assert registry.ledger.aliases("Nav") == {"staging": better.version, "production": better.version}

    worse = register(registry, tmp_path, "straight")
    gov.promote(worse.version, "staging")
    with pytest.raises(PromotionBlocked) as blocked:
        gov.promote(worse.version, "production", gate_config=QUICK)
    failed = {g.name: g for g in blocked.value.report.failures()}
    assert "reward" in failed and "lower bound" in failed["reward"].message
    assert "short by" in failed["reward"].message and "collision_rate" in failed["safety"].message
    assert registry.ledger.aliases("Nav")["production"] == better.version, "a blocked move changes nothing"
    assert registry.ledger.history("Nav")[-1].action == "promotion-blocked"


def test_a_challenger_that_is_not_clearly_better_fails(registry, tmp_path):
    gov = Governance(registry)
    to_production(gov, register(registry, tmp_path, "avoid_b"))
    noisy = register(registry, tmp_path, "avoid_b2")  # about as good: the interval straddles zero
    gov.promote(noisy.version, "staging")
    with pytest.raises(PromotionBlocked, match="not clearly above the threshold") as blocked:
        gov.promote(noisy.version, "production", gate_config=GateConfig(seeds=(5,), episodes_per_seed=100,
                                                                         bootstrap_samples=1000))
    low, high = next(g for g in blocked.value.report.failures() if g.name == "reward").numbers["ci95"]
    assert low < 0 < high


def test_safety_regression_blocks_even_when_reward_improved(registry, tmp_path):
    gov = Governance(registry)
    lenient = GateConfig(seeds=(11,), episodes_per_seed=100, min_reward_improvement=-10, safety_margin=1.0,
                         max_length_increase=10)
    to_production(gov, register(registry, tmp_path, "cautious"), lenient)  # set-up: a safe but slow champion
    fast = register(registry, tmp_path, "straight")
    gov.promote(fast.version, "staging")
    with pytest.raises(PromotionBlocked) as blocked:
        gov.promote(fast.version, "production", gate_config=QUICK)
    results = {g.name: g for g in blocked.value.report.results}
    assert results["reward"].passed, "the reward did improve"
    assert not results["safety"].passed and "collision_rate" in results["safety"].message
    assert "exceeds the margin" in results["safety"].message


def test_rollback_repoints_production_writes_an_incident_and_freezes(db_registry, tmp_path, another_database):
    registry = db_registry
    gov = Governance(registry)
    good = register(registry, tmp_path, "straight")
    to_production(gov, good)
    newer = register(registry, tmp_path, "avoid")
    to_production(gov, newer)
    entry = gov.rollback("Nav", reason="players report agents stuck on walls", corrective_action="add wall rays")
    ledger = registry.ledger
    assert entry.from_version == newer.version and entry.to_version == good.version
    assert ledger.aliases("Nav")["production"] == good.version
    [incident] = ledger.incidents("Nav")
    assert incident["failed_version"] == newer.version and incident["corrective_action"] == "add wall rays"
    assert incident["metrics"]["model"]["success_rate"] > 0.9
    assert ledger.frozen("Nav") is not None
    with pytest.raises(GovernanceError, match="frozen"):
        gov.promote(newer.version, "staging")
    gov.unfreeze("Nav", "root cause fixed")
    assert gov.promote(good.version, "staging").entry.to_version == good.version
    with pytest.raises(GovernanceError, match="no production version"):
        Governance(LocalModelRegistry(tmp_path / "empty", another_database())).rollback("Nav", reason="x")
    single = Governance(LocalModelRegistry(tmp_path / "single", another_database()))
    only = register(single.registry, tmp_path, "straight")
    to_production(single, only)
    with pytest.raises(GovernanceError, match="no earlier known-good"):
        single.rollback("Nav", reason="x")


def test_freeze_blocks_promotion_and_the_ledger_is_append_only(db_registry, tmp_path):
    registry = db_registry
    gov = Governance(registry)
    v = register(registry, tmp_path, "avoid")
    gov.freeze("Nav", "release freeze")
    with pytest.raises(GovernanceError, match="frozen"):
        gov.promote(v.version, "staging")
    gov.unfreeze("Nav", "ok")
    with pytest.raises(GovernanceError, match="must hold the staging alias"):
        gov.promote(v.version, "production")
    for statement in ("UPDATE ledger SET reason='edited'", "DELETE FROM ledger"):
        with pytest.raises(Exception, match="append-only"):
            registry.db.execute(statement, name="registry")
    assert [e.action for e in registry.ledger.history("Nav")] == ["freeze", "unfreeze"]


def test_contract_gate_rejects_a_model_for_another_spec(registry, tmp_path, samples):
    behavior = tmp_path / "behavior.json"
    behavior.write_text(NAV.to_json())
    v = registry.register(RegistrationRequest("nav-1", "Nav", "Nav", "j", samples / "onnx" / "3DBall.onnx",
                                              files={"behavior.json": behavior}))
    with pytest.raises(PromotionBlocked, match="observation shapes"):
        Governance(registry).promote(v.version, "staging")


def _promote_many(root, database, versions, n):
    ledger = LocalModelRegistry(root, database).ledger
    for i in range(n):
        ledger.move_alias("Nav", "staging", versions[i % len(versions)], action="promote", reason=f"p{i}",
                          respect_freeze=False)
    return n


def test_concurrent_promotions_lose_no_ledger_entry(db_registry, tmp_path, database):
    registry = db_registry
    versions = [register(registry, tmp_path, name, evaluate=False).version for name in ("straight", "avoid")]
    assert sum(race(_promote_many, [(registry.root, database, versions[::k], 25) for k in (1, -1)])) == 50
    history = registry.ledger.history("Nav")
    assert len(history) == 50 and [e.seq for e in history] == sorted({e.seq for e in history})
    for prev, cur in zip(history, history[1:], strict=False):
        assert cur.from_version == prev.to_version, "every move saw the previous one: atomic"
    assert registry.ledger.aliases("Nav")["staging"] == history[-1].to_version


def test_report_and_cli(registry, tmp_path):
    gov = Governance(registry)
    champion = register(registry, tmp_path, "straight")
    to_production(gov, champion)
    challenger = register(registry, tmp_path, "avoid")
    outcome = to_production(gov, challenger)
    report = Path(outcome.entry.evidence["report"]["path"])
    assert report.is_file() and (report.parent / "outcomes.png").is_file()
    text = report.read_text()
    assert challenger.version in text and "| success rate |" in text and "PASS reward" in text
    data = json.loads((report.parent / "report.json").read_text())
    assert data["baseline"] == champion.version and data["fingerprint"]["seeds"] == {"training": 1}

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "mlops_unity_pipeline", "models", "--registry",
                               str(registry.root), *args], capture_output=True, text=True, timeout=300)

    r = cli("history", "Nav")
    assert r.returncode == 0 and f"production: {challenger.version}" in r.stdout and "promote" in r.stdout
    r = cli("rollback", "Nav", "--reason", "regression in playtest", "--corrective-action", "retrain")
    assert r.returncode == 0 and "frozen" in r.stdout
    r = cli("promote", challenger.version, "--to", "staging")
    assert r.returncode == 2 and "frozen" in r.stderr and "Traceback" not in r.stderr
    r = cli("unfreeze", "Nav", "--reason", "fixed")
    assert r.returncode == 0
    r = cli("report", champion.version, "--out", str(tmp_path / "rep"))
    assert r.returncode == 0 and (tmp_path / "rep" / "report.md").is_file()


def test_rollback_never_lands_on_a_version_whose_promotion_was_blocked(db_registry, tmp_path):
    registry = db_registry
    gov = Governance(registry)
    only = register(registry, tmp_path, "avoid")
    to_production(gov, only)  # the only production version ever
    blocked = register(registry, tmp_path, "straight")
    gov.promote(blocked.version, "staging")
    with pytest.raises(PromotionBlocked):
        gov.promote(blocked.version, "production", gate_config=QUICK)
    with pytest.raises(GovernanceError, match="no earlier known-good"):
        gov.rollback("Nav", reason="regression")
    assert registry.ledger.aliases("Nav")["production"] == only.version


def test_promotion_across_contracts_is_refused_with_both_named(registry, tmp_path):
    gov = Governance(registry)
    to_production(gov, register(registry, tmp_path, "avoid"))  # navigation: 12 observations
    reach = build_behavior(behavior_name="Nav", archetype="reach_target")  # 6 observations, same asset name
    behavior = tmp_path / "reach.json"
    behavior.write_text(reach.to_json())
    model = linear_policy(tmp_path / "models" / "reach.onnx", reach.observation_size,
                          np.zeros((reach.observation_size, 2), np.float32), (0.5, 0.0))
    v = registry.register(RegistrationRequest("reach-1", "Nav", "Nav", "job-reach", model,
                                              files={"behavior.json": behavior}))
    gov.promote(v.version, "staging")
    with pytest.raises(GovernanceError, match="contracts differ") as err:
        gov.promote(v.version, "production", gate_config=QUICK)
    assert "12 observations" in str(err.value) and "6 observations" in str(err.value)


def test_promotion_evidence_is_write_once(registry, tmp_path):
    import hashlib

    gov = Governance(registry)
    v = register(registry, tmp_path, "avoid")
    outcome = to_production(gov, v)
    evidence = outcome.entry.evidence["report"]
    path = Path(evidence["path"])
    r = subprocess.run([sys.executable, "-m", "mlops_unity_pipeline", "models", "--registry", str(registry.root),
                        "report", v.version], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    fresh = Path(r.stdout.strip())
    assert fresh != path and fresh.parent.name.startswith("report-") and path.parent.name.startswith("promotion-")
    assert hashlib.sha256(path.read_bytes()).hexdigest() == evidence["sha256"], "the ledger's hash still matches"
    assert "This version is the current production version" in fresh.read_text()
    r = subprocess.run([sys.executable, "-m", "mlops_unity_pipeline", "models", "--registry", str(registry.root),
                        "report", v.version, "--out", str(path.parent)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "write-once" in r.stderr
    assert hashlib.sha256(path.read_bytes()).hexdigest() == evidence["sha256"]


def test_reproducibility_retrains_the_recorded_job_and_fails_a_candidate_it_cannot_reproduce(tmp_path):
    """The real fast trainer: a candidate trained from its recorded job is retrained with two further seeds. At its
    own budget the retrained models agree with it; at a budget too small to learn they do not, and the gate says so
    with the seeds, the results and their interval."""
    from mlops_unity_pipeline import RLTrainingConfig, TrainingJob, UnityAssetSpec, UnityMLOpsOrchestrator
    from mlops_unity_pipeline.governance.gates import reproducibility_gate
    from mlops_unity_pipeline.governance.retrain import Retrainer

    orch = UnityMLOpsOrchestrator(tmp_path / "runs", evaluation_episodes=200, show_progress=False)
    job = TrainingJob(job_id="repro", asset_spec=UnityAssetSpec(asset_id="r-1", name="Repro",
                                                                description="Reach target position"),
                      rl_config=RLTrainingConfig(trainer="fast", max_steps=80_000, seed=3))
    result = orch.execute_training_job_sync(job)
    assert result.succeeded
    candidate = orch.registry.get(result.model_version)
    from mlops_unity_pipeline.evaluation.environments import SimulatorEnvironment

    env = SimulatorEnvironment(build_behavior(behavior_name="Repro", archetype="reach_target"))
    retrainer = Retrainer(tmp_path / "runs")

    ok = reproducibility_gate(candidate, env, GateConfig(), retrainer)
    assert ok.passed, ok.message
    assert ok.numbers["mode"] == "retrain" and ok.numbers["seeds"] == [1003, 2003]
    assert len(ok.numbers["retrained"]) == 2 and ok.numbers["evaluation_seed"] != HELD_OUT_SEED

    starved = reproducibility_gate(candidate, env, GateConfig(retrain_steps=2048), retrainer)
    assert not starved.passed and "does not reproduce from its recorded configuration" in starved.message
    low, high = starved.numbers["interval"]
    assert starved.numbers["metric"] == "success rate"
    assert high < starved.numbers["candidate"] - starved.numbers["allowed_difference"]
    assert len(orch.registry.list()) == 1, "retraining registers nothing in the real registry"

    cheap = reproducibility_gate(candidate, env, GateConfig(reproducibility="reevaluate"))
    assert cheap.passed and cheap.numbers["evaluation_seed"] != candidate.metrics["evaluation"]["model"]["seed"]
