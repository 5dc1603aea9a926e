"""The user's game is the test bench: a model of a Unity build is evaluated, gated, retrained and ranked on that
build, through ML-Agents' own `UnityEnvironment`, never in the simulator of the job's description.

A stand-in for a team's Unity build: `UNITY_BUILD_COMMAND` runs a script that builds a headless player of *another*
behaviour than the job describes (navigation with three obstacles, for a job that says "Reach target position"
with the same observations and actions). Whatever judges the model must play that executable: the evaluate stage,
the production gates, the reproducibility retraining (same build, found by its digest) and a sweep's ranking.
"""

from __future__ import annotations

import json
import shutil
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from mlops_unity_pipeline import RLTrainingConfig, TrainingJob, UnityAssetSpec, UnityMLOpsOrchestrator
from mlops_unity_pipeline.behavior import build_behavior
from mlops_unity_pipeline.build.headless import build_headless_player
from mlops_unity_pipeline.demos.record import expert_policy
from mlops_unity_pipeline.evaluation.build_env import BuildEnvironment
from mlops_unity_pipeline.evaluation.environments import SimulatorEnvironment
from mlops_unity_pipeline.evaluation.evaluate import _FunctionPolicy
from mlops_unity_pipeline.evaluation.outcomes import summarize
from mlops_unity_pipeline.governance import GateConfig, Governance
from mlops_unity_pipeline.governance.retrain import Retrainer

pytestmark = pytest.mark.trainer
LAYOUT = {"raycast": 8, "velocity": 2, "target": 2}

STAND_IN = textwrap.dedent("""
    # A stand-in for a team's Unity build command: the game is navigation with obstacles, whatever the job says.
    import os, sys
    from pathlib import Path
    args = sys.argv[1:]
    out = Path(args[args.index("--mlagents-build-output-path") + 1])
    from mlops_unity_pipeline.behavior import build_behavior
    from mlops_unity_pipeline.build.headless import build_headless_player
    game = build_behavior(behavior_name=os.environ["UNITY_MLOPS_BEHAVIOR"], archetype="navigation",
                          observation_space={"raycast": 8, "velocity": 2, "target": 2})
    with open(os.environ["STAND_IN_BUILDS"], "a") as log:
        log.write(str(out) + "\\n")
    build_headless_player(game, out, os.environ["TRAINER_PYTHON"], 16)
    print("Build succeeded")
""")


def stand_in(tmp: Path, monkeypatch, trainer_env) -> Path:
    script = tmp / "build_game.py"
    script.write_text(STAND_IN)
    builds = tmp / "builds.log"
    monkeypatch.setenv("UNITY_BUILD_COMMAND", f"{sys.executable} {script}")
    monkeypatch.setenv("TRAINER_PYTHON", str(trainer_env.python))
    monkeypatch.setenv("STAND_IN_BUILDS", str(builds))
    return builds


def job(job_id: str, **rl) -> TrainingJob:
    return TrainingJob(job_id=job_id, asset_spec=UnityAssetSpec(asset_id="game-1", name="Scout",
                                                                description="Reach target position",
                                                                observation_space=LAYOUT),
                       rl_config=RLTrainingConfig(max_steps=4000, summary_freq=1000, agents_per_env=16, **rl),
                       evaluation={"episodes": 96, "envs": 2})


@pytest.fixture(scope="module")
def trained(tmp_path_factory, trainer_env):
    tmp = tmp_path_factory.mktemp("game")
    with pytest.MonkeyPatch.context() as mp:
        for var in ("MLAGENTS_TRAIN_COMMAND", "UNITY_MLOPS_WORKSPACE", "UNITY_MLOPS_REGISTRY"):
            mp.delenv(var, raising=False)
        builds = stand_in(tmp, mp, trainer_env)
        orch = UnityMLOpsOrchestrator(tmp / "runs", show_progress=False)
        result = orch.execute_training_job_sync(job("game"))
    assert result.succeeded, (result.failed_stage, result.error, result.log_tail)
    return tmp, orch, orch.registry.get(result.model_version), builds


def test_the_evaluate_stage_plays_the_build_not_the_description(trained):
    tmp, orch, version, builds = trained
    ev = version.metrics["evaluation"]
    where = ev["environment"]
    assert where["kind"] == "unity" and where["digest"] == version.lineage["build"]["digest"]
    assert where["success_stat_seen"] and where["collision_stat_seen"] and where["envs"] == 2
    assert ev["model"]["episodes"] == 96 and ev["behavior_spec"] == {"obs": [[12]], "continuous": 2, "branches": []}
    assert len(builds.read_text().splitlines()) == 1
    # the random baseline collided: the build has obstacles, which the description's task does not
    assert ev["random_baseline"]["collision_rate"] > 0
    description = build_behavior(behavior_name="Scout", description="Reach target position", observation_space=LAYOUT)
    assert description.archetype == "reach_target" and description.params.num_obstacles == 0
    # the dashboard says where the run was judged
    from starlette.testclient import TestClient

    from mlops_unity_pipeline.app import App
    from mlops_unity_pipeline.ui.server import create_app

    page = TestClient(create_app(App(workspace=str(tmp / "runs")))).get("/runs/game").text
    assert "Evaluated on the unity" in page and where["digest"][:12] in page and "Episode/Success" in page


def test_production_gates_and_the_reproducibility_retraining_run_on_the_build(trained, monkeypatch):
    """The gates find the build by its digest (UNITY_BUILD_COMMAND unset: nothing may rebuild it, and the
    description's player must not be built), play both policies on it episode by episode, and retrain on it."""
    tmp, orch, version, builds = trained
    monkeypatch.delenv("UNITY_BUILD_COMMAND", raising=False)
    config = GateConfig(seeds=(31, 32), episodes_per_seed=32, reproducibility="retrain", retrain_seeds=1,
                        retrain_steps=2000, reproducibility_episodes=64, reproducibility_tolerance=1.0,
                        min_reward_improvement=-1e9, safety_margin=1.0, max_length_increase=100.0)
    gov = Governance(orch.registry, config, retrain=Retrainer(tmp / "runs", evaluation_episodes=32),
                     workspace=tmp / "runs")
    gov.promote(version.version, "staging")
    outcome = gov.promote(version.version, "production")
    gates = {g.name: g for g in outcome.report.results}
    assert outcome.report.passed, [g.to_dict() for g in outcome.report.failures()]
    env = gates["environment"].numbers
    assert env["kind"] == "unity" and env["digest"] == version.lineage["build"]["digest"] and env["reused"] == "reused"
    assert gates["reward"].numbers["paired"] is True, "the player replays the same starts for every policy"
    assert gates["reward"].numbers["episodes"] == 64
    safety = gates["safety"].numbers
    assert safety["collision_rate"]["baseline"] > 0, "the random baseline collides in the game"
    repro = gates["reproducibility"].numbers
    assert repro["mode"] == "retrain" and repro["environment"]["kind"] == "unity"
    assert repro["retrained_on"][0]["digest"] == version.lineage["build"]["digest"]
    assert repro["retrained_on"][0]["found"] == "reused"
    assert len(builds.read_text().splitlines()) == 1, "nothing was rebuilt"

    # what the description's simulator would say about the same random baseline: no collision can happen there
    description = build_behavior(behavior_name="Scout", description="Reach target position", observation_space=LAYOUT)
    from mlops_unity_pipeline.evaluation.evaluate import random_policy

    sim = SimulatorEnvironment(description).run({"Scout": random_policy(description, 0)}, 64, 31)["Scout"]
    assert sim.collision.mean() == 0.0 < safety["collision_rate"]["baseline"]


def test_a_build_that_is_gone_fails_the_gate_clearly_or_is_rebuilt_with_the_command(trained, monkeypatch,
                                                                                   trainer_env):
    tmp, orch, version, builds = trained
    record = version.metrics["evaluation"]["environment"]
    moved = Path(record["root"]).with_name("moved-away")
    shutil.move(record["root"], moved)
    try:
        monkeypatch.delenv("UNITY_BUILD_COMMAND", raising=False)
        config = GateConfig(seeds=(5,), episodes_per_seed=16, reproducibility="off")
        gov = Governance(orch.registry, config, workspace=tmp / "runs")
        from mlops_unity_pipeline.governance.gates import run_gates

        report = run_gates(version, None, config, workspace=tmp / "runs")
        env = {g.name: g for g in report.results}["environment"]
        assert not report.passed and "gone or changed" in env.message and "UNITY_BUILD_COMMAND" in str(env.message) \
            + str(env.numbers)
        stand_in(tmp, monkeypatch, trainer_env)
        report = run_gates(version, None, config, workspace=tmp / "runs")
        env = {g.name: g for g in report.results}["environment"]
        assert env.passed and env.numbers["reused"] == "rebuilt" and env.numbers["kind"] == "unity"
        assert len(builds.read_text().splitlines()) == 2
        assert gov.registry.get(version.version).version == version.version
    finally:
        shutil.rmtree(record["root"], ignore_errors=True)
        shutil.move(moved, record["root"])


def test_a_sweep_over_a_unity_build_ranks_trials_by_their_evaluation_on_the_build(tmp_path, monkeypatch, trainer_env,
                                                                                 clean_build_env):
    import asyncio

    from mlops_unity_pipeline.execution.base import LocalExecutor
    from mlops_unity_pipeline.execution.sweep import parse_axis, plan, run, table

    stand_in(tmp_path, monkeypatch, trainer_env)
    orch = UnityMLOpsOrchestrator(tmp_path / "runs", show_progress=False)
    from mlops_unity_pipeline.specs import EvaluationSettings

    base = job("sweep").model_copy(update={"evaluation": EvaluationSettings(episodes=32, envs=1)})
    trials = plan(base, [parse_axis("max_steps=600,1800")])
    results = asyncio.run(run(LocalExecutor(orch), trials, parallel=1))
    rows = table(trials, results)
    assert [r["status"] for r in rows] == ["completed", "completed"]
    assert all(r["evaluated_on"] == "unity" for r in rows)
    scores = [(r["success_rate"], r["mean_reward"]) for r in rows]
    assert scores == sorted(scores, reverse=True), "best first, by the build's evaluation"


@pytest.mark.parametrize("archetype", ["reach_target", "navigation", "patrol", "obstacle_course"])
def test_the_build_and_the_simulator_agree_for_every_built_in_behaviour(tmp_path, trainer_env, archetype):
    """The same policy over 500 held-out episodes: in the simulator, and on the headless player through
    `UnityEnvironment`; each success rate lies in the other's 95 % interval."""
    d = build_behavior(behavior_name="Agent", archetype=archetype)
    exe = build_headless_player(d, tmp_path / "Agent", trainer_env.python, 64)
    policy = _FunctionPolicy(expert_policy(d), d)
    sim = summarize(SimulatorEnvironment(d).run({"Agent": policy}, 500, 1_000_003)["Agent"], "expert", 1)
    with BuildEnvironment(exe, kind="headless-player", python=trainer_env.python, envs=2) as env:
        build = summarize(env.run({"Agent": policy}, 500, 1_000_003)["Agent"], "expert", 1)
        assert env.last_run["env_steps"] > 0 and env.last_run["steps_per_s"] > 0
    assert build.episodes == sim.episodes == 500
    lo, hi = sim.success_ci95
    blo, bhi = build.success_ci95
    assert lo <= build.success_rate <= hi and blo <= sim.success_rate <= bhi, (sim.to_dict(), build.to_dict())
    assert abs(build.mean_reward - sim.mean_reward) < 3 * (sim.reward_std + build.reward_std) / np.sqrt(500)
    json.dumps(build.to_dict())


TWO_BEHAVIOURS = textwrap.dedent("""
    # A game with two behaviours: the stand-in builds both into one player.
    import os, sys
    from pathlib import Path
    args = sys.argv[1:]
    out = Path(args[args.index("--mlagents-build-output-path") + 1])
    from mlops_unity_pipeline.behavior import build_behavior
    from mlops_unity_pipeline.build.headless import build_headless_player
    game = [build_behavior(behavior_name="Scout", archetype="navigation"),
            build_behavior(behavior_name="Guard", archetype="patrol")]
    build_headless_player(game, out, os.environ["TRAINER_PYTHON"], 16)
""")


def test_a_job_trains_every_behaviour_of_the_build_and_registers_one_version_each(tmp_path, monkeypatch,
                                                                                   trainer_env, clean_build_env):
    """The team's config lists both behaviours of its build: one run trains both, evaluates each on the build and
    registers two versions in one transaction, linked by the run."""
    script = tmp_path / "build_two.py"
    script.write_text(TWO_BEHAVIOURS)
    monkeypatch.setenv("UNITY_BUILD_COMMAND", f"{sys.executable} {script}")
    monkeypatch.setenv("TRAINER_PYTHON", str(trainer_env.python))
    config = tmp_path / "game.yaml"
    config.write_text(textwrap.dedent("""
        behaviors:
          Scout: {trainer_type: ppo, max_steps: 2000, summary_freq: 1000,
                  hyperparameters: {batch_size: 128, buffer_size: 1024}}
          Guard: {trainer_type: ppo, max_steps: 3000, summary_freq: 1000,
                  hyperparameters: {batch_size: 128, buffer_size: 1024}}
        """))
    orch = UnityMLOpsOrchestrator(tmp_path / "runs", show_progress=False)
    job = TrainingJob(job_id="two", asset_spec=UnityAssetSpec(asset_id="game-2", name="Scout",
                                                              description="avoid obstacles"),
                      rl_config=RLTrainingConfig.from_mlagents_yaml(config, behavior="Scout"),
                      evaluation={"episodes": 32, "envs": 1})
    result = orch.execute_training_job_sync(job)
    assert result.succeeded, (result.failed_stage, result.error, result.log_tail)
    behaviours = result.metrics["behaviors"]
    assert set(behaviours) == {"Scout", "Guard"}
    versions = {b: orch.registry.get(v["model_version"]) for b, v in behaviours.items()}
    assert versions["Scout"].version == result.model_version and versions["Scout"].asset_name == "scout"
    assert versions["Guard"].asset_name == "scout-guard" and versions["Guard"].behavior_name == "Guard"
    assert versions["Guard"].run_key == f"{versions['Scout'].run_key}#Guard", "linked by the run"
    for b, v in versions.items():
        ev = v.metrics["evaluation"]
        assert ev["environment"]["kind"] == "unity" and ev["model"]["episodes"] == 32, b
        assert ev["behavior_spec"]["obs"] == [[12 if b == "Scout" else 13]], (b, ev["behavior_spec"])
    status = json.loads((tmp_path / "runs" / "two" / "training" / "two" / "run_logs" /
                         "training_status.json").read_text())
    assert status["Guard"]["final_checkpoint"]["steps"] >= 3000, "each behaviour reached its own max_steps"
    again = orch.execute_training_job_sync(job, run_key=versions["Scout"].run_key)  # the same run: nothing new
    assert again.model_version == result.model_version and len(orch.registry.list()) == 2
    from starlette.testclient import TestClient  # the dashboard groups the run's versions

    from mlops_unity_pipeline.app import App
    from mlops_unity_pipeline.ui.server import create_app

    page = TestClient(create_app(App(workspace=str(tmp_path / "runs")))).get("/runs/two").text
    assert "Behaviours of this run" in page and versions["Guard"].version in page and "/models/scout-guard" in page
