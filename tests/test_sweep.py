"""`unity-mlops sweep`: the trials a grid or a random search plans, bad parameters refused clearly, and a real sweep
of fast-trainer jobs run two at a time, best first, that a re-run continues without registering anything twice."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from mlops_unity_pipeline.errors import UserError
from mlops_unity_pipeline.execution.sweep import parse_axis, plan
from mlops_unity_pipeline.registry.local import LocalModelRegistry
from mlops_unity_pipeline.specs import RLTrainingConfig, TrainingJob, UnityAssetSpec

BASE = TrainingJob(job_id="nav", asset_spec=UnityAssetSpec(asset_id="nav-1", name="Nav",
                                                           description="Reach target position"),
                   rl_config=RLTrainingConfig(trainer="fast", max_steps=2048, summary_freq=1024,
                                              hyperparameters={"buffer_size": 1024, "batch_size": 256}))


def test_a_grid_is_every_combination_and_names_go_where_they_belong():
    trials = plan(BASE, [parse_axis("learning_rate=3e-4,1e-3"), parse_axis("max_steps=2048,4096"),
                         parse_axis("network.hidden_units=32")])
    assert [t.job.job_id for t in trials] == [f"nav-sweep-00{i}" for i in range(1, 5)]
    first = trials[0].job.rl_config
    assert first.hyperparameters == {"buffer_size": 1024, "batch_size": 256, "learning_rate": 3e-4}
    assert first.max_steps == 2048 and first.network_settings == {"hidden_units": 32}
    assert {(t.settings["learning_rate"], t.settings["max_steps"]) for t in trials} == {
        (3e-4, 2048), (3e-4, 4096), (1e-3, 2048), (1e-3, 4096)}
    assert BASE.rl_config.hyperparameters == {"buffer_size": 1024, "batch_size": 256}, "the base job is untouched"


def test_random_search_draws_inside_the_ranges_reproducibly():
    axes = [parse_axis("learning_rate=1e-5..1e-2"), parse_axis("beta=0.001..0.009"), parse_axis("batch_size=64,128")]
    a, b = plan(BASE, axes, random_trials=200, seed=7), plan(BASE, axes, random_trials=200, seed=7)
    assert [t.settings for t in a] == [t.settings for t in b]
    lrs = [t.settings["learning_rate"] for t in a]
    assert all(1e-5 <= x <= 1e-2 for x in lrs)
    assert sum(x < 1e-4 for x in lrs) > 40, "log-uniform over three decades: a third below 1e-4"
    assert all(0.001 <= t.settings["beta"] <= 0.009 for t in a)
    assert {t.settings["batch_size"] for t in a} == {64, 128}


@pytest.mark.parametrize("args, message", [
    (["lr"], "expected NAME=V1,V2"),
    (["lr=1..nan"], "two finite numbers"),
    (["lr=2..1"], "low < high"),
    (["lr=1e-3..1e-2"], "need random search"),
    (["lr=1,inf"], "values must be finite"),
    (["max_steps=abc"], "trial 1"),
    (["lr=1", "lr=2"], "may appear once"),
])
def test_bad_parameters_are_refused_with_the_fix(args, message):
    with pytest.raises(UserError, match=message):
        plan(BASE, [parse_axis(a) for a in args])


def test_a_sweep_runs_every_trial_best_first_and_a_rerun_registers_nothing_new(tmp_path, clean_build_env):
    job_file = tmp_path / "nav.yaml"
    job_file.write_text(yaml.safe_dump(BASE.model_dump(mode="json")))
    cmd = [sys.executable, "-m", "mlops_unity_pipeline", "sweep", str(job_file), "--param",
           "learning_rate=3e-4,3e-3", "--parallel", "2", "--episodes", "40", "--workspace", str(tmp_path / "runs")]
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr + first.stdout
    assert "2 trial(s) on the local executor, 2 at a time" in first.stdout
    table = json.loads((tmp_path / "runs" / "nav-sweep.json").read_text())["trials"]
    assert sorted(r["job_id"] for r in table) == ["nav-sweep-001", "nav-sweep-002"]
    assert all(r["status"] == "completed" and r["model_version"] for r in table)
    rates = [r["success_rate"] for r in table]
    assert rates == sorted(rates, reverse=True), "best first"
    registry = LocalModelRegistry(tmp_path / "runs" / "_registry")
    versions = sorted(v.version for v in registry.list())
    assert len(versions) == 2
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert sorted(v.version for v in registry.list()) == versions, "the re-run continued the same runs"
    bad = subprocess.run([*cmd[:4], "--param", "lr=1..2"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and "--random N" in bad.stderr
