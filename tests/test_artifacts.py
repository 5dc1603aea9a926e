"""Artifacts by URI against the GCS emulator: the store's contract, and a job killed on one machine that resumes on
another from the checkpoint it stored, registering once, with every artifact in the bucket."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlops_unity_pipeline.artifacts import ArtifactError, open_artifacts
from mlops_unity_pipeline.artifacts.store import DirectoryStore, GCSStore
from mlops_unity_pipeline.artifacts.sync import pull_tree, push_tree
from mlops_unity_pipeline.pipeline.orchestrator import UnityMLOpsOrchestrator
from mlops_unity_pipeline.registry import LocalModelRegistry
from mlops_unity_pipeline.specs import RLTrainingConfig, TrainingJob, UnityAssetSpec


@pytest.mark.parametrize("kind", ["gs", "directory"])
def test_the_store_contract(tmp_path, gcs, kind):
    store = open_artifacts("gs://unity-models/team-a" if kind == "gs" else str(tmp_path / "shared"))
    assert isinstance(store, GCSStore if kind == "gs" else DirectoryStore)
    src = tmp_path / "local" / "a" / "b.txt"
    src.parent.mkdir(parents=True)
    src.write_text("x" * 100)
    (src.parent / "c.bin").write_bytes(b"\0\1\2")
    seen: dict = {}
    assert push_tree(store, tmp_path / "local", "runs/j", seen) == 2
    assert push_tree(store, tmp_path / "local", "runs/j", seen) == 0, "nothing changed"
    src.write_text("y" * 100)  # same size, new content: still uploaded
    os.utime(src, ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))
    assert push_tree(store, tmp_path / "local", "runs/j", seen) == 1
    assert store.sizes("runs/j") == {"runs/j/a/b.txt": 100, "runs/j/a/c.bin": 3}
    back = tmp_path / "back"
    assert pull_tree(store, "runs/j", back, {}) == 2 and (back / "a" / "b.txt").read_text() == "y" * 100
    assert store.download("runs/j/missing", tmp_path / "m") is False and not (tmp_path / "m").exists()
    assert not list(tmp_path.glob(".m.*"))
    if kind == "directory":
        with pytest.raises(ArtifactError, match="leaves the store"):
            store.upload(src, "../../etc/x")
    with pytest.raises(ArtifactError, match="no artifact store for s3"):
        open_artifacts("s3://bucket/x")


def test_a_missing_bucket_is_one_clear_error(gcs):
    store = open_artifacts("gs://no-such-bucket/x")
    with pytest.raises(ArtifactError, match="cannot upload to gs://no-such-bucket/x"):
        store.upload(Path(__file__), "k")


ASSET = UnityAssetSpec(asset_id="mover-1", name="Mover", description="Reach target position")
FAST = RLTrainingConfig(trainer="fast", max_steps=6144, checkpoint_interval=1024, summary_freq=512,
                        hyperparameters={"buffer_size": 512, "batch_size": 128})
MACHINE = """
import sys
from mlops_unity_pipeline.pipeline.orchestrator import UnityMLOpsOrchestrator
from mlops_unity_pipeline.specs import TrainingJob
job = TrainingJob.model_validate_json(sys.argv[2])
UnityMLOpsOrchestrator(sys.argv[1], show_progress=False, evaluation_episodes=20).execute_training_job_sync(
    job, run_key="nightly|2026-11-29T00:00|mover-1")
"""


def test_a_job_killed_on_one_machine_resumes_on_another_from_its_stored_checkpoint(tmp_path, gcs, pg_database,
                                                                                  monkeypatch):
    """Two machines share nothing but PostgreSQL and the bucket (separate workspaces and registry directories)."""
    bucket = "gs://unity-models/team-a"
    job = TrainingJob(job_id="mover", asset_spec=ASSET, rl_config=FAST)
    marker = tmp_path / "reached"
    env = {**os.environ, "UNITY_MLOPS_ARTIFACTS": bucket, "UNITY_MLOPS_FAILPOINT": "checkpointed",
           "UNITY_MLOPS_FAILPOINT_FILE": str(marker)}
    machine_a = subprocess.Popen([sys.executable, "-c", MACHINE, str(tmp_path / "machine-a"),
                                  job.model_dump_json()], env=env)
    try:
        for _ in range(6000):
            if marker.exists() or machine_a.poll() is not None:
                break
            time.sleep(0.05)
        assert marker.exists(), "machine A never stored a checkpoint"
        machine_a.send_signal(signal.SIGKILL)  # the node is lost mid-training
        machine_a.wait()
    finally:
        machine_a.kill()
    store = open_artifacts(bucket)
    assert any(k.endswith("/checkpoint.pt") for k in store.sizes("runs/mover"))

    monkeypatch.setenv("UNITY_MLOPS_ARTIFACTS", bucket)
    machine_b = UnityMLOpsOrchestrator(tmp_path / "machine-b", show_progress=False, evaluation_episodes=20)
    result = machine_b.execute_training_job_sync(job, run_key="nightly|2026-11-29T00:00|mover-1")
    assert result.succeeded, (result.failed_stage, result.error)
    assert result.metrics["training"]["resumed_from_step"] >= 1024, "continued from A's checkpoint, not from 0"
    again = machine_b.execute_training_job_sync(job, run_key="nightly|2026-11-29T00:00|mover-1")
    assert again.model_version == result.model_version
    assert [v.version for v in machine_b.local_registry.list()] == [result.model_version], "one version"

    keys = store.sizes("")
    version = machine_b.local_registry.get(result.model_version)
    assert f"registry/objects/{version.model_sha256}" in keys
    assert f"registry/models/{version.version}/manifest.json" in keys
    for name in ("metrics.json", "result.json", "evaluation.json", "state.json", "logs/pipeline.log"):
        assert f"runs/mover/{name}" in keys, name
    assert any("events.out.tfevents" in k for k in keys)

    machine_c = LocalModelRegistry(tmp_path / "machine-c" / "_registry", pg_database, store)  # a third reader
    fetched = machine_c.get(result.model_version)
    assert fetched.model_path.read_bytes() == version.model_path.read_bytes()


def test_an_unreachable_bucket_is_waited_out_and_nothing_is_lost(tmp_path, gcs, monkeypatch):
    """The bucket unreachable (every connection reset) while a job's checkpoint and its model go up: the uploads
    back off and retry, and land once it is back; nothing is lost, nothing fails."""
    import threading

    from servers import OutageProxy

    proxy = OutageProxy(gcs._api._httpd.server_address[1])
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{proxy.port}")
    store = open_artifacts("gs://unity-models/outage")
    files = {}
    for name in ("checkpoint.pt", "model.onnx", "metrics.json"):
        files[name] = tmp_path / name
        files[name].write_bytes(os.urandom(50_000))
    store.upload(files["metrics.json"], "runs/j/metrics.json")
    proxy.down()
    back = threading.Timer(6.0, proxy.up)  # about a minute in production: the same backoff, waited out
    back.start()
    store.upload(files["checkpoint.pt"], "runs/j/checkpoint.pt")
    store.upload(files["model.onnx"], "registry/objects/model")
    back.join()
    assert proxy.refused > 0, "the outage was met"
    assert store.sizes("") == {"runs/j/metrics.json": 50_000, "runs/j/checkpoint.pt": 50_000,
                               "registry/objects/model": 50_000}
    got = tmp_path / "back.onnx"
    assert store.download("registry/objects/model", got) and got.read_bytes() == files["model.onnx"].read_bytes()

    store.outage_s = 3.0  # an outage longer than the store waits: one clear error, nothing half-written
    proxy.down()
    with pytest.raises(ArtifactError, match="cannot upload to gs://unity-models/outage"):
        store.upload(files["model.onnx"], "registry/objects/other")
    proxy.up()
    assert "registry/objects/other" not in store.sizes("registry")
    proxy.close()
