"""Jobs on a real Ray cluster whose nodes share only PostgreSQL and a bucket (the GCS emulator): throughput on one
node vs two, the Ray path's overhead for one job vs running it in-process, and a node killed -9 mid-training.

Every node is a `ray start` on 127.0.0.1 with `--num-cpus` declared (1 per node by default: this machine class has
2 cores) and its own scratch workspace; jobs are fast-trainer jobs of the same size with different seeds.

    python bench/cluster_bench.py [--jobs 8] [--steps 65536] [--cpus-per-node 1]

Prints, from one run: jobs/hour on 1 node and on 2 nodes and their ratio; one job's wall time in-process (the
local executor's path) vs through Ray, and their ratio; for the kill: completed/total, the interrupted jobs and the
step each resumed from, duplicate versions (must be 0), runs missing from the bucket (must be 0).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from mlops_unity_pipeline import RLTrainingConfig, TrainingJob, UnityAssetSpec  # noqa: E402
from mlops_unity_pipeline.artifacts import open_artifacts  # noqa: E402
from mlops_unity_pipeline.execution.ray_executor import RayExecutor  # noqa: E402
from mlops_unity_pipeline.pipeline.orchestrator import UnityMLOpsOrchestrator  # noqa: E402
from mlops_unity_pipeline.registry.local import LocalModelRegistry  # noqa: E402
from mlops_unity_pipeline.store import open_database  # noqa: E402
from servers import GCSEmulator, Postgres, RayCluster, drive_loopback_clusters, interruptible_jobs  # noqa: E402


def jobs(n: int, steps: int, tag: str) -> list[TrainingJob]:
    cfg = RLTrainingConfig(trainer="fast", max_steps=steps, checkpoint_interval=max(1024, steps // 6),
                           summary_freq=max(1024, steps // 6))
    return [TrainingJob(job_id=f"{tag}-{i}", asset_spec=UnityAssetSpec(asset_id=f"{tag}-{i}", name=f"Bench{i}",
                                                                       description="Reach target position"),
                        rl_config=cfg.model_copy(update={"seed": i})) for i in range(n)]


class Stack:
    """PostgreSQL + the GCS emulator, shared by every phase (each phase gets its own database and prefix)."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="cluster-bench-"))
        self.pg = Postgres().start()
        self.gcs = GCSEmulator()
        import os

        os.environ["STORAGE_EMULATOR_HOST"] = self.gcs.host  # before any storage client is built
        drive_loopback_clusters()  # this process drives the clusters, on 127.0.0.1 only

    def database(self) -> str:
        url = self.pg.create_database()
        open_database(url).upgrade()
        return url

    def cluster(self, nodes: int, cpus: int, phase: str) -> RayCluster:
        envs = [{"UNITY_MLOPS_WORKER_WORKSPACE": str(self.root / phase / f"node{i}"),
                 "STORAGE_EMULATOR_HOST": self.gcs.host} for i in range(nodes)]
        return RayCluster(sys.executable).start(nodes=nodes, cpus=cpus, env=envs)

    def close(self) -> None:
        self.gcs.stop()
        self.pg.stop()


async def run_all(executor: RayExecutor, batch: list[TrainingJob], on_started=None) -> list:
    tasks = [asyncio.ensure_future(executor.run(j, f"bench|{j.job_id}")) for j in batch]
    if on_started is not None:
        await on_started(tasks)
    return await asyncio.gather(*tasks)


def throughput(stack: Stack, nodes: int, cpus: int, n: int, steps: int) -> float:
    phase = f"tp{nodes}"
    cluster = stack.cluster(nodes, cpus, phase)
    try:
        executor = RayExecutor(cluster.address, stack.root / phase / "scheduler", None, num_cpus=cpus,
                               database=stack.database(), artifacts=f"gs://unity-models/{phase}")
        executor._remote()  # connecting to the cluster is paid once per scheduler, not per batch
        t0 = time.monotonic()
        results = asyncio.run(run_all(executor, jobs(n, steps, phase)))
        seconds = time.monotonic() - t0
        executor.close()
    finally:
        cluster.remove()
    assert all(r.status == "completed" for r in results), [(r.failed_stage, r.error) for r in results]
    return n / seconds * 3600


def overhead(stack: Stack, steps: int) -> tuple[float, float]:
    [job] = jobs(1, steps, "solo")
    url = stack.database()
    t0 = time.monotonic()
    local = UnityMLOpsOrchestrator(stack.root / "solo-local", show_progress=False, database=url,
                                   artifacts="gs://unity-models/solo-local")
    local_result = local.execute_training_job_sync(job, run_key="bench|solo-local")
    assert local_result.succeeded, (local_result.failed_stage, local_result.error)
    local_s = time.monotonic() - t0
    cluster = stack.cluster(1, 1, "solo")
    try:
        executor = RayExecutor(cluster.address, stack.root / "solo" / "scheduler", None, num_cpus=1,
                               database=url, artifacts="gs://unity-models/solo-ray")
        executor._remote()  # connecting to the cluster is paid once per scheduler, not per job
        t0 = time.monotonic()
        [result] = asyncio.run(run_all(executor, [job.model_copy(update={"job_id": "solo-ray"})]))
        ray_s = time.monotonic() - t0
        executor.close()
    finally:
        cluster.remove()
    assert result.status == "completed", result.error
    return local_s, ray_s


def node_loss(stack: Stack, n: int, steps: int) -> dict:
    phase = "kill"
    cluster = stack.cluster(2, 1, phase)
    store = open_artifacts(f"gs://unity-models/{phase}")
    url = stack.database()
    worker_ws = stack.root / phase / "node1"
    interrupted: list[str] = []

    async def kill_when_checkpointed(tasks):
        while True:
            interrupted.extend(interruptible_jobs(worker_ws, store, steps))
            if interrupted:
                cluster.kill(1)
                return
            if all(t.done() for t in tasks):
                return
            await asyncio.sleep(0.2)

    try:
        executor = RayExecutor(cluster.address, stack.root / phase / "scheduler", None, num_cpus=1, database=url,
                               artifacts=store.uri)
        batch = jobs(n, steps, phase)
        results = asyncio.run(run_all(executor, batch, kill_when_checkpointed))
        executor.close()
    finally:
        cluster.remove()
    by_job = {j.job_id: r for j, r in zip(batch, results, strict=True)}
    versions = LocalModelRegistry(stack.root / "reader", url, store).list()
    keys = store.sizes("")
    return {
        "completed": sum(r.status == "completed" for r in results), "total": n,
        "interrupted": {j: (by_job[j].metrics.get("training") or {}).get("resumed_from_step") for j in interrupted},
        "duplicate_versions": len(versions) - len({v.run_key for v in versions}),
        "versions": len(versions),
        "runs_missing_from_bucket": sum(f"runs/{j.job_id}/result.json" not in keys for j in batch),
        "blobs_missing_from_bucket": sum(f"registry/objects/{v.model_sha256}" not in keys for v in versions),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=8)
    ap.add_argument("--steps", type=int, default=65_536)
    ap.add_argument("--cpus-per-node", type=int, default=1)
    args = ap.parse_args()
    stack = Stack()
    try:
        one = throughput(stack, 1, args.cpus_per_node, args.jobs, args.steps)
        two = throughput(stack, 2, args.cpus_per_node, args.jobs, args.steps)
        print(f"throughput, {args.jobs} jobs of {args.steps:,} steps ({args.cpus_per_node} CPU declared per node):")
        print(f"  1 node : {one:7.0f} jobs/hour")
        print(f"  2 nodes: {two:7.0f} jobs/hour   ratio 2/1 = {two / one:.2f}x")
        local_s, ray_s = overhead(stack, args.steps)
        print(f"one job: in-process {local_s:.1f} s, through Ray {ray_s:.1f} s   "
              f"ratio Ray/local = {ray_s / local_s:.2f}x (+{ray_s - local_s:.1f} s)")
        loss = node_loss(stack, args.jobs, args.steps)
        print(f"node killed -9 mid-training: {loss['completed']}/{loss['total']} completed; interrupted (job: resumed "
              f"from step) {loss['interrupted']}; duplicate versions {loss['duplicate_versions']} of "
              f"{loss['versions']}; runs missing from the bucket {loss['runs_missing_from_bucket']}, model blobs "
              f"missing {loss['blobs_missing_from_bucket']}")
    finally:
        stack.close()


if __name__ == "__main__":
    main()
