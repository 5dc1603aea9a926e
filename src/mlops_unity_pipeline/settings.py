"""The product's settings: the one module that reads environment variables.

Everything else asks here, so a variable has one name, one default and one parser, and the README's table of
variables can be checked against one file. `Paths` is resolved once from arguments and the environment and then
handed around; the accessors below are read when they are needed (a long-running scheduler picks up a changed
`UNITY_BUILD_COMMAND` for its next job, as before). The code that runs inside the trainer environment
(`in_trainer_env/`) is another program and reads its own launch variable.
"""

from __future__ import annotations

import getpass
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

DEFAULT_WORKSPACE = "runs"
REGISTRY_DIRNAME = "_registry"  # job ids start with a letter or digit, so these cannot collide
STATE_DIRNAME = "_state"
OUTBOX_FILENAME = "webhooks.db"

WORKSPACE = "UNITY_MLOPS_WORKSPACE"
REGISTRY = "UNITY_MLOPS_REGISTRY"
DATABASE_URL = "UNITY_MLOPS_DATABASE_URL"
ARTIFACTS = "UNITY_MLOPS_ARTIFACTS"
WORKER_WORKSPACE = "UNITY_MLOPS_WORKER_WORKSPACE"
TRAIN_COMMAND = "MLAGENTS_TRAIN_COMMAND"
TRAINER_ENV = "UNITY_MLOPS_TRAINER_ENV"
TRAINER_PYTHON = "UNITY_MLOPS_TRAINER_PYTHON"
IDENTITY_KEY = "UNITY_MLOPS_IDENTITY_KEY"
PORT_LOCK_DIR = "UNITY_MLOPS_PORT_LOCK_DIR"
FAILPOINT = "UNITY_MLOPS_FAILPOINT"
FAILPOINT_FILE = "UNITY_MLOPS_FAILPOINT_FILE"
DEFAULT_TORCH = "torch==2.13.0"
DEFAULT_UNITY_BUILD_TIMEOUT_S = 1800.0  # Unity's own CI uses 30 minutes


def _get(name: str, default: str = "") -> str:
    return os.environ.get(name, default).strip()


def environ() -> Mapping[str, str]:
    """The process environment, read-only in spirit: for building a child's allow-listed environment and for
    finding secret values to mask."""
    return os.environ


def secret(name: str) -> str | None:
    """A secret named by configuration (`secret_env:`); only its value is ever handed on, never stored."""
    return os.environ.get(name) or None


@dataclass(frozen=True)
class Paths:
    """Where a deployment keeps its state: the workspace of job runs, the registry (a URI or a directory), the
    state directory (scheduler, webhook outbox, control-plane log) and, beyond one machine, the shared database
    that then holds the registry's index, the scheduler state and the outbox instead of SQLite files."""

    workspace: Path
    registry: str
    state_dir: Path
    database: str | None = None
    artifacts: str | None = None  # shared object storage (gs://bucket/prefix) for models, checkpoints, reports

    @classmethod
    def resolve(cls, workspace: str | Path | None = None, registry: str | Path | None = None,
                state_dir: str | Path | None = None, database: str | None = None,
                artifacts: str | None = None) -> Paths:
        ws = Path(workspace or _get(WORKSPACE) or DEFAULT_WORKSPACE).resolve()
        reg = str(registry or _get(REGISTRY) or ws / REGISTRY_DIRNAME)
        return cls(ws, reg, Path(state_dir).resolve() if state_dir else ws / STATE_DIRNAME,
                   database or _get(DATABASE_URL) or None, artifacts or _get(ARTIFACTS) or None)

    @property
    def outbox(self) -> Path:
        return self.state_dir / OUTBOX_FILENAME

    @property
    def scheduler_db(self) -> Path:
        return self.state_dir / "scheduler.db"

    @property
    def event_log(self) -> Path:
        return Path(_get("UNITY_MLOPS_CONTROL_PLANE_EVENTS") or self.state_dir / "control-plane.jsonl")

    @property
    def control_events(self) -> str | Path:
        """Where the control plane's log lives: an explicit file, else the shared database, else the state dir."""
        if self.database and not _get("UNITY_MLOPS_CONTROL_PLANE_EVENTS"):
            return self.database
        return self.event_log


# ---------------------------------------------------------------------------- who acts
def worker_workspace() -> str | None:
    """A Ray worker's own scratch workspace (a pod's emptyDir), when its node shares no filesystem with the
    scheduler: the job's files then travel through the artifact store."""
    return _get(WORKER_WORKSPACE) or None


def actor() -> str:
    """A label for who this process acts for, recorded with events (not an authorization: approvals are
    signatures): `UNITY_MLOPS_ACTOR`, else the OS user."""
    return _get("UNITY_MLOPS_ACTOR") or getpass.getuser()


def identity_key_path() -> str | None:
    """The private key file this process holds (`UNITY_MLOPS_IDENTITY_KEY`)."""
    return _get(IDENTITY_KEY) or None


# ---------------------------------------------------------------------------- trainer and build
def train_command() -> str | None:
    """`MLAGENTS_TRAIN_COMMAND`: run this instead of the managed environment's `mlagents-learn`."""
    return _get(TRAIN_COMMAND) or None


def trainer_env_path() -> Path | None:
    return Path(_get(TRAINER_ENV)).expanduser() if _get(TRAINER_ENV) else None


def trainer_python() -> str | None:
    return _get(TRAINER_PYTHON) or None


def torch_spec() -> str:
    return _get("UNITY_MLOPS_TORCH_SPEC") or DEFAULT_TORCH


def torch_index_url() -> str | None:
    return _get("UNITY_MLOPS_TORCH_INDEX_URL") or None


def cuda_visible_devices() -> str | None:
    """The GPUs this process was given (CUDA's own variable; set by Ray and by NVIDIA's container runtime)."""
    return os.environ.get("CUDA_VISIBLE_DEVICES")


def omp_threads() -> str:
    return _get("OMP_NUM_THREADS") or "1"


def cpu_budget() -> int:
    """The CPUs this process may use: its affinity, the container's CPU quota (cgroup v2 `cpu.max`), and an
    explicit OMP_NUM_THREADS (Ray sets it to the CPUs a task declared), whichever is smallest."""
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            n = min(n, max(1, int(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    if _get("OMP_NUM_THREADS").isdigit() and int(_get("OMP_NUM_THREADS")) > 0:
        n = min(n, int(_get("OMP_NUM_THREADS")))
    return max(1, n)


def default_concurrent_jobs() -> int:
    """The scheduler's `max_concurrent_jobs` when a config does not say: a job keeps about two CPUs busy (the fast
    trainer's update threads; ML-Agents' trainer and its players), and on 2 cores two fast jobs at once gave 1.21-1.49x
    the steps/s of one (README "Performance"), so one job per two CPUs this process may use, at least one."""
    return max(1, cpu_budget() // 2)


def port_lock_dir() -> Path:
    return Path(_get(PORT_LOCK_DIR) or Path(tempfile.gettempdir()) / "unity-mlops-ports")


def cache_dir() -> Path:
    from platformdirs import user_cache_dir

    return Path(_get("UNITY_MLOPS_CACHE_DIR") or user_cache_dir("unity-mlops"))


@dataclass(frozen=True)
class UnityBuild:
    command: str
    editor: str
    project: str
    timeout_s: float
    scene: str | None

    @property
    def requested(self) -> bool:
        return bool(self.command or self.editor)


def unity_build() -> UnityBuild:
    """`UNITY_BUILD_COMMAND`, or `UNITY_EDITOR` + `UNITY_PROJECT_PATH`: build a real Unity player."""
    return UnityBuild(_get("UNITY_BUILD_COMMAND"), _get("UNITY_EDITOR"), _get("UNITY_PROJECT_PATH"),
                      float(_get("UNITY_BUILD_TIMEOUT_S") or DEFAULT_UNITY_BUILD_TIMEOUT_S),
                      _get("UNITY_BUILD_SCENE") or None)


# ---------------------------------------------------------------------------- services
def webhook_env() -> tuple[str, str | None] | None:
    """`WEBHOOK_URL` (and `WEBHOOK_SECRET`), as in the setup guide."""
    url = _get("WEBHOOK_URL")
    return (url, os.environ.get("WEBHOOK_SECRET") or None) if url else None


def vertex_env() -> dict[str, str | None] | None:
    """Vertex AI settings from the environment (the setup guide's `GOOGLE_CLOUD_PROJECT` / `VERTEX_REGION`);
    None when unset or switched off with `UNITY_MLOPS_VERTEX=off`."""
    if _get("UNITY_MLOPS_VERTEX").lower() in ("off", "0", "false", "no"):
        return None
    project = _get("UNITY_MLOPS_VERTEX_PROJECT") or _get("GOOGLE_CLOUD_PROJECT")
    if not project:
        return None
    return {"project": project, "region": _get("VERTEX_REGION") or "us-central1",
            "bucket": _get("UNITY_MLOPS_VERTEX_BUCKET") or None}


def vertex_project() -> str | None:
    return _get("UNITY_MLOPS_VERTEX_PROJECT") or None


def vertex_region() -> str:
    return _get("VERTEX_REGION") or "us-central1"


def vertex_bucket() -> str | None:
    return _get("UNITY_MLOPS_VERTEX_BUCKET") or None


def vertex_endpoint() -> str | None:
    """`UNITY_MLOPS_VERTEX_ENDPOINT`: a regional or private endpoint (an http:// one is a local test server)."""
    return _get("UNITY_MLOPS_VERTEX_ENDPOINT") or None


def health_port() -> int | None:
    value = _get("UNITY_MLOPS_HEALTH_PORT")
    return int(value) if value else None


def k8s_job_name() -> str:
    """Set by the Kubernetes manifests: stable across pod retries, so a retried pod resumes its run."""
    return _get("UNITY_MLOPS_K8S_JOB_NAME")


def control_plane_bundle() -> str | None:
    return _get("UNITY_MLOPS_CONTROL_PLANE_BUNDLE") or None


def checkpoints_path() -> str | None:
    return _get("UNITY_MLOPS_CHECKPOINTS") or None


def failpoint() -> tuple[str, str | None]:
    """(`UNITY_MLOPS_FAILPOINT`, `UNITY_MLOPS_FAILPOINT_FILE`): where a chaos test freezes this process."""
    return _get(FAILPOINT), _get(FAILPOINT_FILE) or None
