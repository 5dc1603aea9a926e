"""The executor contract (`execution.base.Executor`), run against every executor the `unity_mlops.executors` family
installs, each chosen by config as a scheduler chooses it: `local` (in this process) and `ray` (a real one-node Ray
cluster on 127.0.0.1 whose worker has its own workspace). A job runs to its result; running the same run key again
continues that run instead of registering a second version; a job that fails is a failed result naming its stage,
not an exception."""

from __future__ import annotations

import asyncio
import sys

import pytest

from mlops_unity_pipeline import RLTrainingConfig, TrainingJob, UnityAssetSpec, UnityMLOpsOrchestrator
from mlops_unity_pipeline.execution import executor_from_config
from mlops_unity_pipeline.scheduler.config import ExecutorConfig

EXECUTORS = ["local", "ray"]
CFG = RLTrainingConfig(trainer="fast", max_steps=2048, checkpoint_interval=1024, summary_freq=1024,
                       hyperparameters={"buffer_size": 1024, "batch_size": 256})


@pytest.fixture(params=EXECUTORS)
def executor(request, tmp_path, monkeypatch):
    orch = UnityMLOpsOrchestrator(tmp_path / "runs", evaluation_episodes=20, show_progress=False)
    if request.param == "local":
        ex = executor_from_config(ExecutorConfig(kind="local"), orch)
        yield ex
        ex.close()
        return
    ray = pytest.importorskip("ray", reason="the Ray executor needs ray (in the dev extra)")
    from servers import RAY_DRIVER_ENV, RayCluster

    for name, value in RAY_DRIVER_ENV.items():  # this process drives a cluster on 127.0.0.1
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(ray._private.ray_constants, "ENABLE_RAY_CLUSTER", False)
    try:
        cluster = RayCluster(sys.executable).start(
            nodes=1, cpus=1, env=[{"UNITY_MLOPS_WORKER_WORKSPACE": str(tmp_path / "node0")}])
    except RuntimeError as exc:
        pytest.fail(str(exc))
    ex = executor_from_config(ExecutorConfig(kind="ray", address=cluster.address, max_retries=0), orch)
    yield ex
    ex.close()
    cluster.remove()


def job(job_id: str, **changes) -> TrainingJob:
    return TrainingJob(job_id=job_id, asset_spec=UnityAssetSpec(asset_id=job_id, name="ExecAgent",
                                                               description="Reach target position"),
                       rl_config=CFG, **changes)


def test_a_job_runs_to_its_result_once_per_run_key_and_a_failure_is_a_result(executor, tmp_path):
    async def scenario():
        first = await executor.run(job("exec-a"), "nightly|exec-a|1")
        again = await executor.run(job("exec-a"), "nightly|exec-a|1")  # a retry of the same run
        other = await executor.run(job("exec-a"), "nightly|exec-a|2")  # the next run
        blocker = tmp_path / "not-a-directory"
        blocker.write_text("a file where the registry should be")
        failed = await executor.run(job("exec-b", registry=str(blocker / "registry")), "nightly|exec-b|1")
        return first, again, other, failed

    first, again, other, failed = asyncio.run(scenario())
    assert first.status == "completed" and first.model_version, (first.failed_stage, first.error)
    assert again.model_version == first.model_version, "the same run key registers once"
    assert other.status == "completed" and other.model_version != first.model_version
    assert first.metrics["evaluation"]["model"]["episodes"] >= 20
    assert failed.status == "failed" and failed.failed_stage == "register" and failed.error, failed
