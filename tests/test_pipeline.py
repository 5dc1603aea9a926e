"""End-to-end jobs with the real ML-Agents trainer on the headless player, and each stage failing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlops_unity_pipeline import RLTrainingConfig, TrainingJob, UnityAssetSpec, UnityMLOpsOrchestrator
from mlops_unity_pipeline.behavior import build_behavior
from mlops_unity_pipeline.evaluation.onnx_policy import OnnxPolicy
from mlops_unity_pipeline.registry.base import VERSION_RE

pytestmark = [pytest.mark.trainer, pytest.mark.usefixtures("clean_build_env")]

QUICK = dict(hyperparameters={"buffer_size": 1024, "batch_size": 256}, summary_freq=2000, agents_per_env=16)


def _job(job_id: str, max_steps: int = 12000, num_envs: int = 1, **asset_kw) -> TrainingJob:
    asset = dict(asset_id="test-001", name="SimpleAgent", description="Reach target position")
    asset.update(asset_kw)
    return TrainingJob(job_id=job_id, asset_spec=UnityAssetSpec(**asset),
                       rl_config=RLTrainingConfig(max_steps=max_steps, num_envs=num_envs, **QUICK))


@pytest.fixture
def orch(tmp_path, trainer_env):
    return UnityMLOpsOrchestrator(tmp_path / "runs", evaluation_episodes=200, show_progress=False)


def test_full_job_trains_evaluates_and_registers(orch, tmp_path):
    result = orch.execute_training_job_sync(_job("full-job"))
    assert result.succeeded, (result.failed_stage, result.error, result.log_tail)
    ws = tmp_path / "runs" / "full-job"
    run = ws / "training" / "full-job"
    # Unity CI's success test, and stricter: exit 0, <Behavior>.onnx, final step reached max_steps
    status = json.loads((run / "run_logs" / "training_status.json").read_text())
    assert status["SimpleAgent"]["final_checkpoint"]["steps"] >= 12000
    assert (run / "SimpleAgent.onnx").is_file()
    assert list((run / "SimpleAgent").glob("events.out.tfevents.*")), "TensorBoard events under runs/<job_id>/"
    contract = OnnxPolicy(result.trained_model_path).contract
    assert (contract.version, contract.observation_shapes, contract.continuous, contract.branches) == (
        3, [(6,)], 2, ())
    assert set(contract.outputs) >= {"version_number", "memory_size", "continuous_actions",
                                     "continuous_action_output_shape", "deterministic_continuous_actions"}
    curve = result.metrics["training"]["reward_curve"]
    rewards = [r for _, r in curve if r is not None]
    assert len(rewards) >= 2 and rewards[-1] > rewards[0], f"mean reward did not rise: {curve}"
    ev = result.metrics["evaluation"]
    assert ev["model"]["episodes"] == 200 and ev["model"]["success_rate"] > ev["random_baseline"]["success_rate"]
    assert VERSION_RE.match(result.model_version) and result.model_version.startswith("unity-simpleagent-")
    metrics = json.loads((ws / "metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["model_version"] == result.model_version
    for f in ("trainer_config.yaml", "SimpleAgent.cs", "behavior.json"):
        assert (ws / "generated" / f).is_file()
    shown = subprocess.run([sys.executable, "-m", "mlops_unity_pipeline", "models", "--registry",
                            str(tmp_path / "runs" / "_registry"), "path", result.model_version],
                           capture_output=True, text=True)
    assert shown.returncode == 0 and shown.stdout.strip() == result.trained_model_path


def test_seed_001_discrete_spec_and_versions_count_up(orch):
    job = _job("discrete-job", max_steps=6000, num_envs=2, description="Reach target position while avoiding obstacles",
               observation_space={"raycast": 8, "velocity": 2}, action_space={"type": "discrete", "size": 5})
    r1 = orch.execute_training_job_sync(job)
    assert r1.succeeded, (r1.failed_stage, r1.error, r1.log_tail)
    c = OnnxPolicy(r1.trained_model_path).contract
    assert (c.observation_shapes, c.continuous, c.branches) == ([(12,)], 0, (5,))
    assert "action_masks" in c.inputs and c.outputs["discrete_actions"][0] == "tensor(int64)"
    logs = Path(r1.artifacts["training_run"]) / "run_logs"
    assert (logs / "Player-0.log").is_file() and (logs / "Player-1.log").is_file(), "--num-envs 2: two players"
    r2 = orch.execute_training_job_sync(job)  # a completed job re-run trains anew and gets the next number
    assert r2.succeeded and r1.model_version.endswith("-v001") and r2.model_version.endswith("-v002")
    assert r2.metrics["training"]["resumed_from_step"] is None


def _assert_failed(result, ws: Path, stage: str):
    assert result.status == "failed" and result.failed_stage == stage, (result.failed_stage, result.error)
    metrics = json.loads((ws / "metrics.json").read_text())
    assert metrics["status"] == "failed" and metrics["failed_stage"] == stage
    assert (ws / "generated" / "trainer_config.yaml").is_file(), "artifacts are kept"


def test_bad_build_command_fails_the_build_stage(orch, tmp_path, monkeypatch):
    monkeypatch.setenv("UNITY_BUILD_COMMAND", "definitely-not-a-unity-editor -batchmode")
    r = orch.execute_training_job_sync(_job("bad-build"))
    _assert_failed(r, tmp_path / "runs" / "bad-build", "build")
    assert "not found" in r.error
    monkeypatch.setenv("UNITY_BUILD_COMMAND", f"{sys.executable} -c 'import sys; print(\"boom\"); sys.exit(4)'")
    r = orch.execute_training_job_sync(_job("bad-build"))
    _assert_failed(r, tmp_path / "runs" / "bad-build", "build")
    assert "code 4" in r.error and "boom" in r.log_tail


def test_trainer_crash_fails_the_train_stage(orch, tmp_path, monkeypatch):
    monkeypatch.setenv("MLAGENTS_TRAIN_COMMAND",
                       f"{sys.executable} -c 'import sys; print(\"trainer exploded\"); sys.exit(3)'")
    r = orch.execute_training_job_sync(_job("crash"))
    _assert_failed(r, tmp_path / "runs" / "crash", "train")
    assert "exited with code 3" in r.error and "trainer exploded" in r.log_tail


def test_missing_onnx_fails_the_train_stage(orch, tmp_path, monkeypatch):
    monkeypatch.setenv("MLAGENTS_TRAIN_COMMAND", "true")
    r = orch.execute_training_job_sync(_job("no-onnx"))
    _assert_failed(r, tmp_path / "runs" / "no-onnx", "train")
    assert "did not write" in r.error


def test_registry_write_error_fails_the_register_stage(tmp_path, trainer_env):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    orch = UnityMLOpsOrchestrator(tmp_path / "runs", registry_root=blocker, evaluation_episodes=50,
                                  show_progress=False)
    r = orch.execute_training_job_sync(_job("reg-fail", max_steps=3000))
    _assert_failed(r, tmp_path / "runs" / "reg-fail", "register")
    assert (tmp_path / "runs" / "reg-fail" / "training" / "reg-fail" / "SimpleAgent.onnx").is_file()


def test_resume_after_the_trainer_is_killed(tmp_path, trainer_env):
    job = tmp_path / "job.yaml"
    job.write_text(
        "job_id: resume-job\n"
        "asset_spec: {asset_id: r-1, name: SimpleAgent, description: Reach target position}\n"
        "rl_config: {max_steps: 30000, checkpoint_interval: 8000, summary_freq: 2000, agents_per_env: 16,\n"
        "            hyperparameters: {buffer_size: 1024, batch_size: 256}}\n"
    )
    ws = tmp_path / "runs" / "resume-job"
    cmd = [sys.executable, "-m", "mlops_unity_pipeline", "train", str(job), "--workspace", str(tmp_path / "runs"),
           "--episodes", "50", "-q"]
    env = {k: v for k, v in os.environ.items() if k not in ("UNITY_BUILD_COMMAND", "MLAGENTS_TRAIN_COMMAND")}
    first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    ckpt = ws / "training" / "resume-job" / "SimpleAgent"
    deadline = time.monotonic() + 240
    while not list(ckpt.glob("SimpleAgent-*.onnx")):  # a complete checkpoint: .pt, checkpoint.pt, then .onnx
        assert first.poll() is None and time.monotonic() < deadline, first.stdout.read() if first.stdout else ""
        time.sleep(0.2)
    pid = int((ws / "training" / "trainer.pid").read_text())
    os.kill(pid, signal.SIGKILL)  # a crash: no final save, no training_status.json
    out, _ = first.communicate(timeout=120)
    assert first.returncode == 1, out
    killed_at = max(int(p.stem.rsplit("-", 1)[1]) for p in ckpt.glob("SimpleAgent-*.onnx"))
    assert 0 < killed_at < 30000

    second = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=400)
    assert second.returncode == 0, second.stdout + second.stderr
    result = json.loads((ws / "result.json").read_text())
    training = result["metrics"]["training"]
    assert training["resumed_from_step"] == killed_at
    assert training["final_step"] >= 30000
    assert training["reward_curve"][0][0] > killed_at, "the resumed run continued counting from the checkpoint"
    player_log = (ws / "training" / "resume-job" / "run_logs" / "Player-0.log").read_text()
    steps_second_run = int(player_log.rsplit("agent_steps=", 1)[1].split()[0])
    assert steps_second_run < 30000 - killed_at + 4000, "total steps were not restarted from zero"


@pytest.mark.trainer
@pytest.mark.parametrize("form", ["plain", "guide"])
def test_mlagents_train_command_as_the_setup_guide_writes_it(tmp_path, monkeypatch, clean_build_env, trainer_env,
                                                              form):
    """`MLAGENTS_TRAIN_COMMAND=mlagents-learn` from the trainer environment, and the guide's form with its own
    config (`mlagents-learn training_config.yaml --run-id nightly --force`): both train and export the ONNX (the
    legacy exporter is applied to them too)."""
    import yaml

    from mlops_unity_pipeline.trainer.config import trainer_config

    monkeypatch.setenv("PATH", f"{trainer_env.path / 'bin'}:{os.environ['PATH']}")
    monkeypatch.chdir(tmp_path)
    cfg = RLTrainingConfig(max_steps=3000, summary_freq=1000, agents_per_env=16,
                           hyperparameters={"buffer_size": 1024, "batch_size": 256})
    asset = UnityAssetSpec(asset_id="cmd-1", name="SimpleAgent", description="Reach target position")
    command = "mlagents-learn"
    if form == "guide":
        d = build_behavior(behavior_name="SimpleAgent", description=asset.description)
        (tmp_path / "training_config.yaml").write_text(yaml.safe_dump(trainer_config(d, cfg)))
        command = "mlagents-learn training_config.yaml --run-id nightly --force"
    monkeypatch.setenv("MLAGENTS_TRAIN_COMMAND", command)
    orch = UnityMLOpsOrchestrator(tmp_path / "runs", evaluation_episodes=50, show_progress=False)
    result = orch.execute_training_job_sync(TrainingJob(job_id=f"cmd-{form}", asset_spec=asset, rl_config=cfg))
    assert result.succeeded, (result.failed_stage, result.error, result.log_tail)
    assert result.metrics["training"]["final_step"] >= 3000 and Path(result.trained_model_path).is_file()
    if form == "guide":  # the guide's --run-id is kept: the run lives under it, inside this attempt's directory
        assert (tmp_path / "runs" / "cmd-guide" / "training" / "cmd-guide" / "nightly" / "SimpleAgent.onnx").is_file()


@pytest.mark.trainer
def test_a_train_commands_own_flags_are_kept_or_refused_never_replaced(tmp_path, monkeypatch, clean_build_env,
                                                                       trainer_env):
    """--torch-device and --num-envs of MLAGENTS_TRAIN_COMMAND stay as written (the product appends neither), its
    --env-args no longer swallows the product's flags, and a flag the product owns is refused before training."""
    monkeypatch.setenv("PATH", f"{trainer_env.path / 'bin'}:{os.environ['PATH']}")
    cfg = RLTrainingConfig(max_steps=2000, summary_freq=1000, agents_per_env=8, num_envs=1,
                           hyperparameters={"buffer_size": 512, "batch_size": 128})
    asset = UnityAssetSpec(asset_id="own-1", name="SimpleAgent", description="Reach target position")
    orch = UnityMLOpsOrchestrator(tmp_path / "runs", evaluation_episodes=20, show_progress=False)
    monkeypatch.setenv("MLAGENTS_TRAIN_COMMAND",
                       "mlagents-learn --torch-device cpu --num-envs 2 --env-args --agents 4")
    result = orch.execute_training_job_sync(TrainingJob(job_id="own-flags", asset_spec=asset, rl_config=cfg))
    assert result.succeeded, (result.failed_stage, result.error, result.log_tail)
    command = (tmp_path / "runs" / "own-flags" / "logs" / "trainer.log").read_text().splitlines()[0]
    assert command.count("--torch-device") == 1 and command.count("--num-envs") == 1 and "--num-envs 2" in command
    assert command.index("--env-args") > command.index("--base-port"), "the product's flags come first"
    assert command.rstrip().endswith("--env-args --agents 4")
    logs = list((tmp_path / "runs" / "own-flags" / "training").rglob("Player-1.log"))
    assert logs and "4 agents per behaviour" in logs[0].read_text(), "both players got the command's env args"

    monkeypatch.setenv("MLAGENTS_TRAIN_COMMAND", "mlagents-learn --base-port 5005")
    result = orch.execute_training_job_sync(TrainingJob(job_id="owned", asset_spec=asset, rl_config=cfg))
    assert result.failed_stage == "generate" and "--base-port" in result.error and "remove them" in result.error
