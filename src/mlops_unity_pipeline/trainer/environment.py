"""The managed ML-Agents trainer environment: an isolated virtual environment the product creates and checks.

ML-Agents 1.1.0 pins Python 3.10.1-3.10.12, protobuf 3.20 and numpy < 1.24, which cannot live beside the
product's modern dependencies. So it gets its own venv, built from the lock file shipped with the package:
torch first (pinned, CPU build where available), the exact pins with ``--no-deps``, then the two pure-Python
mlagents wheels (hash-checked) with ``--ignore-requires-python`` so Python 3.11 works too.

A venv is not relocatable, so it is built in place and only counts as ready once its marker file (written
last, with the lock digest) exists; an interrupted setup is wiped and rebuilt on the next run.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from .. import settings
from ..devices import TORCH_CUDA_KEY
from ..errors import TrainerEnvError
from ..redaction import child_environment

MLAGENTS_VERSION = "1.1.0"
WHEELS = {
    "mlagents-1.1.0-py3-none-any.whl": "0671e40fb4e4da8740d18bbce47d5a5ef1c58a0db9d109846fbe3d98d712b4f4",
    "mlagents_envs-1.1.0-py3-none-any.whl": "fbb7e54c6327a53f0b7dd615de49414af496e5f766ccc10f175d3731b32bb985",
}
EXTRA_NO_DEPS = ["pettingzoo==1.15.0"]  # declared by mlagents-envs; its metadata says Python < 3.11
SUPPORTED_PYTHONS = ((3, 10), (3, 11))
MARKER = "unity-mlops-trainer-env.json"

_CHECK_SCRIPT = r"""
import json, sys
out = {"python": sys.version.split()[0]}
problems = []
for mod, attr in [("mlagents", None), ("mlagents_envs", None), ("torch", "__version__"), ("numpy", "__version__"),
                  ("google.protobuf", "__version__"), ("grpc", "__version__"), ("onnx", "__version__")]:
    try:
        m = __import__(mod, fromlist=["_"])
        out[mod] = getattr(m, attr) if attr else None
    except Exception as exc:
        problems.append(f"cannot import {mod}: {exc}")
try:
    from importlib.metadata import version
    out["mlagents"] = version("mlagents"); out["mlagents_envs"] = version("mlagents-envs")
    import mlagents.trainers.learn  # noqa: F401  (the trainer entry point)
    from mlagents_envs.communicator_objects import unity_message_pb2  # noqa: F401
except Exception as exc:
    problems.append(f"ML-Agents trainer does not import: {exc}")
try:
    import torch
    out["torch_cuda"] = torch.version.cuda  # None for a CPU build
except Exception:
    out["torch_cuda"] = None
out["problems"] = problems
print(json.dumps(out))
"""

Progress = Callable[[str], None]


def lock_path() -> Path:
    return Path(str(resources.files("mlops_unity_pipeline.trainer") / f"mlagents-{MLAGENTS_VERSION}.lock"))


def lock_digest() -> str:
    """Identifies what gets installed: the pins (not the comments), the wheels and the torch request."""
    pins = [ln.split("#", 1)[0].strip() for ln in lock_path().read_text().splitlines()]
    h = hashlib.sha256("\n".join(sorted(p for p in pins if p)).encode())
    h.update(json.dumps([WHEELS, EXTRA_NO_DEPS, settings.torch_spec()]).encode())
    return h.hexdigest()


def default_env_path() -> Path:
    """`$UNITY_MLOPS_TRAINER_ENV`, else a per-lock directory in the user's cache."""
    if settings.trainer_env_path():
        return settings.trainer_env_path()
    from platformdirs import user_cache_path

    return user_cache_path("unity-mlops") / f"trainer-mlagents-{MLAGENTS_VERSION}-{lock_digest()[:10]}"


def _python_version(exe: str) -> tuple[int, int, int] | None:
    try:
        out = subprocess.run(
            [exe, "-c", "import sys; print(*sys.version_info[:3])"], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    major, minor, micro = (int(x) for x in out.stdout.split())
    return major, minor, micro


def find_base_python(explicit: str | None = None) -> str:
    """A CPython 3.10 or 3.11 to build the venv from: explicit, `$UNITY_MLOPS_TRAINER_PYTHON`, or on PATH."""
    candidates = [explicit] if explicit else []
    if not candidates and settings.trainer_python():
        candidates = [settings.trainer_python()]
    if not candidates:
        candidates = ["python3.11", sys.executable, "python3.10", "python3"]
    for cand in candidates:
        exe = shutil.which(cand) or (cand if Path(cand).is_file() else None)
        if not exe:
            continue
        ver = _python_version(exe)
        if ver and ver[:2] in SUPPORTED_PYTHONS:
            return exe
    raise TrainerEnvError(
        f"no usable Python for the ML-Agents trainer (tried {', '.join(c for c in candidates if c)}); "
        "ML-Agents 1.1.0 needs CPython 3.10 or 3.11",
        hint=f"install python3.11, or point {settings.TRAINER_PYTHON} (or --python) at a 3.10/3.11 interpreter",
    )


@dataclass
class TrainerEnvironment:
    path: Path

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"

    @property
    def marker(self) -> Path:
        return self.path / MARKER

    def is_ready(self) -> bool:
        try:
            data = json.loads(self.marker.read_text())
        except (OSError, ValueError):
            return False
        return data.get("lock_digest") == lock_digest() and self.python.exists()

    def check(self) -> dict:
        """Import the trainer in the environment; raise `TrainerEnvError` naming what is missing."""
        fix = "run `unity-mlops trainer setup`"
        if not self.python.exists():
            raise TrainerEnvError(f"the ML-Agents trainer environment does not exist at {self.path}", hint=fix)
        if not self.is_ready():
            raise TrainerEnvError(
                f"the trainer environment at {self.path} is incomplete or was built from another lock file",
                hint=f"{fix} (it rebuilds the environment)",
            )
        proc = subprocess.run(
            [str(self.python), "-c", _CHECK_SCRIPT], capture_output=True, text=True, timeout=300, env=clean_env()
        )
        if proc.returncode != 0:
            raise TrainerEnvError(f"the trainer environment's Python fails to run: {proc.stderr[-500:]}", hint=fix)
        info = json.loads(proc.stdout.strip().splitlines()[-1])
        if info["problems"]:
            raise TrainerEnvError("; ".join(info["problems"]), hint=f"{fix} --force")
        if info.get("mlagents") != MLAGENTS_VERSION:
            raise TrainerEnvError(f"expected mlagents {MLAGENTS_VERSION}, found {info.get('mlagents')}", hint=fix)
        info["path"] = str(self.path)
        return info

    def launcher_command(self) -> list[str]:
        """The command that behaves like `mlagents-learn` (append its arguments)."""
        launcher = Path(__file__).resolve().parent.parent / "in_trainer_env" / "launcher.py"
        return [str(self.python), "-s", str(launcher)]


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """What processes of the trainer environment inherit: an allow-list (no product packages on PYTHONPATH, no
    webhook or cloud credentials: a trainer that prints its environment must not leak them)."""
    return child_environment(extra)


def _setup_env() -> dict[str, str]:
    """pip during setup needs the user's index configuration (PIP_*, proxies), but not the product's packages."""
    env = {k: v for k, v in settings.environ().items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def _run(cmd: list[str], what: str, progress: Progress, log: Path) -> None:
    t0 = time.monotonic()
    progress(f"  {what} ...")
    with log.open("a", encoding="utf-8") as fh:
        fh.write(f"\n$ {' '.join(cmd)}\n")
        fh.flush()
        proc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=_setup_env())
    if proc.returncode != 0:
        tail = log.read_text(encoding="utf-8", errors="replace")[-2000:]
        raise TrainerEnvError(
            f"trainer environment setup failed while trying to {what} (exit {proc.returncode}); "
            f"log: {log}\n{tail}",
            hint="check network access to the package index, then run `unity-mlops trainer setup` again",
        )
    progress(f"  {what}: done in {time.monotonic() - t0:.0f} s")


def setup(
    path: Path | None = None, python: str | None = None, force: bool = False, progress: Progress = print,
    torch_index_url: str | None = None,
) -> TrainerEnvironment:
    """Create (or verify) the trainer environment. Idempotent: a ready environment is only checked, unless torch is
    asked from another index than it came from (a CUDA build, `--torch-index-url`): then it is rebuilt."""
    env = TrainerEnvironment((path or default_env_path()).expanduser().resolve())
    index = torch_index_url or settings.torch_index_url()
    if env.is_ready() and index and json.loads(env.marker.read_text()).get("torch_index_url") != index:
        progress(f"torch comes from {index} this time: rebuilding the trainer environment")
        force = True
    if env.is_ready() and not force:
        progress(f"trainer environment ready at {env.path}")
        info = env.check()
        marker = json.loads(env.marker.read_text())
        if marker.get(TORCH_CUDA_KEY, "?") != info.get("torch_cuda"):  # made before the marker said it
            env.marker.write_text(json.dumps({**marker, TORCH_CUDA_KEY: info.get("torch_cuda")}, indent=2))
        return env
    base = find_base_python(python)
    progress(f"creating the ML-Agents {MLAGENTS_VERSION} trainer environment at {env.path} (Python: {base})")
    shutil.rmtree(env.path, ignore_errors=True)
    env.path.parent.mkdir(parents=True, exist_ok=True)
    log = env.path.parent / f"{env.path.name}.setup.log"
    log.write_text("")
    pip = [str(env.python), "-m", "pip", "--disable-pip-version-check", "--no-input", "-q"]
    _run([base, "-m", "venv", str(env.path)], "create the virtual environment", progress, log)
    torch_spec = settings.torch_spec()
    torch_cmd = [*pip, "install", torch_spec, "-c", str(lock_path())]
    if index:  # e.g. https://download.pytorch.org/whl/cu126 for CUDA 12.6 wheels
        torch_cmd += ["--index-url", index]
    _run(torch_cmd, f"install {torch_spec}", progress, log)
    _run([*pip, "install", "--no-deps", "-r", str(lock_path())], "install the pinned dependencies", progress, log)
    with tempfile.TemporaryDirectory(prefix="unity-mlops-wheels-") as tmp:
        _run(
            [*pip, "download", "--no-deps", "--python-version", "3.10.12", "--only-binary=:all:", "-d", tmp,
             f"mlagents=={MLAGENTS_VERSION}", f"mlagents-envs=={MLAGENTS_VERSION}"],
            "download the mlagents wheels", progress, log,
        )
        wheels = []
        for name, digest in WHEELS.items():
            wheel = Path(tmp) / name
            if not wheel.exists() or hashlib.sha256(wheel.read_bytes()).hexdigest() != digest:
                raise TrainerEnvError(f"downloaded {name} is missing or does not match its pinned sha256")
            wheels.append(str(wheel))
        _run(
            [*pip, "install", "--no-deps", "--ignore-requires-python", *wheels, *EXTRA_NO_DEPS],
            f"install mlagents {MLAGENTS_VERSION}", progress, log,
        )
    marker = {"lock_digest": lock_digest(), "base_python": base, "created": time.time(), "torch_index_url": index}
    env.marker.write_text(json.dumps(marker, indent=2))
    info = env.check()
    marker[TORCH_CUDA_KEY] = info.get("torch_cuda")  # what `resources.device: auto` reads, without importing torch
    env.marker.write_text(json.dumps(marker, indent=2))
    build = f"CUDA {info['torch_cuda']}" if info.get("torch_cuda") else "CPU build"
    progress(f"trainer environment ready: mlagents {info['mlagents']}, torch {info['torch']} ({build}), "
             f"Python {info['python']}")
    return env


def resolve(path: Path | None = None) -> TrainerEnvironment:
    """The configured environment, checked to be ready (cheap: no subprocess)."""
    env = TrainerEnvironment((path or default_env_path()).expanduser().resolve())
    if not env.is_ready():
        raise TrainerEnvError(
            f"the ML-Agents trainer environment is not set up (looked in {env.path})",
            hint=f"run `unity-mlops trainer setup` (or set {settings.TRAINER_ENV} to an existing one)",
        )
    return env
