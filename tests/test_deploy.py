"""Rendered Kubernetes manifests validate (strict, offline) against the official schemas."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mlops_unity_pipeline.deploy.cluster import _pods, restricted_violations, validate_custom
from mlops_unity_pipeline.deploy.kubernetes import dns_name, render_manifests, validate_manifests
from mlops_unity_pipeline.scheduler.config import load_scheduler_config

ROOT = Path(__file__).resolve().parents[1]
PROFILES = sorted((ROOT / "deploy" / "profiles").glob("*.yaml"))
CRDS = sorted((ROOT.parent / "shared" / "reference" / "kuberay-crds").glob("ray.io_*.yaml")) or sorted(
    Path("/work/shared/reference/kuberay-crds").glob("ray.io_*.yaml"))


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.stem)
@pytest.mark.parametrize("mode", ["deployment", "cronjob"])
def test_profiles_render_valid_manifests(profile, mode):
    cfg = load_scheduler_config(profile)
    docs = render_manifests(cfg, profile, mode)
    assert validate_manifests(docs, "1.30.0") == []
    assert restricted_violations(docs) == [], "admitted by Pod Security 'restricted'"
    kinds = [d["kind"] for d in docs]
    assert kinds[:4] == ["Namespace", "PersistentVolumeClaim", "ConfigMap", "Secret"]
    if mode == "deployment":
        dep = docs[-1]
        assert dep["kind"] == "Deployment" and dep["spec"]["replicas"] == 1
        assert dep["spec"]["strategy"]["type"] == "Recreate"
        pod = dep["spec"]["template"]["spec"]
        c = pod["containers"][0]
        assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert pod["terminationGracePeriodSeconds"] >= cfg.grace_period_s + 60
        assert pod["securityContext"]["runAsNonRoot"] is True
        embedded = yaml.safe_load(docs[2]["data"]["scheduler.yaml"])
        assert embedded["health"] == {"host": "0.0.0.0", "port": 8080}
    else:
        crons = [d for d in docs if d["kind"] == "CronJob"]
        assert len(crons) == len(cfg.schedules)
        for cron, sched in zip(crons, cfg.schedules, strict=True):
            spec = cron["spec"]
            assert spec["schedule"] == sched.cron_expression and spec["timeZone"] == sched.timezone
            assert spec["concurrencyPolicy"] in ("Forbid", "Allow")
            assert spec["jobTemplate"]["spec"]["backoffLimit"] == cfg.kubernetes.backoff_limit
            assert spec["jobTemplate"]["spec"]["activeDeadlineSeconds"] > 0
            assert len(cron["metadata"]["name"]) <= 52


def test_a_broken_manifest_is_caught():
    cfg = load_scheduler_config(PROFILES[0])
    docs = render_manifests(cfg, PROFILES[0])
    docs[-1]["spec"]["replicas"] = "one"
    docs[-1]["spec"]["template"]["spec"]["containers"][0]["imagePulPolicy"] = "Always"
    problems = validate_manifests(docs)
    assert problems and "Deployment/unity-mlops-scheduler" in problems[0]


def test_dns_names():
    assert dns_name("train-Nightly_Navigation.Training") == "train-nightly-navigation-training"
    assert len(dns_name("x" * 80)) == 52


def test_cli_render_writes_nothing_else(tmp_path):
    out = tmp_path / "k8s.yaml"
    r = subprocess.run([sys.executable, "-m", "mlops_unity_pipeline", "k8s", "render", str(PROFILES[0]), "--validate",
                        "--out", str(out), "--mode", "cronjob"], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert len(list(yaml.safe_load_all(out.read_text()))) == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k8s.yaml"]


def test_dockerfile_has_what_operations_need():
    text = (ROOT / "Dockerfile").read_text()
    assert text.count("\nFROM ") == 2 and "AS build" in text, "multi-stage"
    assert "USER 10001" in text and "HEALTHCHECK" in text and "trainer setup" in text
    assert (ROOT / ".dockerignore").read_text().startswith(".git")


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.stem)
def test_cluster_mode_renders_a_raycluster_with_no_shared_volume_and_restricted_pods(profile):
    assert len(CRDS) == 2, "the KubeRay CRDs (shared/reference/kuberay-crds) are needed"
    cfg = load_scheduler_config(profile).model_copy(update={"artifacts": "gs://team-models/unity"})
    docs = render_manifests(cfg, profile, "cluster")
    assert validate_manifests(docs, "1.30.0") == []
    assert validate_custom(docs, CRDS) == [], "the RayCluster fits KubeRay's CRD"
    assert restricted_violations(docs) == []
    kinds = [d["kind"] for d in docs]
    assert "PersistentVolumeClaim" not in kinds and kinds.count("RayCluster") == 1
    pods = [d["spec"]["template"]["spec"] for d in docs if d["kind"] == "Deployment"]
    ray = next(d for d in docs if d["kind"] == "RayCluster")["spec"]
    pods += [ray["headGroupSpec"]["template"]["spec"], *[g["template"]["spec"] for g in ray["workerGroupSpecs"]]]
    for pod in pods:
        assert {next(k for k in v if k != "name") for v in pod["volumes"]} <= {"emptyDir", "configMap", "secret"}
        for c in pod.get("initContainers", []) + pod["containers"]:
            assert c["securityContext"]["readOnlyRootFilesystem"] is True
            assert {m["mountPath"] for m in c["volumeMounts"]} >= {"/scratch", "/tmp"}, "writable scratch"
            env = {e["name"]: e for e in c["env"]}
            assert env["UNITY_MLOPS_DATABASE_URL"]["valueFrom"]["secretKeyRef"]["name"] == "unity-mlops-database"
            assert env["UNITY_MLOPS_ARTIFACTS"]["value"] == "gs://team-models/unity"
    scheduler = next(d for d in docs if d["kind"] == "Deployment")["spec"]["template"]["spec"]
    assert scheduler["initContainers"][0]["args"] == ["db", "upgrade"]
    embedded = yaml.safe_load(next(d for d in docs if d["kind"] == "ConfigMap")["data"]["scheduler.yaml"])
    assert embedded["executor"]["kind"] == "ray" and embedded["executor"]["address"].startswith("ray://")
    assert "database" not in embedded, "the URL (a credential) lives in its Secret only"
    workers = ray["workerGroupSpecs"][0]
    assert workers["rayStartParams"]["num-cpus"] == str(cfg.kubernetes.ray_worker_cpu)
    assert ray["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0", "the head takes no jobs"


def test_the_checks_can_fail():
    cfg = load_scheduler_config(PROFILES[0])
    docs = render_manifests(cfg, PROFILES[0], "cluster")
    ray = next(d for d in docs if d["kind"] == "RayCluster")
    del ray["spec"]["workerGroupSpecs"][0]["groupName"]
    ray["spec"]["workerGroupSpecs"][0]["replicas"] = "two"
    problems = validate_custom(docs, CRDS)
    assert any("'groupName' is a required property" in p for p in problems)
    assert any("workerGroupSpecs.0.replicas" in p for p in problems)
    pod = ray["spec"]["headGroupSpec"]["template"]["spec"]
    pod["volumes"].append({"name": "host", "hostPath": {"path": "/var"}})
    pod["securityContext"].pop("seccompProfile")
    c = pod["containers"][0]
    c["securityContext"].update(allowPrivilegeEscalation=True, seccompProfile=None)
    c["securityContext"]["capabilities"] = {"drop": ["ALL"], "add": ["SYS_ADMIN"]}
    found = "\n".join(restricted_violations(docs))
    for expected in ("hostPath", "allowPrivilegeEscalation", "adds capabilities", "seccompProfile"):
        assert expected in found, expected


def test_cli_renders_and_validates_the_cluster_mode(tmp_path):
    out = tmp_path / "cluster.yaml"
    r = subprocess.run([sys.executable, "-m", "mlops_unity_pipeline", "k8s", "render", str(PROFILES[0]), "--validate",
                        "--mode", "cluster", *[a for crd in CRDS for a in ("--crd", str(crd))], "--out", str(out)],
                       capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "RayCluster" in [d["kind"] for d in yaml.safe_load_all(out.read_text())]


PASSWORD, TOKEN, DB_PASSWORD = "hunter2-pw-Zq", "tok-9f8e7d6c5b", "db-pw-Kx71"


@pytest.mark.parametrize("mode", ["deployment", "cronjob", "cluster"])
def test_no_credential_from_the_config_reaches_a_rendered_manifest(tmp_path, mode):
    """A webhook URL with `user:password@` and `?token=`, and a database URL with a password: the ConfigMap names
    Secret keys instead, the Secrets are rendered with keys only, and the scheduler reads the URL back from the key."""
    config = tmp_path / "scheduler.yaml"
    config.write_text(
        f"database: postgresql://mlops:{DB_PASSWORD}@db.internal:5432/mlops\n"
        "webhooks:\n"
        f"  - url: https://bot:{PASSWORD}@hooks.example.com/in?token={TOKEN}&channel=ml\n"
        "  - url: https://plain.example.com/hook\n    secret_env: HOOK_SECRET\n"
        "schedules:\n  - schedule_id: nightly\n    cron_expression: '0 2 * * *'\n"
        "    asset_specs: [{asset_id: nav, name: Nav}]\n")
    out = tmp_path / "manifests.yaml"
    r = subprocess.run([sys.executable, "-m", "mlops_unity_pipeline", "k8s", "render", str(config), "--mode", mode,
                        "--out", str(out), "--validate", *(f"--crd={c}" for c in CRDS if mode == "cluster")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    text = out.read_text() + r.stdout + r.stderr
    for secret in (PASSWORD, TOKEN, DB_PASSWORD, f"bot:{PASSWORD}"):
        assert secret not in text, f"{secret} in the rendered files"
    docs = list(yaml.safe_load_all(out.read_text()))
    secrets = {d["metadata"]["name"]: d["stringData"] for d in docs if d["kind"] == "Secret"}
    assert set(secrets["unity-mlops-webhooks"]) == {"HOOK_SECRET", "UNITY_MLOPS_WEBHOOK_URL_0"}
    assert set(secrets["unity-mlops-database"]) == {"UNITY_MLOPS_DATABASE_URL"}
    assert all(v == "" for keys in secrets.values() for v in keys.values()), "keys only"
    assert "fill Secret unity-mlops-webhooks" in r.stderr
    embedded = yaml.safe_load(next(d for d in docs if d["kind"] == "ConfigMap")["data"]["scheduler.yaml"])
    hook = embedded["webhooks"][0]
    assert hook == {"url_env": "UNITY_MLOPS_WEBHOOK_URL_0", "name": "https://hooks.example.com/in", "events": []}
    assert "database" not in embedded
    pods = [c for d in docs for _, pod in _pods(d) for c in pod["containers"]]
    for c in pods:
        refs = {e["name"]: e["valueFrom"]["secretKeyRef"]["name"] for e in c["env"] if "valueFrom" in e
                and "secretKeyRef" in e["valueFrom"]}
        assert refs["UNITY_MLOPS_WEBHOOK_URL_0"] == "unity-mlops-webhooks"
        assert refs["UNITY_MLOPS_DATABASE_URL"] == "unity-mlops-database"


def test_the_rendered_config_reads_the_url_from_its_secret_key(tmp_path, monkeypatch):
    from mlops_unity_pipeline.deploy.secrets import config_without_credentials
    from mlops_unity_pipeline.errors import SpecError
    from mlops_unity_pipeline.scheduler.config import SchedulerConfig

    cfg = SchedulerConfig(webhooks=[{"url": f"https://bot:{PASSWORD}@hooks.example.com/in?token={TOKEN}"}])
    rendered = SchedulerConfig.model_validate(config_without_credentials(cfg))
    with pytest.raises(SpecError, match="UNITY_MLOPS_WEBHOOK_URL_0 is not set"):
        rendered.endpoints()
    monkeypatch.setenv("UNITY_MLOPS_WEBHOOK_URL_0", cfg.webhooks[0].url)
    assert rendered.endpoints()[0].url == cfg.webhooks[0].url
    assert rendered.endpoints()[0].ref == cfg.endpoints()[0].ref, "the outbox refers to the endpoint as before"


@pytest.mark.parametrize("field", ["registry", "artifacts"])
def test_a_credential_anywhere_else_stops_the_rendering_naming_the_field(tmp_path, field):
    config = tmp_path / "scheduler.yaml"
    config.write_text(f"{field}: postgresql://mlops:{DB_PASSWORD}@db.internal/mlops\n")
    r = subprocess.run([sys.executable, "-m", "mlops_unity_pipeline", "k8s", "render", str(config)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and f"{field} carries a credential" in r.stderr and "Traceback" not in r.stderr
    assert DB_PASSWORD not in r.stdout + r.stderr


GPU_NODES = {"gpus": None, "gpu_node_selector": {"cloud.google.com/gke-accelerator": "nvidia-l4"},
             "gpu_tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
             "gpu_runtime_class": "nvidia", "ray_gpu_workers": 1, "ray_max_gpu_workers": 4, "ray_gpus_per_worker": 2}


def _with_gpu_schedule(profile: Path, gpus: int = 1):
    cfg = load_scheduler_config(profile)
    first = cfg.schedules[0].model_copy(update={"resources": cfg.schedules[0].resources.model_copy(
        update={"gpus": gpus, "device": "cuda"})})
    kubernetes = cfg.kubernetes.model_validate({**cfg.kubernetes.model_dump(), **GPU_NODES})
    return cfg.model_copy(update={"schedules": [first, *cfg.schedules[1:]], "kubernetes": kubernetes,
                                  "artifacts": "gs://team-models/unity"})


def _gpu_pods(docs):
    pods = []
    for d in docs:
        if d["kind"] == "Deployment":
            pods.append(("scheduler", d["spec"]["template"]["spec"]))
        elif d["kind"] == "CronJob":
            pods.append((d["metadata"]["name"], d["spec"]["jobTemplate"]["spec"]["template"]["spec"]))
        elif d["kind"] == "RayCluster":
            pods += [(g["groupName"], g["template"]["spec"]) for g in d["spec"]["workerGroupSpecs"]]
    return {name: pod for name, pod in pods}


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.stem)
@pytest.mark.parametrize("mode", ["deployment", "cronjob", "cluster"])
def test_gpu_schedules_get_gpu_pods_on_gpu_nodes_in_every_mode(profile, mode):
    cfg = _with_gpu_schedule(profile)
    docs = render_manifests(cfg, profile, mode)
    assert validate_manifests(docs, "1.30.0") == []
    assert restricted_violations(docs) == [], "GPU pods stay admitted by Pod Security 'restricted'"
    if mode == "cluster":
        assert validate_custom(docs, CRDS) == []
    pods = _gpu_pods(docs)
    gpu_pods = {n: p for n, p in pods.items() if "nvidia.com/gpu" in p["containers"][0]["resources"]["limits"]}
    expected = {"deployment": {"scheduler"}, "cronjob": {f"train-{cfg.schedules[0].schedule_id}".lower()},
                "cluster": {"gpu-trainers"}}[mode]
    assert {dns_name(n) if mode == "cronjob" else n for n in gpu_pods} == expected, "only the pods that train on GPUs"
    for name, pod in pods.items():
        has = name in gpu_pods
        assert ("nodeSelector" in pod) == has and ("tolerations" in pod) == has and ("runtimeClassName" in pod) == has
    for pod in gpu_pods.values():
        resources = pod["containers"][0]["resources"]
        assert resources["limits"]["nvidia.com/gpu"] == resources["requests"]["nvidia.com/gpu"] >= 1
        assert pod["nodeSelector"] == GPU_NODES["gpu_node_selector"] and pod["runtimeClassName"] == "nvidia"
        assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    if mode == "cluster":
        group = next(d for d in docs if d["kind"] == "RayCluster")["spec"]["workerGroupSpecs"][1]
        assert group["rayStartParams"]["num-gpus"] == "2" and group["maxReplicas"] == 4
        assert pods["gpu-trainers"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 2
        embedded = yaml.safe_load(next(d for d in docs if d["kind"] == "ConfigMap")["data"]["scheduler.yaml"])
        first = next(s for s in embedded["schedules"] if s["schedule_id"] == cfg.schedules[0].schedule_id)
        assert first["resources"] == {"gpus": 1, "device": "cuda"}, "Ray reads the job's GPUs from the config"


def test_gpu_schedules_a_cluster_cannot_place_stop_the_rendering():
    from mlops_unity_pipeline.errors import UserError

    cfg = _with_gpu_schedule(PROFILES[0], gpus=3)
    with pytest.raises(UserError, match="more GPUs than one worker has"):
        render_manifests(cfg, PROFILES[0], "cluster")
    no_gpu_nodes = cfg.model_copy(update={"kubernetes": cfg.kubernetes.model_copy(
        update={"ray_gpu_workers": 0, "ray_max_gpu_workers": 0})})
    with pytest.raises(UserError, match="no GPU workers"):
        render_manifests(no_gpu_nodes, PROFILES[0], "cluster")
