"""Jobs on a real two-node Ray cluster on 127.0.0.1, and a node killed with SIGKILL in the middle of training: every
job completes, the interrupted one resumes from its checkpoint on the surviving node, and no run registers twice.

Each node is a `ray start --block` in its own process group, so one node can be killed -9 and the cluster stopped
without `ray stop` (which stops every Ray process on the machine, other jobs' included)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from mlops_unity_pipeline import RLTrainingConfig, TrainingJob, UnityAssetSpec
from mlops_unity_pipeline.registry.local import LocalModelRegistry

ray = pytest.importorskip("ray", reason="the Ray executor's tests need ray (in the dev extra)")
RAY = str(Path(sys.executable).with_name("ray"))
CFG = RLTrainingConfig(trainer="fast", max_steps=40_960, checkpoint_interval=8_192, summary_freq=8_192)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    def __init__(self) -> None:
        self.temp = tempfile.mkdtemp(prefix="rt", dir="/tmp")  # Ray's socket paths must stay short
        self.nodes: list[subprocess.Popen] = []
        self.address = ""

    def _start(self, args: list[str]) -> subprocess.Popen:
        log = open(Path(self.temp) / f"node{len(self.nodes)}.log", "w")  # noqa: SIM115
        proc = subprocess.Popen([RAY, "start", "--block", "--node-ip-address=127.0.0.1", "--num-cpus=1",
                                 "--disable-usage-stats", *args], stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"})
        self.nodes.append(proc)
        return proc

    def start(self) -> None:
        for _ in range(3):  # a port is only probed: another process may take it first
            port = _free_port()
            self._start(["--head", f"--port={port}", "--include-dashboard=false", f"--temp-dir={self.temp}"])
            self.address = f"127.0.0.1:{port}"
            if self._wait_nodes(1):
                break
            self.stop()
        else:
            pytest.fail("the Ray head node did not start: see " + self.temp)
        self._start([f"--address={self.address}"])
        assert self._wait_nodes(2), "the second Ray node did not join"

    def _wait_nodes(self, n: int, timeout: float = 120) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = subprocess.run([sys.executable, "-c", (
                "import ray,sys; ray.init(address=sys.argv[1], _node_ip_address='127.0.0.1', logging_level='ERROR');"
                "print(sum(1 for x in ray.nodes() if x['Alive']))"), self.address],
                capture_output=True, text=True, timeout=60)
            if out.returncode == 0 and out.stdout.strip().isdigit() and int(out.stdout.strip()) >= n:
                return True
            if any(p.poll() is not None for p in self.nodes):
                return False
            time.sleep(1)
        return False

    def kill(self, index: int) -> None:
        os.killpg(self.nodes[index].pid, signal.SIGKILL)

    def stop(self) -> None:
        for proc in self.nodes:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
        for proc in self.nodes:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        self.nodes = []


@pytest.fixture
def cluster():
    c = Cluster()
    c.start()
    yield c
    if ray.is_initialized():
        ray.shutdown()
    c.stop()
    shutil.rmtree(c.temp, ignore_errors=True)


def _running_with_checkpoint(ws: Path) -> list[str]:
    out = []
    for d in ws.iterdir() if ws.is_dir() else []:
        state = d / "state.json"
        if state.is_file() and json.loads(state.read_text()).get("phase") == "running" and \
                list(d.glob("training/*/*/checkpoint.pt")):
            out.append(d.name)
    return out


def test_jobs_on_a_two_node_cluster_survive_losing_a_node(cluster, tmp_path):
    from mlops_unity_pipeline.execution.ray_executor import RayExecutor

    ws = tmp_path / "runs"
    executor = RayExecutor(cluster.address, ws, num_cpus=1, max_retries=3)
    jobs = [TrainingJob(job_id=f"ray-{i}", asset_spec=UnityAssetSpec(asset_id=f"ray-{i}", name=f"RayAgent{i}",
                                                                     description="Reach target position"),
                        rl_config=CFG.model_copy(update={"seed": i})) for i in range(2)]

    async def scenario():
        tasks = [asyncio.ensure_future(executor.run(j, f"ray-test|{j.job_id}")) for j in jobs]
        deadline = time.monotonic() + 600
        while len(_running_with_checkpoint(ws)) < 2:  # one job on each node (1 CPU each), both past a checkpoint
            assert time.monotonic() < deadline and not any(t.done() for t in tasks), "jobs did not get going"
            await asyncio.sleep(0.5)
        cluster.kill(1)  # the worker node, kill -9: its job dies mid-training
        return await asyncio.gather(*tasks)

    results = asyncio.run(scenario())
    assert [r.status for r in results] == ["completed"] * 2, [(r.failed_stage, r.error) for r in results]
    resumed = [r for r in results if (r.metrics.get("training") or {}).get("resumed_from_step")]
    assert resumed, "the job on the lost node continued from its checkpoint"
    assert all(r.metrics["training"]["resumed_from_step"] >= CFG.checkpoint_interval for r in resumed)
    versions = LocalModelRegistry(ws / "_registry").list()
    assert sorted(v.run_key for v in versions) == sorted(f"ray-test|{j.job_id}" for j in jobs), "one version per run"
    executor.close()
