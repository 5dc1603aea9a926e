"""GPUs: a job's `resources` are decided on the machine that runs it, and a machine that cannot run it as asked
refuses it before anything is trained (this machine has no GPU; Ray's logical GPUs are in test_ray_executor)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import pytest

from mlops_unity_pipeline import RLTrainingConfig, TrainingJob, UnityAssetSpec
from mlops_unity_pipeline.devices import device_problem, gpu_count, resolve_device, visible_gpus
from mlops_unity_pipeline.execution.base import LocalExecutor
from mlops_unity_pipeline.pipeline.orchestrator import UnityMLOpsOrchestrator

pytestmark = pytest.mark.skipif(gpu_count() > 0, reason="these tests are about a machine without a GPU")
ASSET = UnityAssetSpec(asset_id="g", name="GpuAgent", description="reach the target")
FAST = RLTrainingConfig(trainer="fast", max_steps=2048, summary_freq=1024)


def test_auto_is_the_cpu_here_and_says_why(tmp_path, monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert resolve_device("auto", tmp_path) == ("cpu", "device auto: training on the CPU (no GPU visible to this "
                                                       "process)")
    assert resolve_device("cuda:1", tmp_path) == ("cuda:1", None), "an explicit device is the user's"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    assert visible_gpus() == ["0", "1"], "what Ray or the container runtime handed this process"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert visible_gpus() == []


def test_the_trainer_envs_torch_build_is_what_setup_recorded(tmp_path):
    from mlops_unity_pipeline.devices import trainer_torch_cuda

    assert trainer_torch_cuda(tmp_path) is None
    (tmp_path / "unity-mlops-trainer-env.json").write_text(json.dumps({"torch_cuda": "12.6"}))
    assert trainer_torch_cuda(tmp_path) == "12.6"
    (tmp_path / "unity-mlops-trainer-env.json").write_text("[")
    assert trainer_torch_cuda(tmp_path) is None


def test_what_this_machine_cannot_do_is_named(tmp_path, monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert device_problem("auto", 0, True, tmp_path) is None
    assert "sees 0 GPU(s)" in device_problem("auto", 1, True, tmp_path)
    assert "no NVIDIA driver" in device_problem("cuda", 0, True, tmp_path)
    assert "trainer 'fast' trains on the CPU" in device_problem("cuda:0", 0, False, tmp_path)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")  # given a GPU (as Ray gives logical ones): enough GPUs
    assert device_problem("cpu", 1, True, tmp_path) is None


def test_cuda_on_a_machine_without_one_is_exit_2_before_anything_is_written(tmp_path):
    job = tmp_path / "job.yaml"
    job.write_text("job_id: j\nasset_spec: {asset_id: a, name: Agent}\nresources: {device: cuda}\n")
    r = subprocess.run([sys.executable, "-m", "mlops_unity_pipeline", "train", str(job), "--workspace",
                        str(tmp_path / "runs")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert "resources: device 'cuda'" in r.stderr and "no CUDA device" in r.stderr and "auto or cpu" in r.stderr
    assert not (tmp_path / "runs").exists()
    job.write_text("job_id: j\nasset_spec: {asset_id: a, name: Agent}\nresources: {device: tpu}\n")
    r = subprocess.run([sys.executable, "-m", "mlops_unity_pipeline", "train", str(job), "--workspace",
                        str(tmp_path / "runs")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "auto, cpu, cuda or cuda:N" in r.stderr


def test_a_job_that_needs_more_gpus_than_there_are_fails_before_training(tmp_path, monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    orch = UnityMLOpsOrchestrator(tmp_path / "runs", evaluation_episodes=10, show_progress=False)
    result = orch.execute_training_job_sync(TrainingJob(job_id="greedy", asset_spec=ASSET, rl_config=FAST,
                                                        resources={"gpus": 2}))
    assert result.status == "failed" and result.failed_stage == "generate", result
    assert "resources.gpus is 2" in result.error and "sees 0 GPU(s)" in result.error
    assert not list((tmp_path / "runs" / "greedy").glob("results/**/*.onnx")), "nothing was trained"


def test_the_local_executor_runs_no_more_gpu_jobs_at_once_than_it_has_gpus(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")  # two GPUs handed to this process (jobs train on the CPU)
    orch = UnityMLOpsOrchestrator(tmp_path / "runs", evaluation_episodes=10, show_progress=False)
    executor = LocalExecutor(orch)
    jobs = [TrainingJob(job_id=f"gpu-{i}", asset_spec=ASSET, rl_config=FAST.model_copy(update={"seed": i}),
                        resources={"gpus": 1, "device": "cpu"}) for i in range(3)]
    jobs.append(TrainingJob(job_id="cpu-only", asset_spec=ASSET, rl_config=FAST))
    held: list[int] = []

    async def watch():
        while True:
            held.append(executor._total_gpus - len(executor._free_gpus))
            await asyncio.sleep(0.01)

    async def scenario():
        watcher = asyncio.ensure_future(watch())
        results = await asyncio.gather(*(executor.run(j, j.job_id) for j in jobs))
        watcher.cancel()
        return results

    results = asyncio.run(scenario())
    assert [r.status for r in results] == ["completed"] * 4, [(r.failed_stage, r.error) for r in results]
    assert max(held) == 2, "two GPUs: two GPU jobs at a time (and the CPU job beside them)"
    first, second, third = sorted(results[:3], key=lambda r: r.started_at)
    assert third.started_at >= min(first.finished_at, second.finished_at), "the third waited for a GPU"
    assert results[3].started_at < max(first.finished_at, second.finished_at), "the CPU job did not wait"
    assert sorted(executor._free_gpus) == ["0", "1"], "all given back"
    assert all(r.metrics["training"]["device"] == "cpu" for r in results)
