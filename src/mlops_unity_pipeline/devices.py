"""GPUs: which this process may use, and which torch device a job trains on.

A job says what it needs (`resources: {gpus: N, device: auto|cpu|cuda|cuda:i}`); the machine that runs it decides
what that means there. `auto` is CUDA where a GPU is visible and the trainer environment's torch was built with
CUDA, else the CPU (said in the log). NVIDIA's driver lists its GPUs under /proc/driver/nvidia/gpus; a process
that was given some of them (Ray, Kubernetes' device plugin, a user) sees CUDA_VISIBLE_DEVICES. Nothing is started
to find out.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from . import settings

DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")
NVIDIA = Path("/proc/driver/nvidia/gpus")
TORCH_CUDA_KEY = "torch_cuda"  # in the trainer environment's marker: torch.version.cuda, None for a CPU build


def gpu_count() -> int:
    """The NVIDIA GPUs this machine's driver lists (0 without a driver)."""
    try:
        return sum(1 for _ in NVIDIA.iterdir())
    except OSError:
        return 0


def visible_gpus() -> list[str]:
    """The GPUs this process was given: CUDA_VISIBLE_DEVICES where it is set (Ray sets it for a task that asked
    for GPUs, so logical GPUs of a cluster count too), else every GPU the driver lists."""
    given = settings.cuda_visible_devices()
    if given is not None:
        return [d.strip() for d in given.split(",") if d.strip() and d.strip() != "-1"]
    return [str(i) for i in range(gpu_count())]


def trainer_torch_cuda(env_path: Path | None) -> str | None:
    """The CUDA version the trainer environment's torch was built with (None: a CPU build, or not known)."""
    if env_path is None:
        return None
    try:
        return json.loads((env_path / "unity-mlops-trainer-env.json").read_text()).get(TORCH_CUDA_KEY)
    except (OSError, ValueError, AttributeError):
        return None


def resolve_device(requested: str, env_path: Path | None) -> tuple[str, str | None]:
    """(the torch device to train on, a note when `auto` chose the CPU)."""
    if requested != "auto":
        return requested, None
    if not gpu_count() or not visible_gpus():
        return "cpu", "device auto: training on the CPU (no GPU visible to this process)"
    if not trainer_torch_cuda(env_path):
        return "cpu", ("device auto: training on the CPU (the trainer environment's torch is a CPU build; "
                       "`unity-mlops trainer setup --force` with UNITY_MLOPS_TORCH_INDEX_URL set to a CUDA index "
                       "installs a CUDA one)")
    return "cuda", None


def device_problem(requested: str, gpus: int, needs_player: bool, env_path: Path | None) -> str | None:
    """Why this machine cannot train the job as asked (checked before anything runs), or None."""
    visible = visible_gpus()
    if gpus > len(visible):
        return (f"resources.gpus is {gpus}, but this process sees {len(visible)} GPU(s); run it where there are "
                "enough (executor: ray with GPU nodes, or Kubernetes with kubernetes.gpus) or lower resources.gpus")
    if not requested.startswith("cuda"):
        return None
    if not needs_player:
        return ("trainer 'fast' trains on the CPU (its networks are small; a GPU makes it slower); use "
                "resources.device: auto or cpu, or trainer: mlagents to train on CUDA")
    if not gpu_count():
        return f"resources.device is {requested!r}, but no NVIDIA driver on this machine lists a GPU; use auto or cpu"
    if env_path is not None and (env_path / "unity-mlops-trainer-env.json").exists() \
            and not trainer_torch_cuda(env_path):
        return (f"resources.device is {requested!r}, but the trainer environment's torch is a CPU build; run "
                "`unity-mlops trainer setup --force` with UNITY_MLOPS_TORCH_INDEX_URL set to a CUDA wheel index")
    return None
