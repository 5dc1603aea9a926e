"""Kubernetes manifests for a scheduler config: run on existing engines, not a home-made cluster.

Two modes, pick one (both at once would train every slot twice):

* ``deployment`` (default): one long-running scheduler (1 replica, `Recreate`, liveness `/healthz`, readiness
  `/readyz`, a termination grace period long enough for ML-Agents to checkpoint); the state store, runs and the
  registry live on the PVC.
* ``cluster``: beyond one machine (`deploy/cluster.py`): the scheduler, a KubeRay RayCluster that runs the jobs,
  PostgreSQL and object storage for shared state, no shared volume.
* ``cronjob``: one CronJob per schedule (`timeZone`, `concurrencyPolicy`, `startingDeadlineSeconds`,
  `backoffLimit`, `activeDeadlineSeconds`); a pod retry resumes the same training from its checkpoint, because
  the job id comes from the Kubernetes Job name and the workspace is on the PVC.

Always: a PersistentVolumeClaim, a ConfigMap with the config, and a Secret holding the webhook secrets' keys.
No credential from the config reaches the ConfigMap: a webhook URL with a password or a token becomes a key of the
webhooks Secret (`url_env`), the database URL a key of the database Secret, and any other string that carries one
(a registry or artifact URI, metadata) stops the rendering with the field named.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import yaml

from ..errors import UserError
from ..scheduler.config import SchedulerConfig
from .gpus import give_gpus
from .secrets import DATABASE_KEY, SECRETS, config_without_credentials, secret_env, secret_keys

MOUNT = "/mnt/training-logs"
CONFIG_MOUNT = "/etc/unity-mlops"
HEALTH_PORT = 8080
LABELS = {"app.kubernetes.io/name": "unity-mlops", "app.kubernetes.io/managed-by": "unity-mlops"}
def dns_name(text: str, limit: int = 52) -> str:
    """A DNS-1123 label (CronJob names must stay <= 52 characters)."""
    name = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    return name[:limit].rstrip("-") or "schedule"


def _in_cluster_config(cfg: SchedulerConfig) -> dict[str, Any]:
    data = config_without_credentials(cfg)
    data["workspace"] = f"{MOUNT}/runs"
    data.pop("state_dir", None)
    data["health"] = {"host": "0.0.0.0", "port": HEALTH_PORT}
    data.pop("kubernetes", None)
    return data


def _container(cfg: SchedulerConfig, args: list[str], secret_envs: list[str]) -> dict[str, Any]:
    k = cfg.kubernetes
    env: list[dict[str, Any]] = [
        {"name": "UNITY_MLOPS_WORKSPACE", "value": f"{MOUNT}/runs"},
        {"name": "PYTHONUNBUFFERED", "value": "1"},
    ]
    if cfg.database:
        env.append(secret_env(DATABASE_KEY, SECRETS["database"]))
    env += [secret_env(name, SECRETS["webhooks"]) for name in secret_envs]
    if cfg.vertex is not None:  # as the setup guide passes them; credentials come from Workload Identity
        env += [{"name": "GOOGLE_CLOUD_PROJECT", "value": cfg.vertex.project},
                {"name": "VERTEX_REGION", "value": cfg.vertex.region}]
        if cfg.vertex.bucket:
            env.append({"name": "UNITY_MLOPS_VERTEX_BUCKET", "value": cfg.vertex.bucket})
    return {
        "name": "unity-mlops",
        "image": k.image,
        "imagePullPolicy": "IfNotPresent",
        "args": args,
        "workingDir": MOUNT,
        "env": env,
        "resources": {"requests": {"cpu": k.cpu, "memory": k.memory}, "limits": {"cpu": k.cpu, "memory": k.memory}},
        "volumeMounts": [{"name": "data", "mountPath": MOUNT},
                         {"name": "config", "mountPath": CONFIG_MOUNT, "readOnly": True}],
        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": False,
                            "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}},
    }


def _pod_spec(cfg: SchedulerConfig, container: dict[str, Any], restart: str, grace_s: int) -> dict[str, Any]:
    return {
        "restartPolicy": restart,
        "terminationGracePeriodSeconds": grace_s,
        "securityContext": {"runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001, "fsGroup": 10001,
                            "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [container],
        "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "unity-mlops-data"}},
                    {"name": "config", "configMap": {"name": "unity-mlops-config"}}],
    }


def render_manifests(cfg: SchedulerConfig, source: str | Path = "scheduler.yaml",
                     mode: str = "deployment") -> list[dict[str, Any]]:
    if mode not in ("deployment", "cronjob", "cluster"):
        raise ValueError("mode must be 'deployment', 'cronjob' or 'cluster'")
    k, ns = cfg.kubernetes, cfg.kubernetes.namespace
    meta = lambda name: {"name": name, "namespace": ns, "labels": dict(LABELS)}  # noqa: E731
    secret_envs = list(secret_keys(cfg))
    grace = int(cfg.grace_period_s) + 60  # ML-Agents needs time to write its checkpoint after SIGINT
    docs: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": dict(LABELS)}},
        {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": meta("unity-mlops-data"),
         "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": k.storage}},
                  **({"storageClassName": k.storage_class} if k.storage_class else {})}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta("unity-mlops-config"),
         "data": {"scheduler.yaml": f"# rendered from {Path(source).name}\n"
                                    + yaml.safe_dump(_in_cluster_config(cfg), sort_keys=False)}},
        {"apiVersion": "v1", "kind": "Secret", "metadata": meta(SECRETS["webhooks"]), "type": "Opaque",
         # keys only: fill them with `kubectl create secret generic unity-mlops-webhooks --from-literal=...`
         "stringData": {name: "" for name in secret_envs}},
    ]
    if cfg.database or mode == "cluster":  # keys only, as above
        docs.append({"apiVersion": "v1", "kind": "Secret", "metadata": meta(SECRETS["database"]), "type": "Opaque",
                     "stringData": {DATABASE_KEY: ""}})
    if mode == "cluster":
        from .cluster import render_cluster

        return render_cluster(cfg, source, docs)
    config_path = f"{CONFIG_MOUNT}/scheduler.yaml"
    if mode == "deployment":
        # the scheduler trains in its own pod: as many GPUs as the most demanding schedule (or kubernetes.gpus)
        gpus = k.gpus if k.gpus is not None else max((s.resources.gpus for s in cfg.schedules), default=0)
        container = _container(cfg, ["schedule", "run", config_path, "--health-port", str(HEALTH_PORT)], secret_envs)
        container["ports"] = [{"name": "health", "containerPort": HEALTH_PORT}]
        container["livenessProbe"] = {"httpGet": {"path": "/healthz", "port": "health"}, "initialDelaySeconds": 30,
                                      "periodSeconds": 20, "failureThreshold": 3}
        container["readinessProbe"] = {"httpGet": {"path": "/readyz", "port": "health"}, "periodSeconds": 10}
        docs.append({
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta("unity-mlops-scheduler"),
            "spec": {"replicas": 1, "strategy": {"type": "Recreate"},
                     "selector": {"matchLabels": {"app.kubernetes.io/name": "unity-mlops",
                                                  "app.kubernetes.io/component": "scheduler"}},
                     "template": {"metadata": {"labels": {**LABELS, "app.kubernetes.io/component": "scheduler"}},
                                  "spec": give_gpus(cfg, _pod_spec(cfg, container, "Always", grace), gpus)}},
        })
        return docs
    for schedule in cfg.schedules:
        fields = schedule.cron_expression.split()
        if not schedule.cron_expression.startswith("@") and len(fields) != 5:
            raise UserError(f"schedule {schedule.schedule_id}: cron_expression {schedule.cron_expression!r} has "
                            f"{len(fields)} fields; a Kubernetes CronJob takes exactly 5 (no seconds field)",
                            hint="use 5 fields, or --mode deployment (the 24/7 scheduler reads 6)")
        container = _container(cfg, ["schedule", "run-once", config_path, schedule.schedule_id], secret_envs)
        container["env"].append({"name": "UNITY_MLOPS_K8S_JOB_NAME",
                                 "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['job-name']"}}})
        deadline = int(schedule.job_timeout_s + grace) if schedule.job_timeout_s else k.active_deadline_s
        cron: dict[str, Any] = {
            "schedule": schedule.cron_expression,
            "timeZone": schedule.timezone,
            "concurrencyPolicy": "Allow" if schedule.overlap_policy == "allow" else "Forbid",
            "suspend": not schedule.enabled,
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 3,
            "jobTemplate": {"spec": {
                "backoffLimit": k.backoff_limit,
                "activeDeadlineSeconds": deadline,
                "template": {"metadata": {"labels": {**LABELS, "app.kubernetes.io/component": "training"}},
                             "spec": give_gpus(cfg, _pod_spec(cfg, container, "Never", grace),
                                               schedule.resources.gpus)},
            }},
        }
        if schedule.starting_deadline_s:
            cron["startingDeadlineSeconds"] = int(schedule.starting_deadline_s)
        docs.append({"apiVersion": "batch/v1", "kind": "CronJob",
                     "metadata": meta(dns_name(f"train-{schedule.schedule_id}")), "spec": cron})
    return docs


class _BlockDumper(yaml.SafeDumper):
    """Multi-line strings (the ConfigMap's embedded config) as readable literal blocks."""


def _str(dumper: yaml.SafeDumper, value: str):
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _str)


def dump_manifests(docs: list[dict[str, Any]]) -> str:
    return yaml.dump_all(docs, Dumper=_BlockDumper, sort_keys=False, width=120)


def validate_manifests(docs: list[dict[str, Any]], version: str = "1.30.0") -> list[str]:
    """Strict validation against the official Kubernetes JSON schemas (bundled, offline)."""
    try:
        import kubernetes_validate as kv
    except ImportError as exc:  # an optional extra
        raise RuntimeError("install kubernetes-validate (pip install 'unity-mlops[deploy]')") from exc
    problems = []
    for doc in (d for d in docs if d["apiVersion"] in ("v1", "apps/v1", "batch/v1")):  # custom resources: their CRD
        try:
            kv.validate(copy.deepcopy(doc), version, strict=True)
        except kv.ValidationError as e:
            where = ".".join(map(str, e.path))
            problems.append(f"{doc['kind']}/{doc['metadata']['name']}: {where}: {e.message}")
        except kv.SchemaNotFoundError as e:
            problems.append(f"{doc['kind']}/{doc['metadata']['name']}: {e.message}")
    return problems
