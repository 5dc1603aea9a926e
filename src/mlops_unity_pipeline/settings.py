"""The product's settings: the one module that reads environment variables.

Everything else asks here, so a variable has one name, one default and one parser, and the reference page of
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
    the steps/s of one (docs/benchmarks/fast-trainer.md#under-contention-and-two-jobs-at-once), so one job per two
    CPUs this process may use, at least one."""
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


# ---------------------------------------------------------------------------- the documented list
# Every variable read above, with what it means: the reference page "Environment variables" is generated from this
# and a test checks that every name this module reads is here.
VARIABLES: dict[str, dict[str, str]] = {
    "Where things live": {
        WORKSPACE: "The workspace: one folder per job, the registry and the state (default `./runs`).",
        REGISTRY: "The registry: a directory or a URI (`file:`, `sqlite:`, `postgresql:`, `vertex://PROJECT/REGION`; "
                  "default `<workspace>/_registry`).",
        DATABASE_URL: "A shared PostgreSQL (`postgresql://user:pw@host/db`) for the registry index, scheduler state, "
                      "webhook outbox and control-plane log (default: SQLite files beside each store).",
        ARTIFACTS: "Shared object storage for models, checkpoints and run files (`gs://bucket/prefix` or a shared "
                   "directory; default: the local workspace only).",
        WORKER_WORKSPACE: "A Ray worker's own scratch workspace (a pod's emptyDir); its jobs' files travel through "
                          "the artifact store.",
        "UNITY_MLOPS_CACHE_DIR": "The cache (the strict trainer-YAML check's verdicts; default: the user cache).",
        PORT_LOCK_DIR: "Where jobs reserve trainer ports with lock files (default `$TMPDIR/unity-mlops-ports`); "
                       "every process on the host must use the same one.",
    },
    "Trainer and build": {
        TRAIN_COMMAND: "Run this instead of the managed `mlagents-learn` (its own config and flags are kept; see "
                       "\"Bring your own ML-Agents config\").",
        TRAINER_ENV: "Where the managed ML-Agents trainer environment is (default: in the user cache).",
        TRAINER_PYTHON: "The CPython 3.10/3.11 `trainer setup` builds it from.",
        "UNITY_MLOPS_TORCH_SPEC": f"The torch requirement of the trainer environment (default `{DEFAULT_TORCH}`).",
        "UNITY_MLOPS_TORCH_INDEX_URL": "The index torch is installed from (a CUDA one for GPUs, e.g. "
                                       "`https://download.pytorch.org/whl/cu126`).",
        "CUDA_VISIBLE_DEVICES": "The GPUs this process may use (CUDA's own; Ray and NVIDIA's container runtime set "
                                "it); `resources.gpus` is checked against it.",
        "OMP_NUM_THREADS": "Caps the CPUs a job uses (Ray sets it to a task's declared CPUs; default for trainers 1).",
        "UNITY_BUILD_COMMAND": "Build a real Unity player with this command instead of the headless player.",
        "UNITY_EDITOR": "A Unity editor to build with (with `UNITY_PROJECT_PATH`).",
        "UNITY_PROJECT_PATH": "The Unity project the generated scripts are copied into and built from.",
        "UNITY_BUILD_SCENE": "The scene to build (default: the project's build settings).",
        "UNITY_BUILD_TIMEOUT_S": f"The build's time limit in seconds (default {DEFAULT_UNITY_BUILD_TIMEOUT_S:.0f}).",
    },
    "Services": {
        "WEBHOOK_URL": "A webhook endpoint for lifecycle events, as in the setup guide.",
        "WEBHOOK_SECRET": "Its `whsec_` signing secret (Standard Webhooks).",
        "GOOGLE_CLOUD_PROJECT": "Register versions in Vertex AI in this project (as in the setup guide).",
        "UNITY_MLOPS_VERTEX_PROJECT": "The same, taking precedence over `GOOGLE_CLOUD_PROJECT`.",
        "VERTEX_REGION": "Vertex AI's region (default `us-central1`).",
        "UNITY_MLOPS_VERTEX_BUCKET": "The bucket for uploaded versions (default `<project>-mlops-unity-models`).",
        "UNITY_MLOPS_VERTEX_ENDPOINT": "A regional or private Vertex AI endpoint.",
        "UNITY_MLOPS_VERTEX": "`off` keeps models local even when the variables above are set.",
        "UNITY_MLOPS_HEALTH_PORT": "The scheduler's health port in the container image's HEALTHCHECK.",
        "UNITY_MLOPS_K8S_JOB_NAME": "Set by the rendered CronJobs: a retried pod resumes the same run.",
    },
    "Control plane": {
        "UNITY_MLOPS_CONTROL_PLANE_BUNDLE": "Gate `models promote`/`rollback` through this control-plane bundle.",
        "UNITY_MLOPS_CONTROL_PLANE_EVENTS": "The control-plane event log file (default: the shared database, else "
                                            "`<state>/control-plane.jsonl`).",
        "UNITY_MLOPS_CHECKPOINTS": "Where signed checkpoints of the log's head are kept (outside the log's folder).",
        IDENTITY_KEY: "The private key this process holds: an approval signed with it is refused (no self-approval).",
        "UNITY_MLOPS_ACTOR": "The label recorded as who acted (default: the OS user); not an authorization.",
    },
    "Testing the guarantees": {
        FAILPOINT: "Freeze the process at this named point (the chaos harness, `failpoints.py`).",
        FAILPOINT_FILE: "The file the frozen process writes when it reaches the failpoint.",
    },
}
