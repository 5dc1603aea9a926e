"""The Vertex AI backend through the real google-cloud-aiplatform SDK, against a local endpoint that speaks the
Vertex REST subset (tests/fake_vertex.py) and gcp-storage-emulator for GCS: no Google Cloud account, no mocks of
our own code."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("google.cloud.aiplatform", reason="the vertex extra is not installed")

from google.auth.credentials import AnonymousCredentials  # noqa: E402

from mlops_unity_pipeline.behavior import build_behavior  # noqa: E402
from mlops_unity_pipeline.evaluation.evaluate import evaluate_onnx  # noqa: E402
from mlops_unity_pipeline.governance import GateConfig, Governance  # noqa: E402
from mlops_unity_pipeline.registry import LocalModelRegistry, RegistrationRequest  # noqa: E402
from mlops_unity_pipeline.registry.vertex import VertexModelRegistry  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from fake_vertex import FakeVertex  # noqa: E402
from onnx_policies import linear_policy  # noqa: E402

NAV = build_behavior(behavior_name="Nav", archetype="navigation")


@pytest.fixture
def vertex():
    fake = FakeVertex()
    yield fake
    fake.stop()


def make_registry(tmp_path, vertex):
    from google.cloud import storage

    client = storage.Client(project="test-proj", credentials=AnonymousCredentials())
    return VertexModelRegistry("test-proj", "us-central1", "gs://unity-models", LocalModelRegistry(tmp_path / "reg"),
                               api_endpoint=vertex.endpoint, credentials=AnonymousCredentials(), storage_client=client)


def register(reg, tmp_path, name, bias):
    model = linear_policy(tmp_path / f"{name}.onnx", 12, None, bias)
    behavior = tmp_path / "behavior.json"
    behavior.write_text(NAV.to_json())
    m, base = evaluate_onnx(str(model), NAV, 200)
    return reg.register(RegistrationRequest(
        asset_id="nav-1", asset_name="Nav", behavior_name="Nav", job_id=f"job-{name}", model_path=model,
        files={"behavior.json": behavior}, metrics={"evaluation": {"model": m.to_dict(), "random_baseline":
                                                                  base.to_dict()}}, git_sha="abc1234"))


def test_upload_versions_and_labels(tmp_path, gcs, vertex):
    from google.cloud import storage

    reg = make_registry(tmp_path, vertex)
    v1 = register(reg, tmp_path, "slow", (0.6, 0.0))
    v2 = register(reg, tmp_path, "fast", (1.0, 0.0))
    uploads = [body for method, path, body in vertex.calls if path.endswith("models:upload")]
    assert len(uploads) == 2 and "parentModel" not in uploads[0]
    assert uploads[1]["parentModel"] == v1.uri.split("@")[0], "the second upload is a new version of the model"
    for body, v in zip(uploads, (v1, v2), strict=True):
        spec = body["model"]
        assert spec["versionAliases"] == [v.version], "is_default_version=False: only our version alias"
        assert spec["labels"]["unity_mlops_version"] == v.version and spec["labels"]["unity_mlops_asset"] == "nav"
        assert "artifactUri" not in spec and "containerSpec" not in spec, "a registry entry, no serving container"
        assert spec["versionDescription"].endswith(f"gs://unity-models/unity-mlops/nav/{v.version}")
    assert v1.uri.endswith("@1") and v2.uri.endswith("@2") and v1.uri.startswith("projects/test-proj/")
    client = storage.Client(project="test-proj", credentials=AnonymousCredentials())
    names = {b.name for b in client.list_blobs("unity-models", prefix=f"unity-mlops/nav/{v2.version}/")}
    prefix = f"unity-mlops/nav/{v2.version}"
    assert f"{prefix}/Nav.onnx" in names and f"{prefix}/manifest.json" in names
    assert reg.get(v2.version).uri == v2.uri
    assert LocalModelRegistry(tmp_path / "reg").get(v2.version).model_path.is_file()


def test_promotion_and_rollback_move_vertex_aliases_and_sync_reports_drift(tmp_path, gcs, vertex):
    reg = make_registry(tmp_path, vertex)
    gov = Governance(reg, GateConfig(seeds=(3,), episodes_per_seed=150, bootstrap_samples=500))
    v1 = register(reg, tmp_path, "slow", (0.6, 0.0))
    v2 = register(reg, tmp_path, "fast", (1.0, 0.0))
    for v in (v1, v2):
        gov.promote(v.version, "staging")
        gov.promote(v.version, "production", gate_config=GateConfig(seeds=(3,), episodes_per_seed=150,
                                                                    bootstrap_samples=500, min_reward_improvement=-1,
                                                                    safety_margin=1, max_length_increase=5))
    assert reg.remote_aliases("Nav") == {"staging": v2.version, "production": v2.version}
    merges = [path for method, path, _ in vertex.calls if path.endswith(":mergeVersionAliases")]
    assert len(merges) == 4
    gov.rollback("Nav", reason="bad playtest", corrective_action="retrain with more obstacles")
    assert reg.remote_aliases("Nav")["production"] == v1.version
    assert reg.sync_report("Nav", reg.local.ledger.aliases("Nav"))["drift"] == {}
    # someone re-points production in the console: drift is reported
    model_name, _ = reg.vertex_version(v2.version)
    vertex.merge_aliases(model_name, "2", ["production"])
    drift = reg.sync_report("Nav", reg.local.ledger.aliases("Nav"))["drift"]
    assert drift == {"production": {"local": v1.version, "vertex": v2.version}}


@pytest.mark.trainer
def test_orchestrator_registers_in_vertex_when_vertex_project_is_set(tmp_path, gcs, vertex, monkeypatch,
                                                                       clean_build_env, trainer_env):
    from mlops_unity_pipeline import RLTrainingConfig, TrainingJob, UnityAssetSpec, UnityMLOpsOrchestrator

    monkeypatch.setenv("UNITY_MLOPS_VERTEX_ENDPOINT", vertex.endpoint)
    orch = UnityMLOpsOrchestrator(tmp_path / "runs", vertex_project="test-proj", vertex_region="us-central1",
                                  vertex_bucket="unity-models", evaluation_episodes=50, show_progress=False)
    job = TrainingJob(job_id="vertex-job", asset_spec=UnityAssetSpec(asset_id="v-1", name="SimpleAgent",
                                                                    description="Reach target position"),
                      rl_config=RLTrainingConfig(max_steps=3000, summary_freq=1000, agents_per_env=16))
    result = orch.execute_training_job_sync(job)
    assert result.succeeded, (result.failed_stage, result.error)
    assert result.model_uri.startswith("projects/test-proj/locations/us-central1/models/")
    assert Path(result.trained_model_path).is_file()


JOB = """job_id: {job_id}
asset_spec: {{asset_id: vx-1, name: VxAgent, description: Reach target position}}
rl_config: {{trainer: fast, max_steps: 4096, checkpoint_interval: 2048, summary_freq: 2048,
            hyperparameters: {{buffer_size: 1024, batch_size: 256}}}}
vertex: {{project: test-proj, region: us-central1, bucket: "gs://unity-models"}}
"""


def _env(vertex, gcs_env):
    import os

    return {**os.environ, "UNITY_MLOPS_VERTEX_ENDPOINT": vertex.endpoint, **gcs_env, "PYTHONUNBUFFERED": "1"}


def _cli(*args, env, cwd):
    import subprocess

    return subprocess.run([sys.executable, "-m", "mlops_unity_pipeline", *args], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=600)


def test_a_job_file_registers_through_vertex_waiting_on_its_operation_and_a_failure_leaves_no_orphan(
        tmp_path, gcs, vertex, monkeypatch, clean_build_env):
    """`unity-mlops train` with `vertex:` in the job file. The upload's long-running operation stays pending for two
    polls; the first run meets a remote error (HTTP 503) and leaves nothing registered on either side; the re-run keeps
    the trained model and registers the same version — one local version, one Vertex version."""
    import os

    vertex.pending_polls = 2
    vertex.fail_uploads = 1
    job = tmp_path / "job.yaml"
    job.write_text(JOB.format(job_id="vx-job"))
    env = _env(vertex, {"STORAGE_EMULATOR_HOST": os.environ["STORAGE_EMULATOR_HOST"]})
    ws = ["--workspace", str(tmp_path / "runs"), "-q", "--episodes", "50"]
    first = _cli("train", str(job), *ws, env=env, cwd=tmp_path)
    assert first.returncode == 1 and "stage register" in first.stderr and "re-run the job" in first.stderr
    assert LocalModelRegistry(tmp_path / "runs" / "_registry").list() == [], "no local orphan"
    second = _cli("train", str(job), *ws, env=env, cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    local = LocalModelRegistry(tmp_path / "runs" / "_registry").list()
    assert len(local) == 1 and f"model version: {local[0].version}" in second.stdout
    assert local[0].version in first.stderr, "the re-run registered the version the first run announced"
    [model] = vertex.models.values()
    assert len(model["versions"]) == 1 and local[0].version in model["versions"]["1"]["versionAliases"]
    polls = [p for m, p, _ in vertex.calls if m == "GET" and "/operations/" in p]
    assert len(polls) >= 2, "the SDK waited on the pending operation"
    log = (tmp_path / "runs" / "vx-job" / "logs" / "pipeline.log").read_text()
    assert "already complete at step" in log, "the re-run kept the trained model instead of training again"


def test_a_scheduled_run_registers_through_vertex_and_a_failed_operation_is_completed_by_the_retry(
        tmp_path, gcs, vertex, clean_build_env):
    """`schedule run-once` (what a CronJob pod runs) with `vertex:` in the scheduler config; the first pod's upload
    operation ends in an error, the retried pod (same Kubernetes Job name) completes the same version."""
    import os

    import yaml

    vertex.fail_operations = 1
    cfg = tmp_path / "scheduler.yaml"
    job = yaml.safe_load(JOB.format(job_id="unused"))
    cfg.write_text(yaml.safe_dump({"workspace": str(tmp_path / "runs"), "vertex": job["vertex"], "schedules": [
        {"schedule_id": "nightly", "cron_expression": "0 2 * * *", "asset_specs": [job["asset_spec"]],
         "rl_config": job["rl_config"]}]}))
    env = {**_env(vertex, {"STORAGE_EMULATOR_HOST": os.environ["STORAGE_EMULATOR_HOST"]}),
           "UNITY_MLOPS_K8S_JOB_NAME": "train-nightly-29000000"}
    first = _cli("schedule", "run-once", str(cfg), "nightly", env=env, cwd=tmp_path)
    assert first.returncode == 1 and "internal error while importing" in first.stdout + first.stderr
    assert LocalModelRegistry(tmp_path / "runs" / "_registry").list() == [], "no local orphan"
    second = _cli("schedule", "run-once", str(cfg), "nightly", env=env, cwd=tmp_path)
    assert second.returncode == 0, second.stdout + second.stderr
    local = LocalModelRegistry(tmp_path / "runs" / "_registry").list()
    assert len(local) == 1 and local[0].job_id == "train-nightly-29000000-vx-1"
    versions = [v for m in vertex.models.values() for v in m["versions"].values()]
    assert len(versions) == 1 and local[0].version in versions[0]["versionAliases"]


def test_the_setup_guides_environment_selects_vertex(tmp_path, monkeypatch):
    from mlops_unity_pipeline import UnityMLOpsOrchestrator

    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "guide-proj")
    monkeypatch.setenv("VERTEX_REGION", "europe-west4")
    orch = UnityMLOpsOrchestrator(tmp_path / "runs", show_progress=False)
    assert isinstance(orch.registry, VertexModelRegistry)
    assert (orch.registry.project, orch.registry.region) == ("guide-proj", "europe-west4")
    monkeypatch.setenv("UNITY_MLOPS_VERTEX", "off")
    assert isinstance(UnityMLOpsOrchestrator(tmp_path / "runs", show_progress=False).registry, LocalModelRegistry)
