import json

import pytest
from pydantic import ValidationError

from mlops_unity_pipeline import RLTrainingConfig, TrainingJob, TrainingSchedule, UnityAssetSpec
from mlops_unity_pipeline.errors import SpecError
from mlops_unity_pipeline.specs import load_job


def asset(**kw):
    base = dict(asset_id="test-001", name="SimpleAgent", asset_type="behavior", description="Reach target")
    return UnityAssetSpec(**{**base, **kw})


def test_seed_constructors_work_as_written():
    a = asset(observation_space={"raycast": 8, "velocity": 2}, action_space={"type": "continuous", "size": 2})
    c = RLTrainingConfig(algorithm="PPO", max_steps=100_000, num_envs=8, time_scale=20.0)
    job = TrainingJob(job_id="smoke-test-job", asset_spec=a, rl_config=c)
    assert job.rl_config.algorithm == "PPO" and job.asset_spec.effective_behavior_name == "SimpleAgent"
    s = TrainingSchedule(schedule_id="nightly", cron_expression="0 2 * * *", asset_specs=[a], rl_config=c,
                         enabled=True)
    assert s.enabled and s.timezone == "UTC"
    assert RLTrainingConfig(use_offline_rl=True, demonstrations_path="demos/").use_offline_rl


@pytest.mark.parametrize(
    "kwargs, field, words",
    [
        (dict(algorithm="DQN"), "algorithm", "PPO, SAC"),
        (dict(max_steps=0), "max_steps", "> 0"),
        (dict(max_steps=-5), "max_steps", "> 0"),
        (dict(num_envs=0), "num_envs", "> 0"),
        (dict(time_scale=0), "time_scale", "> 0"),
        (dict(agents_per_env=0), "agents_per_env", "> 0"),
        (dict(use_offline_rl=True), "", "demonstrations_path"),
        (dict(learning_rate=1e-3), "learning_rate", "Extra inputs"),
    ],
)
def test_bad_training_config_names_the_field(kwargs, field, words):
    with pytest.raises(ValidationError) as err:
        RLTrainingConfig(**kwargs)
    text = str(err.value)
    assert field in text and words in text


@pytest.mark.parametrize(
    "kwargs, words",
    [
        (dict(name="Simple Agent"), "C# identifier"),
        (dict(name="../evil"), "C# identifier"),
        (dict(name="a/b"), "C# identifier"),
        (dict(name="class"), "C# identifier"),
        (dict(name="9Lives"), "C# identifier"),
        (dict(asset_id="a/b"), "asset_id"),
        (dict(asset_id="has space"), "asset_id"),
        (dict(asset_id=".hidden"), "asset_id"),
        (dict(behavior_name="My Behavior"), "behavior_name"),
        (dict(observation_space={"raycast": 0}), "positive size"),
        (dict(action_space={"type": "analog", "size": 2}), "action_space.type"),
        (dict(action_space={"type": "continuous", "size": 0}), "action_space.size"),
        (dict(action_space={"type": "discrete", "branches": [3, 0]}), "branches"),
    ],
)
def test_bad_asset_spec_names_the_field(kwargs, words):
    with pytest.raises(ValidationError) as err:
        asset(**kwargs)
    assert words in str(err.value)


def test_bad_job_id_and_schedule():
    with pytest.raises(ValidationError, match="job_id"):
        TrainingJob(job_id="a b", asset_spec=asset())
    with pytest.raises(ValidationError, match="cron_expression"):
        TrainingSchedule(schedule_id="s", cron_expression="every night", asset_specs=[asset()])
    with pytest.raises(ValidationError, match="at least one asset"):
        TrainingSchedule(schedule_id="s", cron_expression="0 2 * * *", asset_specs=[])


def test_algorithm_is_case_insensitive():
    assert RLTrainingConfig(algorithm="sac").algorithm == "SAC"


def test_load_job_yaml_and_json(tmp_path):
    y = tmp_path / "job.yaml"
    y.write_text("job_id: j1\nasset_spec:\n  asset_id: a1\n  name: Walker\n  description: reach the goal\n"
                 "rl_config:\n  max_steps: 5000\n")
    job = load_job(y)
    assert job.rl_config.max_steps == 5000
    j = tmp_path / "job.json"
    j.write_text(json.dumps(job.model_dump(mode="json")))
    assert load_job(j) == job


def test_load_job_errors_name_file_and_field(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("job_id: j1\nasset_spec:\n  asset_id: a1\n  name: Bad Name\nrl_config:\n  max_stepz: 5\n")
    with pytest.raises(SpecError) as err:
        load_job(bad)
    text = str(err.value)
    assert str(bad) in text and "asset_spec.name" in text and "rl_config.max_stepz: unknown field" in text
    with pytest.raises(SpecError, match="file not found"):
        load_job(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("job_id: [unclosed\n")
    with pytest.raises(SpecError, match="could not parse"):
        load_job(broken)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("42\n")
    with pytest.raises(SpecError, match="mapping"):
        load_job(scalar)


EXAMPLE_ARCHETYPES = {"navigation_job": "navigation", "patrol_job": "patrol", "reach_target_job": "reach_target",
                      "duel_job": "duel", "pads_job": "pads", "corridor_job": "corridor", "camera_job": "reach_target",
                      "hybrid_job": "navigation", "curriculum_job": "navigation"}


@pytest.mark.parametrize("name", sorted(EXAMPLE_ARCHETYPES))
def test_every_example_job_loads_and_means_its_archetype(name):
    from pathlib import Path

    from mlops_unity_pipeline.behavior import build_behavior
    from mlops_unity_pipeline.generate.base import TemplateGenerator
    from mlops_unity_pipeline.generate.csharp_check import check_agent_source
    from mlops_unity_pipeline.specs import load_job

    examples = Path(__file__).resolve().parents[1] / "examples"
    assert {p.stem for p in examples.glob("*_job.yaml")} == set(EXAMPLE_ARCHETYPES), "every example is listed"
    job = load_job(examples / f"{name}.yaml")
    s = job.asset_spec
    d = build_behavior(behavior_name=s.effective_behavior_name, asset_type=s.asset_type, description=s.description,
                       observation_space=s.observation_space, action_space=s.action_space, archetype=s.archetype)
    assert d.archetype == EXAMPLE_ARCHETYPES[name]
    source = TemplateGenerator().render_agent(s, d)
    assert check_agent_source(source, d.observation_size).ok
