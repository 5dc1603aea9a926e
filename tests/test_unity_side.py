"""Generated C#, editor build script and trainer YAML: accepted by a real C# grammar and by ML-Agents itself."""

from __future__ import annotations

import itertools
import json
import re
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from mlops_unity_pipeline import RLTrainingConfig, TrainingJob, UnityAssetSpec, UnityMLOpsOrchestrator
from mlops_unity_pipeline.behavior import build_behavior
from mlops_unity_pipeline.errors import SpecError
from mlops_unity_pipeline.generate import TemplateGenerator
from mlops_unity_pipeline.generate.csharp_check import check_agent_source, check_syntax
from mlops_unity_pipeline.trainer.config import trainer_config
from mlops_unity_pipeline.trainer.mlagents_yaml import validate_many_with_mlagents

ARCHETYPES = ("reach_target", "navigation", "patrol", "obstacle_course")
ACTIONS = ({"type": "continuous", "size": 2}, {"type": "discrete", "size": 5}, {"type": "discrete", "branches": [3, 3]})
LAYOUTS = (None, {"raycast": 8, "velocity": 2}, {"rays": 16, "position": 2, "velocity": 2}, {"target": 2})


def generate(tmp_path: Path, archetype, action, layout, description="reach the goal", name="Scout"):
    asset = UnityAssetSpec(asset_id="a-1", name=name, description=description, archetype=archetype,
                           observation_space=layout, action_space=action)
    d = build_behavior(behavior_name=name, description=description, archetype=archetype,
                       observation_space=layout, action_space=action)
    return d, TemplateGenerator().generate(asset, d, RLTrainingConfig(), tmp_path)


@pytest.mark.parametrize("archetype, action, layout", list(itertools.product(ARCHETYPES, ACTIONS, LAYOUTS)))
def test_generated_agent_parses_and_matches_the_spec(tmp_path, archetype, action, layout):
    d, out = generate(tmp_path, archetype, action, layout)
    report = check_agent_source(out.agent_source.read_text(), d.observation_size)
    assert report.ok, report.errors
    assert report.observation_count == d.observation_size and report.class_name == "ScoutAgent"
    assert check_syntax(out.build_script.read_text()) == []
    source = out.agent_source.read_text()
    reads = "ContinuousActions" if action["type"] == "continuous" else "DiscreteActions"
    assert f"actions.{reads}[" in source and "Unity.Sentis" not in source
    assert f"Space Size: `{d.observation_size}`" in out.setup_notes.read_text()


def _csharp_literal_value(literal: str) -> str:
    body = literal[1:-1]
    return re.sub(r"\\(u[0-9a-f]{4}|U[0-9a-f]{8}|.)",
                  lambda m: {"n": "\n", "r": "\r", "t": "\t", '"': '"', "\\": "\\"}.get(m.group(1))
                  or chr(int(m.group(1)[1:], 16)), body)


HOSTILE = [
    'End */ public void Evil() { } /*',
    'line one\nline two\r\n"; System.IO.File.Delete("x"); //',
    'quotes " and \\" and \\u0022 and {braces} and ${interp}',
    'naïve — café ☃ 😀 \u2028 \x00\x07',
    '#if false\n#endif\n// comment\n/// <summary>',
]


@pytest.mark.parametrize("description", HOSTILE)
def test_hostile_descriptions_are_data_not_code(tmp_path, description):
    d, out = generate(tmp_path, "navigation", None, None, description=description)
    source = out.agent_source.read_text()
    assert source.isascii()
    report = check_agent_source(source, d.observation_size)
    assert report.ok, report.errors
    literal = re.search(r'public const string SourceDescription = (".*");', source).group(1)
    assert _csharp_literal_value(literal) == description
    assert set(report.signatures) == {"Initialize", "OnEpisodeBegin", "CollectObservations", "OnActionReceived",
                                      "Heuristic", "OnTriggerEnter", "CurrentGoal", "DistanceToGoal",
                                      "GoalDirection", "RandomPoint", "RecordOutcome", "SeedFromEvaluator"}


def test_validator_catches_broken_agents(tmp_path):
    d, out = generate(tmp_path, "reach_target", None, None)
    good = out.agent_source.read_text()
    cases = {
        "Heuristic(ActionBuffers": ("in ActionBuffers actionsOut", "ActionBuffers actionsOut"),
        "CollectObservations adds 5": ("sensor.AddObservation(Mathf.Exp(-distanceToGoal));", ""),
        "syntax error": ("public override void Initialize()\n        {", "public override void Initialize()\n"),
        "missing `using Unity.MLAgents.Sensors;`": ("using Unity.MLAgents.Sensors;", ""),
        "renamed": ("using UnityEngine;", "using UnityEngine;\nusing Unity.Sentis;"),
        "missing override: public override void OnEpisodeBegin()": ("OnEpisodeBegin()", "OnEpisodeStart()"),
        "no class derives": (": Agent", ": MonoBehaviour"),
    }
    for words, (old, new) in cases.items():
        assert old in good
        errors = check_agent_source(good.replace(old, new, 1), d.observation_size).errors
        assert any(words in e for e in errors), (words, errors)


def test_asset_names_that_are_not_identifiers_are_rejected():
    for bad in ("My Agent", "Agent;class X", "../x", "int"):
        with pytest.raises(ValueError, match="C# identifier"):
            UnityAssetSpec(asset_id="a", name=bad)


def _sample_behaviors(samples):
    for path in sorted((samples / "config").rglob("*.yaml")):
        for name in yaml.safe_load(path.read_text())["behaviors"]:
            yield path, name


def test_every_sample_config_imports(samples):
    seen = 0
    for path, name in _sample_behaviors(samples):
        cfg = RLTrainingConfig.from_mlagents_yaml(path, behavior=name)
        doc = yaml.safe_load(path.read_text())
        defaults, own = doc.get("default_settings") or {}, doc["behaviors"][name]
        raw = {**defaults, **own, "hyperparameters": {**defaults.get("hyperparameters", {}),
                                                      **own.get("hyperparameters", {})}}
        assert cfg.max_steps == int(float(raw["max_steps"]))
        assert cfg.hyperparameters == raw["hyperparameters"]
        for block in (raw["reward_signals"].get("gail"), raw.get("behavioral_cloning")):  # as mlagents-learn finds
            if block:  # them: against the config file's directory
                block["demo_path"] = str((path.parent / block["demo_path"]).resolve())
        assert cfg.reward_signals == raw["reward_signals"]
        assert cfg.behavioral_cloning == raw.get("behavioral_cloning")
        assert cfg.mlagents_config["behaviors"].keys() == doc["behaviors"].keys(), "every behaviour is kept"
        seen += 1
    assert seen >= 18


CURRICULUM = """
behaviors:
  BigWallJump:
    trainer_type: ppo
    hyperparameters: {batch_size: 128, buffer_size: 2048, learning_rate: 0.0003}
    reward_signals:
      extrinsic: {gamma: 0.99, strength: 1.0}
      curiosity: {gamma: 0.99, strength: 0.02, learning_rate: 0.0003}
    max_steps: 2.0e7
    threaded: true
environment_parameters:
  big_wall_height:
    curriculum:
      - name: Lesson0
        completion_criteria: {measure: progress, behavior: BigWallJump, signal_smoothing: true,
                              min_lesson_length: 100, threshold: 0.1}
        value: {sampler_type: uniform, sampler_parameters: {min_value: 0.0, max_value: 4.0}}
      - name: Lesson1
        value: 8.0
  gravity: 9.81
env_settings: {num_envs: 4, seed: 7}
engine_settings: {time_scale: 10}
"""


def test_curriculum_and_environment_parameters_survive_import(tmp_path):
    path = tmp_path / "walljump.yaml"
    path.write_text(CURRICULUM)
    cfg = RLTrainingConfig.from_mlagents_yaml(path)
    assert cfg.max_steps == 20_000_000 and cfg.num_envs == 4 and cfg.seed == 7 and cfg.time_scale == 10
    assert cfg.reward_signals["curiosity"]["strength"] == 0.02 and cfg.trainer_settings == {"threaded": True}
    d = build_behavior(behavior_name="Jumper", archetype="navigation")
    doc = trainer_config(d, cfg)
    lesson = doc["environment_parameters"]["big_wall_height"]["curriculum"][0]
    assert lesson["completion_criteria"]["behavior"] == "Jumper", "curriculum re-targeted at our behavior"
    assert doc["environment_parameters"]["gravity"] == 9.81 and doc["behaviors"]["Jumper"]["threaded"] is True


def test_unknown_options_are_reported_like_mlagents(tmp_path, samples):
    raw = yaml.safe_load((samples / "config" / "ppo" / "3DBall.yaml").read_text())
    raw["behaviors"]["3DBall"]["hyperparameters"]["tau"] = 0.1
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(raw))
    with pytest.raises(SpecError, match="The option tau was specified in your YAML file for PPOSettings, but is "
                                        "invalid"):
        RLTrainingConfig.from_mlagents_yaml(bad)
    raw["behaviors"]["3DBall"]["hyperparameters"].pop("tau")
    raw["behaviors"]["3DBall"]["reward_signals"]["happiness"] = {"strength": 1.0}
    bad.write_text(yaml.safe_dump(raw))
    with pytest.raises(SpecError, match="'happiness' is not a valid RewardSignalType"):
        RLTrainingConfig.from_mlagents_yaml(bad)
    with pytest.raises(SpecError, match="choose one with behavior"):
        RLTrainingConfig.from_mlagents_yaml(samples / "config" / "ppo" / "WallJump.yaml")


@pytest.mark.trainer
def test_generated_and_imported_yaml_pass_mlagents_strict_parser(tmp_path, samples, trainer_env):
    paths = []
    for archetype, algorithm in itertools.product(ARCHETYPES, ("PPO", "SAC")):
        d = build_behavior(behavior_name="Scout", archetype=archetype)
        p = tmp_path / f"{archetype}-{algorithm}.yaml"
        p.write_text(yaml.safe_dump(trainer_config(d, RLTrainingConfig(algorithm=algorithm, max_steps=1000))))
        paths.append(p)
    d = build_behavior(behavior_name="Imported", archetype="navigation")
    for i, (path, name) in enumerate(_sample_behaviors(samples)):
        cfg = RLTrainingConfig.from_mlagents_yaml(path, behavior=name)
        p = tmp_path / f"imported-{i}-{name}.yaml"
        p.write_text(yaml.safe_dump(trainer_config(d, cfg)))
        paths.append(p)
    curriculum = tmp_path / "walljump.yaml"
    curriculum.write_text(CURRICULUM)
    p = tmp_path / "imported-curriculum.yaml"
    p.write_text(yaml.safe_dump(trainer_config(d, RLTrainingConfig.from_mlagents_yaml(curriculum))))
    paths.append(p)
    bad = tmp_path / "bad.yaml"
    doc = yaml.safe_load(paths[0].read_text())
    doc["behaviors"]["Scout"]["hyperparameters"]["tau"] = 0.1
    bad.write_text(yaml.safe_dump(doc))
    verdicts = validate_many_with_mlagents([*paths, bad], trainer_env.python)
    assert {p: e for p, e in verdicts.items() if e and p != str(bad)} == {}
    assert "The option tau was specified in your YAML file for PPOSettings" in verdicts[str(bad)]


FAKE_UNITY = textwrap.dedent("""
    # A stand-in for the Unity editor: checks the scripts were installed, then 'builds' the headless player.
    import json, os, sys
    from pathlib import Path
    args = sys.argv[1:]
    val = lambda flag: args[args.index(flag) + 1]
    project = Path(val("-projectPath"))
    assert (project / "Assets/UnityMLOps/Editor/BuildScript.cs").is_file(), "BuildScript.cs not installed"
    assert list((project / "Assets/UnityMLOps/Generated").glob("*.cs")), "Agent not installed"
    assert "BuildScript.PerformBuild" in args and "-batchmode" in args
    if os.environ.get("FAKE_UNITY_MODE") == "no-player":
        sys.exit(0)
    from mlops_unity_pipeline.behavior import BehaviorDefinition
    from mlops_unity_pipeline.build.headless import build_headless_player
    generated = Path(os.environ["UNITY_MLOPS_GENERATED_DIR"])
    d = BehaviorDefinition.from_dict(json.loads((generated / "behavior.json").read_text()))
    print("Build succeeded")
    build_headless_player(d, Path(val("--mlagents-build-output-path")), os.environ["TRAINER_PYTHON"], 16)
""")


@pytest.mark.trainer
def test_unity_editor_build_stage_with_a_stand_in_editor(tmp_path, monkeypatch, trainer_env, clean_build_env):
    editor = tmp_path / "Unity"
    editor.write_text(f"#!{sys.executable}\n{FAKE_UNITY}")
    editor.chmod(0o755)
    project = tmp_path / "MyGame"
    (project / "Assets").mkdir(parents=True)
    monkeypatch.setenv("UNITY_EDITOR", str(editor))
    monkeypatch.setenv("UNITY_PROJECT_PATH", str(project))
    monkeypatch.setenv("TRAINER_PYTHON", str(trainer_env.python))
    orch = UnityMLOpsOrchestrator(tmp_path / "runs", show_progress=False)
    job = TrainingJob(job_id="unity-build", asset_spec=UnityAssetSpec(asset_id="u-1", name="Scout",
                                                                      description="reach the target"),
                      rl_config=RLTrainingConfig(max_steps=3000, summary_freq=1000, agents_per_env=16),
                      evaluation={"episodes": 64})
    result = orch.execute_training_job_sync(job)
    assert result.succeeded, (result.failed_stage, result.error, result.log_tail)
    assert (project / "Assets/UnityMLOps/Generated/ScoutAgent.cs").is_file()
    ev = result.metrics["evaluation"]  # judged on the build itself, through ML-Agents' protocol
    assert ev["environment"]["kind"] == "unity" and ev["environment"]["success_stat_seen"]
    assert ev["model"]["episodes"] == 64 and ev["model"]["success_rate"] is not None
    build_log = (tmp_path / "runs" / "unity-build" / "logs" / "build.log").read_text()
    assert "-executeMethod BuildScript.PerformBuild" in build_log and "Build succeeded" in build_log

    monkeypatch.setenv("FAKE_UNITY_MODE", "no-player")
    result = orch.execute_training_job_sync(job.model_copy(update={"job_id": "unity-no-player"}))
    assert result.failed_stage == "build" and "no player was found" in result.error

    monkeypatch.setenv("UNITY_BUILD_COMMAND", f"{sys.executable} -c 'import time; time.sleep(30)'")
    monkeypatch.setenv("UNITY_BUILD_TIMEOUT_S", "1")
    result = orch.execute_training_job_sync(job.model_copy(update={"job_id": "unity-timeout"}))
    assert result.failed_stage == "build" and "did not finish within 1 s" in result.error


@pytest.mark.trainer
def test_a_config_mlagents_rejects_fails_the_generate_stage(tmp_path, trainer_env, clean_build_env):
    orch = UnityMLOpsOrchestrator(tmp_path / "runs", show_progress=False)
    job = TrainingJob(job_id="bad-yaml", asset_spec=UnityAssetSpec(asset_id="b", name="Scout", description="reach"),
                      rl_config=RLTrainingConfig(max_steps=1000, hyperparameters={"tau": 0.1}))
    result = orch.execute_training_job_sync(job)
    assert result.failed_stage == "generate"
    assert "ML-Agents rejects it" in result.error and "option tau" in result.error
    assert json.loads((tmp_path / "runs" / "bad-yaml" / "metrics.json").read_text())["failed_stage"] == "generate"


@pytest.mark.trainer
def test_the_strict_yaml_check_is_cached_by_content_and_environment(tmp_path, trainer_env, monkeypatch):
    """The second check of the same config with the same environment runs no parser at all (the wrapper
    interpreter counts its runs); another config runs it again."""
    from mlops_unity_pipeline.trainer.mlagents_yaml import validate_with_mlagents

    monkeypatch.setenv("UNITY_MLOPS_CACHE_DIR", str(tmp_path / "cache"))
    runs = tmp_path / "runs.txt"
    python = tmp_path / "bin" / "python"
    python.parent.mkdir()
    python.write_text(f"#!/bin/sh\necho run >> {runs}\nexec {trainer_env.python} \"$@\"\n")
    python.chmod(0o755)
    d = build_behavior(behavior_name="Cached", archetype="navigation")
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(trainer_config(d, RLTrainingConfig(max_steps=1000))))
    assert validate_with_mlagents(config, python) is None
    assert validate_with_mlagents(config, python) is None
    assert runs.read_text().count("run") == 1, "the cached verdict was used"
    doc = yaml.safe_load(config.read_text())
    doc["behaviors"]["Cached"]["hyperparameters"]["tau"] = 0.1
    config.write_text(yaml.safe_dump(doc))
    assert "tau" in validate_with_mlagents(config, python)
    assert validate_with_mlagents(config, python) == validate_with_mlagents(config, python)
    assert runs.read_text().count("run") == 2, "a rejection is cached too"
