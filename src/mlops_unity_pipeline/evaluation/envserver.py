"""One `env_server` process of the trainer environment (and the executable it launched), seen from the product:
frames in and out, a deadline on every answer, the log tail in every error, and a stop that leaves nothing running
(the server, then the player it started in a session of its own)."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import threading
import time
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..in_trainer_env.frames import FrameError, read_frame, write_frame
from .onnx_policy import PolicySpec

SERVER = Path(__file__).resolve().parent.parent / "in_trainer_env" / "env_server.py"
PORT_ATTEMPTS = 3


class EvaluationError(UserError):
    """The environment could not be played: it did not start, answered with an error, or went silent."""

    exit_code = 1


class EnvServer:
    """One `env_server` process and the executable it launched."""

    def __init__(self, python: Path, executable: Path, seed: int, *, time_scale: float, graphics: bool,
                 timeout_s: float, log_dir: Path, env_args: list[str]) -> None:
        from ..trainer.environment import clean_env
        from ..trainer.ports import reserve_ports

        self.timeout_s = timeout_s
        self.log_path = log_dir / f"env_server-{seed}.log"
        log_dir.mkdir(parents=True, exist_ok=True)
        avoid: set[int] = set()
        for _ in range(PORT_ATTEMPTS):
            self.ports = reserve_ports(1, avoid=frozenset(avoid))
            command = [str(python), "-s", str(SERVER), "--exe", str(executable), "--base-port", str(self.ports.base),
                       "--seed", str(seed), "--time-scale", str(time_scale), "--timeout-wait", str(int(timeout_s)),
                       "--log-folder", str(log_dir), *(["--graphics"] if graphics else []),
                       *(["--env-args", *env_args] if env_args else [])]
            with self.log_path.open("ab") as log:
                self.proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                                             start_new_session=True, env=clean_env())
            self.frames: queue.Queue = queue.Queue()
            threading.Thread(target=self._pump, daemon=True).start()
            self.player_pid: int | None = None
            try:
                ready, _ = self.receive(startup=True)
                break
            except EvaluationError as exc:
                self.close()
                if "UnityWorkerInUse" not in str(exc):
                    raise
                avoid.add(self.ports.base)  # another process took the port between our check and the bind
        else:
            raise EvaluationError(f"no free port for {executable} after {PORT_ATTEMPTS} tries")
        self.names: list[str] = ready["names"]
        self.specs = {n: PolicySpec.from_dict(d) for n, d in ready["behaviors"].items()}
        self.player_pid = ready.get("player_pid")

    def _pump(self) -> None:
        stream = self.proc.stdout
        try:
            while True:
                self.frames.put(read_frame(stream))
        except (FrameError, OSError, ValueError):
            self.frames.put(None)

    def send(self, header: dict, arrays: dict[str, np.ndarray] | None = None) -> None:
        try:
            write_frame(self.proc.stdin, header, arrays)
        except (BrokenPipeError, OSError):
            raise EvaluationError(f"the environment process stopped: {self._tail()}") from None

    def receive(self, startup: bool = False) -> tuple[dict, dict[str, np.ndarray]]:
        wait = self.timeout_s * (3 if startup else 1) + 30
        try:
            frame = self.frames.get(timeout=wait)
        except queue.Empty:
            raise EvaluationError(f"the environment did not answer within {wait:.0f} s: {self._tail()}") from None
        if frame is None:
            raise EvaluationError(f"the environment process stopped: {self._tail()}")
        header, arrays = frame
        if header.get("type") == "error":
            raise EvaluationError(f"the environment failed: {header.get('message')} ({self._tail()})")
        return header, arrays

    def _tail(self) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            lines = []
        return " | ".join(lines[-6:]) or f"see {self.log_path}"

    def close(self) -> None:
        try:
            if self.proc.poll() is None:
                try:
                    write_frame(self.proc.stdin, {"cmd": "close"})
                except OSError:
                    pass
                try:
                    self.proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    os.killpg(self.proc.pid, signal.SIGTERM)
                    try:
                        self.proc.wait(timeout=10)
                    except subprocess.TimeoutExpired:
                        os.killpg(self.proc.pid, signal.SIGKILL)
                        self.proc.wait()
        except ProcessLookupError:
            pass
        finally:
            if self.player_pid:  # a player the server could not stop (it runs in its own session)
                for sig in (signal.SIGTERM, signal.SIGKILL):
                    try:
                        os.killpg(self.player_pid, sig)
                        time.sleep(0.2)
                    except (ProcessLookupError, PermissionError):
                        break
            self.ports.release()
