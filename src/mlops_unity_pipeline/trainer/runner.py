"""Run the real ML-Agents trainer as a subprocess and judge the outcome.

Success is judged as Unity's own CI does, and stricter: exit code 0 AND `<results>/<run-id>/<Behavior>.onnx`
exists AND the final checkpoint reached `max_steps` (exit 0 alone does not prove completion: Ctrl-C and a closed
player also exit 0). To stop a run we send SIGINT, on which ML-Agents saves a checkpoint and the ONNX model.
"""

from __future__ import annotations

import contextvars
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

from .. import settings
from .base import Progress, StopCondition, TrainingOutcome
from .environment import TrainerEnvironment, clean_env

PORT_IN_USE = "UnityWorkerInUseException"
PROGRESS_RE = re.compile(
    r"\[INFO\] (?P<behavior>[^.\s]+)\. Step: (?P<step>\d+)\. Time Elapsed: (?P<elapsed>[\d.]+) s\."
    r"(?: Mean Reward: (?P<reward>-?[\d.]+(?:e-?\d+)?)\.)?"
)


def _kill_group(pgid: int) -> None:
    """Kill whatever is left of the trainer's process group (it runs in its own session)."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def stop_orphan_trainer(pid_file: Path, grace_s: float = 120.0) -> bool:
    """A trainer left running by a killed parent (its pid file survives): stop it with SIGINT so it writes a
    checkpoint, and wait, before anyone resumes the run. Returns True if there was one."""
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        pid_file.unlink(missing_ok=True)
        return False
    if b"launcher.py" not in cmdline and b"mlagents" not in cmdline:
        pid_file.unlink(missing_ok=True)  # the pid was reused by something else
        return False
    try:
        os.killpg(pid, signal.SIGINT)
    except (ProcessLookupError, PermissionError):
        return False
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
        try:  # reap it if it happens to be our child; otherwise just poll
            if os.waitpid(pid, os.WNOHANG)[0]:
                break
        except ChildProcessError:
            pass
        time.sleep(0.2)
    _kill_group(pid)
    pid_file.unlink(missing_ok=True)
    return True


def final_step(run_dir: Path, behavior: str) -> int | None:
    """The step of the final checkpoint, from `run_logs/training_status.json` (written at the end)."""
    try:
        data = json.loads((run_dir / "run_logs" / "training_status.json").read_text())
        return int(data[behavior]["final_checkpoint"]["steps"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def has_checkpoint(run_dir: Path, behavior: str) -> bool:
    return (run_dir / behavior / "checkpoint.pt").is_file()


# flags of `mlagents-learn` the product always decides (a command that sets one is refused, naming it), and the ones
# the job fills only where the user's command and config are silent
OWNED_FLAGS = ("--env", "--results-dir", "--base-port", "--initialize-from")
RESTART_FLAGS = ("--force", "--resume")
FILLED_FLAGS = {"--num-envs": ("env_settings", "num_envs"), "--seed": ("env_settings", "seed"),
                "--no-graphics": ("engine_settings", "no_graphics"), "--torch-device": ("torch_settings", "device")}


def _flag_names(args: list[str]) -> set[str]:
    """The options a command line sets (`--seed 3` and `--seed=3` alike), up to `--env-args`."""
    names = set()
    for a in args:
        if a == "--env-args":
            break
        if a.startswith("--"):
            names.add(a.split("=", 1)[0])
    return names


def command_run_id(command: str | None) -> str | None:
    """The `--run-id` a custom command names: kept (the run then lives in the job's own results directory)."""
    if not command:
        return None
    parts = shlex.split(command)
    for i, a in enumerate(parts):
        if a == "--env-args":
            return None
        if a == "--run-id" and i + 1 < len(parts):
            return parts[i + 1]
        if a.startswith("--run-id="):
            return a.split("=", 1)[1]
    return None


def owned_flags_in(command: str | None) -> list[str]:
    """Product-owned options a custom command sets (each refused: the job decides them)."""
    return sorted(_flag_names(shlex.split(command)) & set(OWNED_FLAGS)) if command else []


def build_command(
    trainer: TrainerEnvironment | None,
    config_path: Path,
    env_path: Path,
    run_id: str,
    results_dir: Path,
    *,
    num_envs: int,
    seed: int,
    base_port: int,
    resume: bool,
    env_args: list[str] | None = None,
    custom_command: str | None = None,
    config: dict | None = None,
    no_graphics: bool = True,
    device: str = "cpu",
) -> list[str]:
    """`mlagents-learn` flags for this run. Always the product's: the config (unless a custom command names its
    own: the setup guide's `mlagents-learn training_config.yaml --run-id nightly --force`), `--env`,
    `--results-dir`, `--base-port` and `--force`/`--resume` (a command's own are dropped: restarts are the
    product's); `--run-id` unless the command names one (kept). Filled only where neither the command nor the
    config sets them: `--num-envs`, `--seed`, `--no-graphics`, `--torch-device` (a flag would override the config's
    own value). Everything goes before a command's `--env-args`, which swallows what follows it. A command that is
    `mlagents-learn` runs through the launcher of the environment it belongs to (the legacy ONNX exporter)."""
    base = custom_base(custom_command) if custom_command else [*trainer.launcher_command()]  # type: ignore[union-attr]
    tail: list[str] = []
    if "--env-args" in base:
        cut = base.index("--env-args")
        base, tail = base[:cut], base[cut:]
    own_config = bool(custom_command) and _has_config(base)
    user = _flag_names(base)
    args = [*base, *([] if own_config else [str(config_path)]), "--env", str(env_path),
            *([] if "--run-id" in user else ["--run-id", run_id]), "--results-dir", str(results_dir),
            "--base-port", str(base_port)]
    fills = {"--num-envs": [str(num_envs)], "--seed": [str(seed)], "--no-graphics": [], "--torch-device": [device]}
    for flag, value in fills.items():
        section, key = FILLED_FLAGS[flag]
        in_config = key in ((config or {}).get(section) or {})
        if flag in user or in_config or (flag == "--no-graphics" and not no_graphics):
            continue
        args += [flag, *value]
    args.append("--resume" if resume else "--force")
    if env_args:
        tail = tail or ["--env-args"]
        tail += env_args
    return args + tail


def custom_base(command: str) -> list[str]:
    parts = [a for a in shlex.split(command) if a not in RESTART_FLAGS]
    # the trainer runs in the job's directory: a relative config path means the caller's directory
    parts = [str(Path(a).resolve()) if a.endswith((".yaml", ".yml")) and Path(a).is_file() else a for a in parts]
    if parts and Path(parts[0]).name == "mlagents-learn":
        script = shutil.which(parts[0])
        python = _shebang_python(Path(script)) if script else None
        if python:
            launcher = Path(__file__).resolve().parent.parent / "in_trainer_env" / "launcher.py"
            return [python, "-s", str(launcher), *parts[1:]]
    return parts


def _shebang_python(script: Path) -> str | None:
    """The interpreter of a console script (`#!/path/to/venv/bin/python`), if it is one."""
    try:
        first = script.open("rb").readline(512).decode("utf-8", "replace").strip()
    except OSError:
        return None
    if not first.startswith("#!"):
        return None
    words = shlex.split(first[2:])
    return words[0] if words and "python" in Path(words[0]).name else None


def _has_config(args: list[str]) -> bool:
    """A positional trainer config: a .yaml/.yml argument that is not the value of an option."""
    for prev, arg in zip(["-"] + args, args, strict=False):
        if arg.endswith((".yaml", ".yml")) and not (prev.startswith("-") and "=" not in prev and prev != "-"):
            return True
    return False


def run_trainer(
    command: list[str],
    *,
    run_dir: Path,
    behavior: str,
    max_steps: int,
    log_path: Path,
    cwd: Path,
    on_progress: Callable[[Progress], None] | None = None,
    on_line: Callable[[str], None] | None = None,
    stop: StopCondition | None = None,
    grace_s: float = 120.0,
    pid_file: Path | None = None,
) -> TrainingOutcome:
    """Run the trainer to completion, a timeout or cancellation (SIGINT, then SIGKILL after `grace_s`)."""
    stop = stop or StopCondition()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    progress: list[Progress] = []
    port_in_use = False
    interrupted = timed_out = False
    env = clean_env({"OMP_NUM_THREADS": settings.omp_threads()})
    with log_path.open("a", encoding="utf-8") as log:
        log.write(f"$ {shlex.join(command)}\n")
        log.flush()
        proc = subprocess.Popen(
            command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1, env=env,
            start_new_session=True,
        )
        if pid_file is not None:  # lets operators (and the scheduler) find the trainer of a job
            pid_file.write_text(f"{proc.pid}\n")

        def pump() -> None:
            nonlocal port_in_use
            assert proc.stdout is not None
            for line in proc.stdout:
                log.write(line)
                port_in_use = port_in_use or PORT_IN_USE in line
                if on_line:
                    on_line(line.rstrip("\n"))
                m = PROGRESS_RE.search(line)
                if m and m.group("behavior") == behavior:
                    p = Progress(
                        int(m.group("step")), max_steps, float(m.group("elapsed")),
                        float(m.group("reward")) if m.group("reward") else None,
                    )
                    progress.append(p)
                    log.flush()
                    if on_progress:
                        on_progress(p)

        context = contextvars.copy_context()  # the job's log context follows its progress lines
        reader = threading.Thread(target=context.run, args=(pump,), daemon=True)
        reader.start()
        stop_sent: float | None = None
        while proc.poll() is None:
            now = time.monotonic()
            if stop_sent is None:
                if stop.cancelled:
                    interrupted = True
                elif stop.timed_out:
                    timed_out = True
                if interrupted or timed_out:
                    stop_sent = now
                    proc.send_signal(signal.SIGINT)  # ML-Agents saves a checkpoint and the ONNX on SIGINT
            elif now - stop_sent > grace_s:
                proc.kill()
            time.sleep(0.2)
        returncode = proc.returncode
        # ML-Agents' env workers inherit our stdout; if the trainer died hard they outlive it and hold the pipe.
        reader.join(timeout=10)
        _kill_group(proc.pid)
        reader.join(timeout=10)
        if pid_file is not None:
            pid_file.unlink(missing_ok=True)
        log.write(f"[unity-mlops] trainer exited with code {returncode}\n")
    return TrainingOutcome(
        returncode=returncode,
        run_dir=run_dir,
        onnx_path=run_dir / f"{behavior}.onnx",
        final_step=final_step(run_dir, behavior),
        max_steps=max_steps,
        interrupted=interrupted,
        timed_out=timed_out,
        log_path=log_path,
        progress=progress,
        port_in_use=port_in_use,
    )
