"""The headless player speaks all of ML-Agents: one real `mlagents-learn` run on a build with six behaviours, each
exercising a feature, and checks that each feature really happened (not that it was passed through):

* a curriculum: `num_obstacles` goes from lesson `open` (0) to lesson `obstacles` (3), and the episodes the player
  served carried it (its `Task/num_obstacles` statistic, in ML-Agents' TensorBoard output);
* statistics: `Episode/Success` from the player appears in ML-Agents' TensorBoard output for every behaviour;
* self-play: the duel's two teams train with the ghost trainer, which reports ELO;
* MA-POCA: the pads' group rewards reach the trainer (its group cumulative reward);
* a camera: the camera-only behaviour's policy takes a [3, 24, 24] image;
* memory: the corridor's policy is recurrent;
* hybrid actions: the boost behaviour's policy has continuous and discrete outputs;
* SAC: a behaviour trained off-policy reports its Q losses and entropy coefficient;
* intrinsic rewards: curiosity and RND, beside the extrinsic one, report their rewards and losses.

Then the camera, recurrent and hybrid models are evaluated in the simulator and on the build, and gated.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import yaml

from mlops_unity_pipeline.behavior import build_behavior
from mlops_unity_pipeline.build.headless import build_headless_player
from mlops_unity_pipeline.evaluation.onnx_policy import OnnxPolicy
from mlops_unity_pipeline.evaluation.tfevents import read_scalars
from mlops_unity_pipeline.trainer.ports import reserve_ports
from mlops_unity_pipeline.trainer.runner import build_command, run_trainer

pytestmark = pytest.mark.trainer
STEPS = 4000

BEHAVIORS = {
    "Curr": dict(archetype="navigation"),
    "Duel": dict(archetype="duel"),
    "Pads": dict(archetype="pads"),
    "Hall": dict(archetype="corridor"),
    "Cam": dict(archetype="reach_target", observation_space={"camera": 24}),
    "Boost": dict(archetype="navigation", action_space={"type": "hybrid", "size": 2, "branches": [2]}),
    "Soft": dict(archetype="reach_target"),
    "Curious": dict(archetype="reach_target"),
}


def short(d):
    """Episodes short enough that every agent finishes several in the run (statistics and the curriculum's
    min_lesson_length count finished episodes; a run that ends before any would test luck). The duel's flag is
    wide: ELO counts decided games only, and random racers must decide some."""
    wide = {"goal_radius": 2.6} if d.params.task == "duel" else {}
    return dataclasses.replace(d, params=dataclasses.replace(d.params, max_steps=min(d.params.max_steps, 60), **wide))


def config(definitions) -> dict:
    from mlops_unity_pipeline.specs import RLTrainingConfig
    from mlops_unity_pipeline.trainer.config import behavior_settings

    cfg = RLTrainingConfig(max_steps=STEPS, summary_freq=1000, checkpoint_interval=STEPS, agents_per_env=8,
                           hyperparameters={"buffer_size": 1024, "batch_size": 128})
    behaviors = {d.behavior_name: behavior_settings(d, cfg) for d in definitions}
    behaviors["Duel"]["self_play"].update(save_steps=500, swap_steps=500, team_change=1000)
    soft = next(d for d in definitions if d.behavior_name == "Soft")
    behaviors["Soft"] = behavior_settings(soft, cfg.model_copy(update={"algorithm": "SAC", "hyperparameters": {
        "buffer_size": 4000, "batch_size": 64, "buffer_init_steps": 256}}))
    behaviors["Curious"]["reward_signals"].update(curiosity={"strength": 0.02, "gamma": 0.99},
                                                  rnd={"strength": 0.01, "gamma": 0.99})
    return {"behaviors": behaviors,
            "environment_parameters": {"num_obstacles": {"curriculum": [
                {"name": "open", "value": 0.0,
                 "completion_criteria": {"measure": "progress", "behavior": "Curr", "threshold": 0.3,
                                         "min_lesson_length": 1, "signal_smoothing": False}},
                {"name": "obstacles", "value": 3.0}]},
                "pad_radius": 3.0},  # wide pads: random pairs hold both at times, so group rewards flow
            "engine_settings": {"time_scale": 20.0, "no_graphics": False}, "env_settings": {"seed": 1, "num_areas": 2}}


@pytest.fixture(scope="module")
def trained(tmp_path_factory, trainer_env):
    tmp = tmp_path_factory.mktemp("features")
    definitions = [short(build_behavior(behavior_name=name, **kw)) for name, kw in BEHAVIORS.items()]
    exe = build_headless_player(definitions, tmp / "build" / "Curr", trainer_env.python, 8)
    cfg = tmp / "features.yaml"
    cfg.write_text(yaml.safe_dump(config(definitions)))
    with reserve_ports(1) as ports:
        command = build_command(trainer_env, cfg, exe, "features", tmp / "results", num_envs=1, seed=1,
                                base_port=ports.base, resume=False) + ["--debug"]  # the ghost trainer's swaps
        outcome = run_trainer(command, run_dir=tmp / "results" / "features", behavior="Curr", max_steps=STEPS,
                              log_path=tmp / "trainer.log", cwd=tmp)
    log = (tmp / "trainer.log").read_text()
    assert outcome.returncode == 0, log[-3000:]
    return tmp / "results" / "features", definitions, exe, log


def scalars(run: Path, behavior: str) -> dict[str, list[tuple[int, float]]]:
    out: dict[str, list[tuple[int, float]]] = {}
    for f in sorted((run / behavior).glob("events.out.tfevents.*")):
        for tag, values in read_scalars(f).items():
            out.setdefault(tag, []).extend(values)
    return out


def test_num_areas_multiplies_the_arenas_of_every_behaviour(trained):
    run, _, _, log = trained
    player_log = (run / "run_logs" / "Player-0.log").read_text()
    assert "8 agents per behaviour, 2 area(s)" in player_log


def test_statistics_from_the_player_reach_mlagents_tensorboard_output(trained):
    run, definitions, _, _ = trained
    for d in definitions:
        tags = scalars(run, d.behavior_name)
        assert "Episode/Success" in tags and "Episode/Collision" in tags, (d.behavior_name, sorted(tags))


def test_a_curriculum_lesson_changes_the_task_the_player_serves(trained):
    run, _, _, log = trained
    tags = scalars(run, "Curr")
    lessons = [v for _, v in tags["Environment/Lesson Number/num_obstacles"]]
    served = [v for _, v in tags["Task/num_obstacles"]]
    assert lessons[0] == 0 and lessons[-1] == 1, lessons
    # what the episodes really had, as the player says (a summary averages the episodes of its period: the one that
    # spans the lesson change mixes 0 and 3)
    assert served[0] == 0.0 and served[-1] > 0.0 and all(0.0 <= v <= 3.0 for v in served), served


def test_self_play_swaps_opponents_and_reports_elo(trained):
    run, _, _, log = trained
    elo = [v for _, v in scalars(run, "Duel").get("Self-play/ELO", [])]
    assert elo and elo[0] != 1200.0, elo  # games were played, and rated
    assert "Connected new brain: Duel?team=1" in log and "Connected new brain: Duel?team=0" in log
    assert "Swapping snapshot" in log and "with team 0 learning" in log, "opponents are snapshots, swapped"
    assert "Learning team 1 swapped" in log, "the learning team changes"


def test_poca_receives_group_rewards(trained):
    run, _, _, _ = trained
    tags = scalars(run, "Pads")
    group = [v for _, v in tags.get("Environment/Group Cumulative Reward", [])]
    assert group and max(group) > 0, sorted(tags)  # the pair's group rewards, as POCA counted them
    assert "Losses/Baseline Loss" in tags, "MA-POCA's own loss: the group trainer ran"


def test_sac_and_intrinsic_reward_signals_train(trained):
    run, _, _, _ = trained
    soft = scalars(run, "Soft")
    for tag in ("Losses/Q1 Loss", "Losses/Q2 Loss", "Policy/Continuous Entropy Coeff"):
        assert tag in soft, (tag, sorted(soft))
    assert "Policy/Epsilon" not in soft and "Policy/Epsilon" in scalars(run, "Curious"), "SAC, not PPO (clipping)"
    curious = scalars(run, "Curious")
    for tag in ("Policy/Curiosity Reward", "Losses/Curiosity Forward Loss", "Policy/Rnd Reward", "Losses/RND Loss",
                "Policy/Extrinsic Reward"):
        assert tag in curious, (tag, sorted(curious))
    assert all(np.isfinite(v) for _, v in curious["Losses/RND Loss"])
    assert (run / "Soft.onnx").is_file() and (run / "Curious.onnx").is_file()


def test_camera_memory_and_hybrid_policies_have_their_shapes(trained):
    run, _, _, _ = trained
    cam = OnnxPolicy(run / "Cam.onnx").contract
    assert cam.kind == "visual" and cam.observation_shapes == [(3, 24, 24)]
    hall = OnnxPolicy(run / "Hall.onnx").contract
    assert hall.kind == "recurrent" and hall.memory_size > 0 and "recurrent_in" in hall.inputs
    boost = OnnxPolicy(run / "Boost.onnx").contract
    assert boost.kind == "hybrid" and boost.continuous == 2 and boost.branches == (2,)


@pytest.mark.parametrize("behavior", ["Cam", "Hall", "Boost"])
def test_camera_recurrent_and_hybrid_models_evaluate_and_are_gated_end_to_end(trained, tmp_path, behavior):
    from mlops_unity_pipeline.evaluation.build_env import BuildEnvironment
    from mlops_unity_pipeline.evaluation.environments import SimulatorEnvironment
    from mlops_unity_pipeline.evaluation.evaluate import evaluate_model
    from mlops_unity_pipeline.governance import GateConfig, Governance
    from mlops_unity_pipeline.registry import LocalModelRegistry, RegistrationRequest

    run, definitions, _, _ = trained
    d = next(x for x in definitions if x.behavior_name == behavior)
    model, baseline = evaluate_model(run / f"{behavior}.onnx", SimulatorEnvironment(d), behavior, 64)
    assert model.episodes == 64 and model.success_rate is not None
    from mlops_unity_pipeline.trainer.environment import resolve

    alone = build_headless_player(d, tmp_path / "build" / behavior, resolve().python, 32)  # this behaviour only
    with BuildEnvironment(alone, kind="headless-player", envs=1) as env:
        on_build, _ = evaluate_model(run / f"{behavior}.onnx", env, behavior, 32)
    assert on_build.episodes == 32 and on_build.success_rate is not None

    behavior_json = tmp_path / "behavior.json"
    behavior_json.write_text(d.to_json())
    registry = LocalModelRegistry(tmp_path / "reg")
    version = registry.register(RegistrationRequest(
        "feat", behavior, behavior, "features", run / f"{behavior}.onnx", files={"behavior.json": behavior_json},
        metrics={"evaluation": {"model": model.to_dict(), "environment": {"kind": "simulator"}}}))
    gov = Governance(registry, GateConfig(seeds=(3, 4), episodes_per_seed=32, reproducibility="reevaluate",
                                          reproducibility_episodes=64, reproducibility_tolerance=1.0,
                                          min_reward_improvement=-1e9, safety_margin=1.0, max_length_increase=1e9))
    gov.promote(version.version, "staging")
    outcome = gov.promote(version.version, "production")
    assert outcome.report.passed, [g.to_dict() for g in outcome.report.failures()]
    gates = {g.name: g for g in outcome.report.results}
    assert gates["contract"].numbers["kind"] in ("visual", "recurrent", "hybrid")
    strict = GateConfig(seeds=(3,), episodes_per_seed=32, reproducibility="off", min_reward_improvement=1e9)
    failing = Governance(registry, strict).ledger  # a gate that cannot pass blocks it, with the reason
    from mlops_unity_pipeline.governance.gates import run_gates

    blocked = run_gates(version, None, strict)
    assert not blocked.passed and any(g.name == "reward" for g in blocked.failures()) and failing is not None
    assert np.isfinite(gates["reward"].numbers["improvement"])
