"""`.demo` files: Unity's samples read with the expected values, written files load in ML-Agents, corruption is
reported with the byte offset, recording, and offline-first training (behavior cloning, hybrid)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mlops_unity_pipeline.behavior import build_behavior
from mlops_unity_pipeline.demos.demofile import DemoError, read_demo, read_demos, write_demo
from mlops_unity_pipeline.demos.record import check_compatible, record_demonstrations
from mlops_unity_pipeline.trainer.environment import clean_env

EXPECTED = {  # shared/mlagents-samples/README.md
    "Expert3DBall.demo": ("3DBallLearning", 549, 1, 54.80, [(8,)], 2, ()),
    "ExpertBasic.demo": ("BasicLearning", 73, 11, 0.8436, [(20,)], 0, (3,)),
    "ExpertPushBlock.demo": ("PushBlock", 2558, 96, 4.9211, [(105,), (105,)], 0, (7,)),
    "test.demo": ("3DBall?team=0", 2144, 22, 9.7002, [(8,)], 2, ()),
    "testdcvis.demo": ("VisualFoodCollectorLearning", 38, 1, 0.0, [(84, 84, 3), (0,)], 0, (3, 3, 3, 2)),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_unity_sample_demos(samples, name):
    d = read_demo(samples / "demos" / name)
    behavior, steps, episodes, mean, shapes, cont, branches = EXPECTED[name]
    assert (d.behavior_name, d.number_steps, len(d.steps), d.number_episodes) == (behavior, steps, steps, episodes)
    assert d.mean_reward == pytest.approx(mean, abs=1e-3)
    assert d.observation_shapes == shapes and (d.continuous_size, d.branches) == (cont, branches)
    step = d.steps[0]
    if cont:  # actions only in the deprecated field in these files: still read
        assert step.continuous.shape == (cont,)
    else:
        assert step.discrete.shape == (len(branches),)


def test_visual_demos_are_decoded_or_rejected_clearly(samples):
    d = read_demo(samples / "demos" / "testdcvis.demo")
    assert d.steps[0].observations[0].compressed and d.steps[0].observations[0].data is None
    with pytest.raises(DemoError, match="visual"):
        d.arrays()
    obs, act, rew, done = read_demo(samples / "demos" / "ExpertBasic.demo").arrays()
    assert obs.shape == (73, 20) and act.shape == (73, 1) and done.sum() == 10


def test_a_directory_of_demos(samples, tmp_path):
    for n in ("ExpertBasic.demo", "test.demo"):
        (tmp_path / n).write_bytes((samples / "demos" / n).read_bytes())
    assert [d.behavior_name for d in read_demos(tmp_path)] == ["BasicLearning", "3DBall?team=0"]
    with pytest.raises(DemoError, match="no .demo files"):
        read_demos(tmp_path / "empty") if (tmp_path / "empty").mkdir() is None else None


def test_truncated_and_corrupt_files_name_the_offset(samples, tmp_path):
    data = (samples / "demos" / "ExpertBasic.demo").read_bytes()
    cut = tmp_path / "cut.demo"
    cut.write_bytes(data[:2000])
    with pytest.raises(DemoError, match=r"byte offset \d+.*truncated"):
        read_demo(cut)
    short = tmp_path / "short.demo"
    short.write_bytes(data[:20])
    with pytest.raises(DemoError, match="truncated"):
        read_demo(short)
    bad = tmp_path / "bad.demo"
    bad.write_bytes(b"\x02\x08\x63" + b"\0" * 40)  # meta: api_version = 99
    with pytest.raises(DemoError, match="api_version 99"):
        read_demo(bad)


def test_write_read_roundtrip(tmp_path):
    obs = np.random.default_rng(0).normal(size=(10, 6)).astype(np.float32)
    acts = np.random.default_rng(1).uniform(-1, 1, size=(10, 2)).astype(np.float32)
    rew = np.linspace(0, 1, 10).astype(np.float32)
    done = np.zeros(10, bool)
    done[[4, 9]] = True
    path = write_demo(tmp_path / "a_rather_long_demonstration_name.demo", "Runner", obs, acts, rew, done,
                      continuous=2)
    d = read_demo(path)
    assert d.behavior_name == "Runner" and d.number_steps == 10 and d.number_episodes == 2
    o, a, r, dn = d.arrays()
    np.testing.assert_allclose(o, obs)
    np.testing.assert_allclose(a, acts)
    assert dn.tolist() == done.tolist() and d.mean_reward == pytest.approx(rew.sum() / 2)


def test_recorded_demos_look_like_unitys_and_check_against_the_spec(tmp_path):
    nav = build_behavior(behavior_name="Nav", archetype="navigation")
    s = record_demonstrations(nav, 50, tmp_path / "nav.demo")
    d = read_demo(s.path)
    assert d.behavior_name == "Nav" and d.number_episodes == 50 and s.success_rate > 0.8
    assert d.mean_reward == pytest.approx(s.mean_reward, rel=1e-4)
    assert check_compatible([d], nav) == []
    other = build_behavior(behavior_name="Nav", archetype="navigation", action_space={"type": "discrete", "size": 5})
    assert any("actions" in p for p in check_compatible([d], other))
    reach = build_behavior(behavior_name="Nav", archetype="reach_target")
    assert any("observation shapes" in p for p in check_compatible([d], reach))


@pytest.mark.trainer
def test_written_demos_load_in_mlagents_own_loader(tmp_path, trainer_env):
    for arch, act in (("navigation", None), ("patrol", {"type": "discrete", "branches": [3, 3]})):
        d = build_behavior(behavior_name="Nav", archetype=arch, action_space=act)
        record_demonstrations(d, 20, tmp_path / f"{arch}.demo")
    code = ("import json, sys\nfrom mlagents.trainers.demo_loader import demo_to_buffer\nout = {}\n"
            "for f in sys.argv[1:]:\n    spec, buf = demo_to_buffer(f, 1)\n"
            "    out[f] = [list(spec.observation_specs[0].shape), spec.action_spec.continuous_size, "
            "list(spec.action_spec.discrete_branches), buf.num_experiences]\nprint(json.dumps(out))")
    r = subprocess.run([str(trainer_env.python), "-W", "ignore", "-c", code, str(tmp_path / "navigation.demo"),
                        str(tmp_path / "patrol.demo")], capture_output=True, text=True, env=clean_env(), timeout=120)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out[str(tmp_path / "navigation.demo")][:3] == [[12], 2, []]
    assert out[str(tmp_path / "patrol.demo")][:3] == [[13], 0, [3, 3]]


@pytest.mark.trainer
def test_offline_only_and_hybrid_training(tmp_path, trainer_env, clean_build_env):
    from mlops_unity_pipeline import RLTrainingConfig, TrainingJob, UnityAssetSpec, UnityMLOpsOrchestrator

    nav = build_behavior(behavior_name="Nav", archetype="navigation")
    demos = record_demonstrations(nav, 120, tmp_path / "demos" / "expert.demo").path
    orch = UnityMLOpsOrchestrator(tmp_path / "runs", evaluation_episodes=200, show_progress=False)
    asset = UnityAssetSpec(asset_id="n1", name="Nav", description="Reach the target while avoiding obstacles")
    common = dict(use_offline_rl=True, demonstrations_path=str(tmp_path / "demos"), bc_updates=40,
                  agents_per_env=16, summary_freq=1000, hyperparameters={"buffer_size": 1024, "batch_size": 256})
    off = orch.execute_training_job_sync(TrainingJob(job_id="offline", asset_spec=asset, rl_config=RLTrainingConfig(
        offline_mode="offline_only", max_steps=1000, **common)))
    assert off.succeeded, (off.failed_stage, off.error, off.log_tail)
    ev = off.metrics["evaluation"]
    assert ev["model"]["success_rate"] > ev["random_baseline"]["success_rate"] + 0.4, "clearly better than random"
    assert not (tmp_path / "runs" / "offline" / "logs" / "trainer.log").exists(), "no environment interaction"
    manifest = json.loads(Path(off.trained_model_path).with_name("manifest.json").read_text())
    assert manifest["lineage"]["demonstrations"][0]["sha256"] and manifest["lineage"]["demonstrations"][0]["path"] \
        == str(demos)

    hybrid = orch.execute_training_job_sync(TrainingJob(job_id="hybrid", asset_spec=asset, rl_config=RLTrainingConfig(
        offline_mode="hybrid", max_steps=3000, **common)))
    assert hybrid.succeeded, (hybrid.failed_stage, hybrid.error, hybrid.log_tail)
    trainer_log = (tmp_path / "runs" / "hybrid" / "logs" / "trainer.log").read_text()
    assert "--initialize-from hybrid-bc" in trainer_log and "Initializing from" in trainer_log
    cfg = (tmp_path / "runs" / "hybrid" / "generated" / "trainer_config.yaml").read_text()
    assert "behavioral_cloning" in cfg and "demo_path" in cfg

    wrong = UnityAssetSpec(asset_id="n2", name="Nav", description="reach the target")  # 6 observations, not 12
    bad = orch.execute_training_job_sync(TrainingJob(job_id="mismatch", asset_spec=wrong, rl_config=RLTrainingConfig(
        offline_mode="offline_only", max_steps=1000, **common)))
    assert bad.failed_stage == "train" and "do not match the behavior" in bad.error


def test_demos_cli(tmp_path, samples):
    spec = tmp_path / "spec.yaml"
    spec.write_text("asset_id: a\nname: Nav\ndescription: avoid obstacles and reach the goal\n")
    r = subprocess.run([sys.executable, "-m", "mlops_unity_pipeline", "demos", "record", str(spec), "--episodes", "10",
                        "--out", str(tmp_path / "x.demo")], capture_output=True, text=True)
    assert r.returncode == 0 and "10 episodes" in r.stdout
    r = subprocess.run([sys.executable, "-m", "mlops_unity_pipeline", "demos", "show", str(samples / "demos")],
                       capture_output=True, text=True)
    assert r.returncode == 0 and "PushBlock" in r.stdout and "BasicLearning" in r.stdout
