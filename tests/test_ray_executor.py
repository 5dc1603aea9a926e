"""Beyond one machine, end to end: a real two-node Ray cluster on 127.0.0.1 whose nodes share nothing but PostgreSQL
and a bucket (the GCS emulator) — each node has its own scratch workspace — runs 8 fast-trainer jobs (one needs a
GPU, which only the head node declares), and one node is killed with SIGKILL in the middle of training. Every job
completes, the GPU job on the GPU node, the interrupted one resumes on the surviving node from the checkpoint it
stored in the bucket, no run registers twice, every artifact is in the bucket, and the CLI and the dashboard (on a
third workspace) list every run."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time

import pytest

from mlops_unity_pipeline import RLTrainingConfig, TrainingJob, UnityAssetSpec
from mlops_unity_pipeline.artifacts import open_artifacts
from mlops_unity_pipeline.registry.local import LocalModelRegistry
from mlops_unity_pipeline.ui.runs import RunIndex

ray = pytest.importorskip("ray", reason="the Ray executor's tests need ray (in the dev extra)")
CFG = RLTrainingConfig(trainer="fast", max_steps=40_960, checkpoint_interval=4_096, summary_freq=4_096)
BUCKET = "gs://unity-models/cluster"
JOBS = 8
GPU_JOB = 3  # needs a GPU: only node 0 declares one (a logical GPU; it trains on the CPU)


@pytest.fixture
def gcs_server(monkeypatch):
    from servers import GCSEmulator

    server = GCSEmulator()
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", server.host)
    yield server
    server.stop()


@pytest.fixture
def cluster(tmp_path, gcs_server, monkeypatch):
    from servers import RAY_DRIVER_ENV, RayCluster

    for name, value in RAY_DRIVER_ENV.items():  # this process drives a cluster on 127.0.0.1 (tests/ray_node.py)
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(ray._private.ray_constants, "ENABLE_RAY_CLUSTER", False)  # ray is imported already
    envs = [{"UNITY_MLOPS_WORKER_WORKSPACE": str(tmp_path / f"node{i}"), "STORAGE_EMULATOR_HOST": gcs_server.host}
            for i in range(2)]
    try:
        c = RayCluster(sys.executable).start(nodes=2, cpus=1, env=envs, gpus=[1, 0])  # the head has a GPU
    except RuntimeError as exc:
        pytest.fail(str(exc))
    yield c
    if ray.is_initialized():
        ray.shutdown()
    c.remove()


def test_eight_jobs_on_two_nodes_sharing_only_postgresql_and_a_bucket_survive_losing_a_node(
        cluster, tmp_path, pg_database):
    from mlops_unity_pipeline.execution.ray_executor import RayExecutor
    from servers import interruptible_jobs

    store = open_artifacts(BUCKET)
    scheduler_ws = tmp_path / "scheduler"
    executor = RayExecutor(cluster.address, scheduler_ws, None, num_cpus=1, max_retries=3, database=pg_database,
                           artifacts=BUCKET)
    jobs = [TrainingJob(job_id=f"ray-{i}", asset_spec=UnityAssetSpec(asset_id=f"ray-{i}", name=f"RayAgent{i}",
                                                                     description="Reach target position"),
                        rl_config=CFG.model_copy(update={"seed": i}),
                        resources={"gpus": 1 if i == GPU_JOB else 0, "device": "cpu"}) for i in range(JOBS)]
    interrupted: list[str] = []
    sockets: set[tuple[str, str, str]] = set()

    async def watch_sockets():  # every inet socket of the nodes, their workers and this driver, all along
        while True:
            sockets.update(cluster.sockets(extra_pids=(os.getpid(),)))
            await asyncio.sleep(0.5)

    async def scenario():
        watcher = asyncio.ensure_future(watch_sockets())
        tasks = [asyncio.ensure_future(executor.run(j, f"nightly|{j.job_id}")) for j in jobs]
        deadline = time.monotonic() + 600
        while not (running := interruptible_jobs(tmp_path / "node1", store, CFG.max_steps)):
            assert time.monotonic() < deadline, "no job reached a stored checkpoint on the worker node"
            await asyncio.sleep(0.2)
        interrupted.extend(running)
        cluster.kill(1)  # the worker node, kill -9: its job dies mid-training
        results = await asyncio.gather(*tasks)
        watcher.cancel()
        return results

    results = asyncio.run(scenario())
    names = {name for name, _, _ in sockets}
    assert {"gcs_server", "raylet"} <= names, names
    elsewhere = {s for s in sockets if {a.removeprefix("::ffff:") for a in s[1:] if a} - {"127.0.0.1"}}
    assert not elsewhere, f"sockets not on 127.0.0.1: {sorted(elsewhere)}"
    assert [r.status for r in results] == ["completed"] * JOBS, [(r.failed_stage, r.error) for r in results]
    by_job = {j.job_id: r for j, r in zip(jobs, results, strict=True)}
    for job_id in interrupted:  # continued on node 0 from what node 1 stored, not from step 0
        assert by_job[job_id].metrics["training"]["resumed_from_step"] >= CFG.checkpoint_interval, job_id
        assert (tmp_path / "node0" / job_id / "result.json").is_file(), "finished on the surviving node"

    gpu_job = jobs[GPU_JOB].job_id  # Ray placed it on the node with a GPU, and it saw its GPU there
    assert (tmp_path / "node0" / gpu_job / "result.json").is_file() and not (tmp_path / "node1" / gpu_job).exists()
    assert by_job[gpu_job].metrics["training"]["device"] == "cpu", "as the job asked"

    versions = LocalModelRegistry(tmp_path / "reader" / "_registry", pg_database, store).list()
    assert sorted(v.run_key for v in versions) == sorted(f"nightly|{j.job_id}" for j in jobs), "one version per run"
    keys = store.sizes("")
    for v in versions:
        assert f"registry/objects/{v.model_sha256}" in keys and f"registry/models/{v.version}/manifest.json" in keys
    for j in jobs:
        for name in ("metrics.json", "result.json", "evaluation.json", "state.json"):
            assert f"runs/{j.job_id}/{name}" in keys, (j.job_id, name)

    listed = subprocess.run([sys.executable, "-m", "mlops_unity_pipeline", "models", "list", "--json", "--workspace",
                             str(tmp_path / "cli")], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "UNITY_MLOPS_DATABASE_URL": pg_database})
    assert listed.returncode == 0, listed.stderr
    assert len(json.loads(listed.stdout)) == JOBS
    runs = RunIndex(tmp_path / "dashboard", store).all()  # the dashboard's view, on a machine that ran nothing
    assert sorted((r.job_id, r.status) for r in runs) == sorted((j.job_id, "completed") for j in jobs)
    executor.close()
