"""`k8s render --mode cluster`: the multi-machine deployment, with no volume shared between pods.

* the scheduler: a Deployment of 1 (its lock is PostgreSQL's advisory lock, so a second replica would wait, not
  double-train); an init container runs `unity-mlops db upgrade` (idempotent, safe to race);
* jobs run on a KubeRay `RayCluster` (head + one worker group; the head takes no jobs, `num-cpus: 0`); the scheduler
  submits each job as a Ray task through Ray Client (`ray://<cluster>-head-svc:10001`);
* shared state is the PostgreSQL database (Secret `unity-mlops-database`) and the artifact store (`gs://...`;
  credentials by Workload Identity, or a key in Secret `unity-mlops-storage`);
* every pod: Pod Security "restricted" (non-root, seccomp RuntimeDefault, no privilege escalation, all capabilities
  dropped), a read-only root filesystem, and scratch `emptyDir`s for the workspace and /tmp.

A RayCluster rather than a RayJob per run: jobs are short and frequent, and a cluster that stays up (with the worker
group scaled to the load) avoids a cluster start per run; Ray's task retries give resumption on node loss.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

import yaml

from ..errors import UserError
from ..scheduler.config import SchedulerConfig
from .gpus import give_gpus
from .secrets import DATABASE_KEY, SECRETS, config_without_credentials, secret_env, secret_keys

SCRATCH = "/scratch"
CONFIG_MOUNT = "/etc/unity-mlops"
HEALTH_PORT = 8080
LABELS = {"app.kubernetes.io/name": "unity-mlops", "app.kubernetes.io/managed-by": "unity-mlops"}
RAY_CLUSTER = "unity-mlops-ray"
RESTRICTED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
                      "projected", "secret"}


def _meta(name: str, ns: str) -> dict[str, Any]:
    return {"name": name, "namespace": ns, "labels": dict(LABELS)}


def _env(cfg: SchedulerConfig, secret_envs: list[str]) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = [
        {"name": "UNITY_MLOPS_WORKSPACE", "value": f"{SCRATCH}/runs"},
        {"name": "PYTHONUNBUFFERED", "value": "1"},
        {"name": "HOME", "value": SCRATCH},  # a writable home on a read-only root filesystem
        secret_env(DATABASE_KEY, SECRETS["database"]),
        {"name": "GOOGLE_APPLICATION_CREDENTIALS", "value": f"{CONFIG_MOUNT}/storage/key.json"},
    ]
    if cfg.artifacts:
        env.append({"name": "UNITY_MLOPS_ARTIFACTS", "value": cfg.artifacts})
    return env + [secret_env(name, SECRETS["webhooks"]) for name in secret_envs]


def _container(cfg: SchedulerConfig, name: str, args: list[str], env: list[dict[str, Any]], cpu: str,
               memory: str) -> dict[str, Any]:
    return {
        "name": name, "image": cfg.kubernetes.image, "imagePullPolicy": "IfNotPresent", "args": args,
        "workingDir": SCRATCH, "env": copy.deepcopy(env),
        "resources": {"requests": {"cpu": cpu, "memory": memory}, "limits": {"cpu": cpu, "memory": memory}},
        "volumeMounts": [{"name": "scratch", "mountPath": SCRATCH}, {"name": "tmp", "mountPath": "/tmp"},
                         {"name": "config", "mountPath": f"{CONFIG_MOUNT}/config", "readOnly": True},
                         {"name": "storage", "mountPath": f"{CONFIG_MOUNT}/storage", "readOnly": True}],
        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                            "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]},
                            "seccompProfile": {"type": "RuntimeDefault"}},
    }


def _pod(containers: list[dict[str, Any]], *, restart: str | None = None, grace_s: int | None = None,
         init: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "securityContext": {"runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001, "fsGroup": 10001,
                            "seccompProfile": {"type": "RuntimeDefault"}},
        "automountServiceAccountToken": False,
        "containers": containers,
        "volumes": [{"name": "scratch", "emptyDir": {}}, {"name": "tmp", "emptyDir": {}},
                    {"name": "config", "configMap": {"name": "unity-mlops-config"}},
                    {"name": "storage", "secret": {"secretName": SECRETS["storage"], "optional": True}}],
    }
    if init:
        spec["initContainers"] = init
    if restart:
        spec["restartPolicy"] = restart
    if grace_s is not None:
        spec["terminationGracePeriodSeconds"] = grace_s
    return spec


def in_cluster_config(cfg: SchedulerConfig) -> dict[str, Any]:
    data = config_without_credentials(cfg)  # the database URL comes from its Secret, never a ConfigMap
    data["workspace"] = f"{SCRATCH}/runs"
    for key in ("state_dir", "kubernetes"):
        data.pop(key, None)
    data["health"] = {"host": "0.0.0.0", "port": HEALTH_PORT}
    data["executor"] = {**data.get("executor", {}), "kind": "ray", "address": f"ray://{RAY_CLUSTER}-head-svc:10001",
                        "num_cpus": float(cfg.kubernetes.ray_job_cpus)}
    return data


def render_cluster(cfg: SchedulerConfig, source: str | Path, base: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`base` is the namespace/config/secret part shared with the other modes (its PVC is left out)."""
    k, ns = cfg.kubernetes, cfg.kubernetes.namespace
    docs = [d for d in base if d["kind"] not in ("PersistentVolumeClaim", "ConfigMap")]
    docs.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta("unity-mlops-config", ns),
                 "data": {"scheduler.yaml": f"# rendered from {Path(source).name} (--mode cluster)\n"
                                            + yaml.safe_dump(in_cluster_config(cfg), sort_keys=False)}})
    docs.append({"apiVersion": "v1", "kind": "Secret", "metadata": _meta(SECRETS["storage"], ns), "type": "Opaque",
                 "stringData": {"key.json": ""}})  # or leave empty and use Workload Identity
    env = _env(cfg, list(secret_keys(cfg)))
    config_path = f"{CONFIG_MOUNT}/config/scheduler.yaml"
    grace = int(cfg.grace_period_s) + 60
    scheduler = _container(cfg, "scheduler", ["schedule", "run", config_path, "--health-port", str(HEALTH_PORT)],
                           env, k.cpu, k.memory)
    scheduler["ports"] = [{"name": "health", "containerPort": HEALTH_PORT}]
    scheduler["livenessProbe"] = {"httpGet": {"path": "/healthz", "port": "health"}, "initialDelaySeconds": 30,
                                  "periodSeconds": 20, "failureThreshold": 3}
    scheduler["readinessProbe"] = {"httpGet": {"path": "/readyz", "port": "health"}, "periodSeconds": 10}
    migrate = _container(cfg, "db-upgrade", ["db", "upgrade"], env, "250m", "256Mi")
    component = {**LABELS, "app.kubernetes.io/component": "scheduler"}
    docs.append({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": _meta("unity-mlops-scheduler", ns),
        "spec": {"replicas": 1, "strategy": {"type": "Recreate"},
                 "selector": {"matchLabels": {"app.kubernetes.io/name": "unity-mlops",
                                              "app.kubernetes.io/component": "scheduler"}},
                 "template": {"metadata": {"labels": component},
                              "spec": _pod([scheduler], restart="Always", grace_s=grace, init=[migrate])}},
    })
    head = _container(cfg, "ray-head", [], env, "1", "2Gi")
    head["ports"] = [{"name": "gcs", "containerPort": 6379}, {"name": "client", "containerPort": 10001}]
    worker_env = [*env, {"name": "UNITY_MLOPS_WORKER_WORKSPACE", "value": f"{SCRATCH}/runs"}]
    worker = _container(cfg, "ray-worker", [], worker_env, k.ray_worker_cpu, k.ray_worker_memory)
    for c in (head, worker):
        del c["args"]  # KubeRay writes the `ray start` command itself
    groups = [{
        "groupName": "trainers", "replicas": k.ray_workers, "minReplicas": k.ray_min_workers,
        "maxReplicas": max(k.ray_workers, k.ray_max_workers),
        "rayStartParams": {"num-cpus": str(k.ray_worker_cpu)},
        "template": {"metadata": {"labels": {**LABELS, "app.kubernetes.io/component": "ray"}},
                     "spec": _pod([worker], grace_s=grace)},
    }]
    groups += _gpu_workers(cfg, worker, grace)
    docs.append({
        "apiVersion": "ray.io/v1", "kind": "RayCluster", "metadata": _meta(RAY_CLUSTER, ns),
        "spec": {
            "rayVersion": k.ray_version,
            "headGroupSpec": {"rayStartParams": {"num-cpus": "0", "dashboard-host": "127.0.0.1"},
                              "template": {"metadata": {"labels": {**LABELS, "app.kubernetes.io/component": "ray"}},
                                           "spec": _pod([head])}},
            "workerGroupSpecs": groups,
        },
    })
    return docs


def _gpu_workers(cfg: SchedulerConfig, worker: dict[str, Any], grace: int) -> list[dict[str, Any]]:
    """A second worker group on GPU nodes, declaring its GPUs to Ray: jobs with `resources.gpus` run only there
    (Ray places them), the others on the CPU group, and the autoscaler starts GPU nodes only when GPU jobs wait."""
    k = cfg.kubernetes
    needs = {s.schedule_id: s.resources.gpus for s in cfg.schedules if s.resources.gpus}
    if not needs and not k.ray_gpu_workers and not k.ray_max_gpu_workers:
        return []
    if needs and not (k.ray_gpu_workers or k.ray_max_gpu_workers):
        first = next(iter(needs))
        raise UserError(f"schedule {first} needs GPUs, but the cluster has no GPU workers",
                        hint="set kubernetes.ray_gpu_workers (or ray_max_gpu_workers for GPU nodes on demand)")
    too_many = [f"{sid} ({n})" for sid, n in needs.items() if n > k.ray_gpus_per_worker]
    if too_many:
        raise UserError(f"schedules {', '.join(too_many)} need more GPUs than one worker has "
                        f"(kubernetes.ray_gpus_per_worker: {k.ray_gpus_per_worker})",
                        hint="raise ray_gpus_per_worker or lower the schedules' resources.gpus")
    gpu_worker = copy.deepcopy(worker)
    gpu_worker["name"] = "ray-gpu-worker"
    return [{
        "groupName": "gpu-trainers", "replicas": k.ray_gpu_workers, "minReplicas": 0,
        "maxReplicas": max(k.ray_gpu_workers, k.ray_max_gpu_workers),
        "rayStartParams": {"num-cpus": str(k.ray_worker_cpu), "num-gpus": str(k.ray_gpus_per_worker)},
        "template": {"metadata": {"labels": {**LABELS, "app.kubernetes.io/component": "ray"}},
                     "spec": give_gpus(cfg, _pod([gpu_worker], grace_s=grace), k.ray_gpus_per_worker)},
    }]


def restricted_violations(docs: list[dict[str, Any]]) -> list[str]:
    """What Pod Security "restricted" (v1.30) would refuse in these manifests; empty when they are admitted."""
    problems = []
    for doc in docs:
        for where, pod in _pods(doc):
            psc = pod.get("securityContext") or {}
            if pod.get("hostNetwork") or pod.get("hostPID") or pod.get("hostIPC"):
                problems.append(f"{where}: host namespaces")
            for vol in pod.get("volumes") or []:
                kind = next(k for k in vol if k != "name")
                if kind not in RESTRICTED_VOLUMES:
                    problems.append(f"{where}: volume {vol['name']} of type {kind}")
            for c in (pod.get("initContainers") or []) + pod.get("containers", []):
                sc = c.get("securityContext") or {}
                name = f"{where}/{c['name']}"
                if sc.get("privileged"):
                    problems.append(f"{name}: privileged")
                if sc.get("allowPrivilegeEscalation") is not False:
                    problems.append(f"{name}: allowPrivilegeEscalation must be false")
                if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
                    problems.append(f"{name}: capabilities must drop ALL")
                if set((sc.get("capabilities") or {}).get("add") or []) - {"NET_BIND_SERVICE"}:
                    problems.append(f"{name}: adds capabilities")
                if not (sc.get("runAsNonRoot") or psc.get("runAsNonRoot")) or 0 in (sc.get("runAsUser"),
                                                                                     psc.get("runAsUser")):
                    problems.append(f"{name}: must run as non-root")
                seccomp = (sc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type")
                if seccomp not in ("RuntimeDefault", "Localhost"):
                    problems.append(f"{name}: seccompProfile must be RuntimeDefault or Localhost")
                if c.get("ports") and any(p.get("hostPort") for p in c["ports"]):
                    problems.append(f"{name}: hostPort")
    return problems


def _pods(doc: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    name, spec = f"{doc['kind']}/{doc['metadata']['name']}", doc.get("spec") or {}
    if doc["kind"] in ("Deployment", "Job"):
        return [(name, spec["template"]["spec"])]
    if doc["kind"] == "CronJob":
        return [(name, spec["jobTemplate"]["spec"]["template"]["spec"])]
    if doc["kind"] == "RayCluster":
        workers = enumerate(spec.get("workerGroupSpecs", []))
        return [(f"{name}/head", spec["headGroupSpec"]["template"]["spec"])] + [
            (f"{name}/{g.get('groupName', i)}", g["template"]["spec"]) for i, g in workers]
    return []


@functools.lru_cache(maxsize=16)
def _crd_schemas(path: str, mtime_ns: int, size: int) -> dict[tuple[str, str], dict[str, Any]]:
    """A CRD file's schemas by (apiVersion, kind); read once per content (KubeRay's are megabytes of YAML)."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    crd = yaml.load(Path(path).read_text(), Loader=loader)  # noqa: S506  (a safe loader, the C one if built)
    return {(f"{crd['spec']['group']}/{version['name']}", crd["spec"]["names"]["kind"]):
            version["schema"]["openAPIV3Schema"] for version in crd["spec"]["versions"]}


def validate_custom(docs: list[dict[str, Any]], crd_files: list[Path]) -> list[str]:
    """Custom resources (RayCluster) against their CRDs' OpenAPI v3 schemas (the `x-kubernetes-*` keys are
    annotations to jsonschema); core kinds are `kubernetes.validate_manifests`' job."""
    import jsonschema

    schemas = {}
    for path in crd_files:
        st = Path(path).stat()
        schemas.update(_crd_schemas(str(Path(path).resolve()), st.st_mtime_ns, st.st_size))
    problems = []
    for doc in docs:
        key = (doc.get("apiVersion"), doc.get("kind"))
        if key[0] in ("v1", "apps/v1", "batch/v1"):
            continue
        if key not in schemas:
            problems.append(f"{doc['kind']}/{doc['metadata']['name']}: no CRD given for {key[0]} {key[1]}")
            continue
        for error in jsonschema.Draft7Validator(schemas[key]).iter_errors(doc):
            where = ".".join(map(str, error.absolute_path))
            problems.append(f"{doc['kind']}/{doc['metadata']['name']}: {where}: {error.message}")
    return problems
