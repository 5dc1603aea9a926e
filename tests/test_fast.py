"""The `fast` trainer: learning with a fixed seed, ML-Agents' outputs and ONNX contract, resume, reporting."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("torch", reason="the fast extra (torch) is not installed")

from mlops_unity_pipeline import RLTrainingConfig, TrainingJob, UnityAssetSpec, UnityMLOpsOrchestrator  # noqa: E402
from mlops_unity_pipeline.behavior import ActionSpec, BehaviorDefinition, ObservationComponent  # noqa: E402
from mlops_unity_pipeline.evaluation.onnx_policy import OnnxPolicy  # noqa: E402
from mlops_unity_pipeline.evaluation.tfevents import read_scalars  # noqa: E402
from mlops_unity_pipeline.fast.ppo import build_modules, export_onnx, unsupported_options  # noqa: E402

pytestmark = pytest.mark.usefixtures("clean_build_env")
ASSET = UnityAssetSpec(asset_id="test-001", name="SimpleAgent", description="Reach target position")


def test_reach_target_learns_within_150k_steps(tmp_path):
    orch = UnityMLOpsOrchestrator(tmp_path / "runs", evaluation_episodes=500, show_progress=False)
    job = TrainingJob(job_id="fast", asset_spec=ASSET,
                      rl_config=RLTrainingConfig(trainer="fast", max_steps=150_000, seed=3, summary_freq=25_000))
    r = orch.execute_training_job_sync(job)
    assert r.succeeded, (r.failed_stage, r.error, r.log_tail)
    assert r.metrics["evaluation"]["model"]["success_rate"] >= 0.70
    run = tmp_path / "runs" / "fast" / "training" / "fast"
    status = json.loads((run / "run_logs" / "training_status.json").read_text())
    assert status["SimpleAgent"]["final_checkpoint"]["steps"] >= 150_000 and "metadata" in status
    events = next((run / "SimpleAgent").glob("events.out.tfevents.*"))
    tags = set(read_scalars(events))
    assert {"Environment/Cumulative Reward", "Environment/Episode Length", "Policy/Entropy", "Losses/Policy Loss",
            "Losses/Value Loss", "Policy/Learning Rate", "Policy/Epsilon", "Policy/Beta"} <= tags
    assert (run / "SimpleAgent" / "checkpoint.pt").is_file()


def _io(policy: OnnxPolicy):
    static = lambda shape: [d if isinstance(d, int) else "dyn" for d in shape]  # noqa: E731
    return ({k: (t, static(s)) for k, (t, s) in policy.contract.inputs.items()},
            {k: (t, static(s)) for k, (t, s) in policy.contract.outputs.items()})


@pytest.mark.parametrize("sample, obs, action", [
    ("3DBall.onnx", 8, ActionSpec(continuous=2)),
    ("Basic.onnx", 20, ActionSpec(branches=(3,))),
])
def test_onnx_contract_matches_mlagents_exports(tmp_path, samples, sample, obs, action):
    d = BehaviorDefinition("X", "reach_target", (ObservationComponent("raycast", obs),), action)
    actor, _ = build_modules(d, 32, 2, normalize=True)
    export_onnx(actor, d, tmp_path / "fast.onnx")
    ours, theirs = OnnxPolicy(tmp_path / "fast.onnx"), OnnxPolicy(samples / "onnx" / sample)
    assert _io(ours) == _io(theirs), "same input/output names, dtypes and static shapes"
    c, t = ours.contract, theirs.contract
    assert (c.version, c.memory_size, c.continuous, c.branches, c.observation_shapes) == \
        (t.version, t.memory_size, t.continuous, t.branches, t.observation_shapes)
    batch = np.random.default_rng(0).normal(size=(4, obs)).astype(np.float32)
    det = ours.act(batch)
    assert det.shape == (4, action.continuous or len(action.branches))
    if action.is_continuous:
        assert np.all(np.abs(det) <= 1.0)


def test_export_is_opset9_and_self_contained(tmp_path):
    import onnx

    d = BehaviorDefinition("X", "reach_target", (ObservationComponent("velocity", 2), ObservationComponent("target", 2),
                                                 ObservationComponent("position", 2)), ActionSpec(continuous=2))
    actor, _ = build_modules(d, 128, 2, normalize=True)
    export_onnx(actor, d, tmp_path / "fast.onnx")
    model = onnx.load(str(tmp_path / "fast.onnx"))
    assert model.opset_import[0].version == 9, "the opset ML-Agents exports and Unity's inference engine loads"
    assert not any(f.name.endswith(".data") for f in tmp_path.iterdir()), "self-contained (legacy exporter)"


def test_resume_after_a_timeout(tmp_path):
    orch = UnityMLOpsOrchestrator(tmp_path / "runs", evaluation_episodes=100, show_progress=False)
    cfg = RLTrainingConfig(trainer="fast", max_steps=60_000, checkpoint_interval=10_000, summary_freq=10_000)
    first = orch.execute_training_job_sync(TrainingJob(job_id="r", asset_spec=ASSET, rl_config=cfg, timeout_s=2.0))
    assert first.status == "failed" and "time limit" in first.error
    stopped = first.metrics["training"]["final_step"]
    assert 0 < stopped < 60_000
    second = orch.execute_training_job_sync(TrainingJob(job_id="r", asset_spec=ASSET, rl_config=cfg))
    assert second.succeeded and second.metrics["training"]["final_step"] >= 60_000
    log = (tmp_path / "runs" / "r" / "logs" / "trainer.log").read_text()
    assert "Resuming from" in log and f"at step {stopped}" in log


def test_unsupported_options_are_reported_not_ignored(tmp_path):
    assert unsupported_options({"trainer_type": "sac"}) == ["trainer_type sac (the fast trainer is PPO only)"]
    orch = UnityMLOpsOrchestrator(tmp_path / "runs", show_progress=False)
    cfg = RLTrainingConfig(trainer="fast", max_steps=1000,
                           reward_signals={"extrinsic": {"gamma": 0.99}, "curiosity": {"strength": 0.02}},
                           network_settings={"memory": {"memory_size": 64}})
    r = orch.execute_training_job_sync(TrainingJob(job_id="u", asset_spec=ASSET, rl_config=cfg))
    assert r.failed_stage in ("generate", "train")
    assert "reward_signals.curiosity" in r.error and "network_settings.memory" in r.error
