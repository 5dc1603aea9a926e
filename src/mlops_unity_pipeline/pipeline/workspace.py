"""Per-job directories under the workspace root; nothing is written outside it.

    <root>/<job_id>/job.json          the job as run
                    generated/        trainer_config.yaml, <Behavior>Agent.cs, behavior.json
                    build/            the headless player (or the Unity build)
                    training/         ML-Agents results, a run per attempt: <job_id>[-attemptN]/<Behavior>.onnx,
                                      checkpoints, TensorBoard events
                    logs/             pipeline.log, build.log, trainer.log
                    evaluation.json   held-out evaluation (and the random baseline)
                    metrics.json      the job's metrics, written for success and failure
                    result.json       the TrainingResult
                    state.json        where a restart continues from (`jobstate.JobState`)

`tensorboard --logdir <root>` finds every job's events.
"""

from __future__ import annotations

import fcntl
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..durable import replacing
from ..errors import UserError


def atomic_write_json(path: Path, data: Any) -> None:
    """Replace `path` whole, durably: a reader (or a restart after kill -9) sees the old or the new content."""
    with replacing(path) as fh:
        fh.write(json.dumps(data, indent=2, sort_keys=True, default=str).encode())


@dataclass
class JobWorkspace:
    root: Path
    job_id: str
    run_id: str | None = None  # the trainer's run id: one per attempt (the job id for the first)
    _lock_fd: int | None = field(default=None, repr=False)

    @property
    def dir(self) -> Path:
        return self.root / self.job_id

    @property
    def generated(self) -> Path:
        return self.dir / "generated"

    @property
    def build(self) -> Path:
        return self.dir / "build"

    @property
    def training(self) -> Path:
        return self.dir / "training"

    @property
    def run_dir(self) -> Path:
        return self.training / (self.run_id or self.job_id)

    @property
    def logs(self) -> Path:
        return self.dir / "logs"

    @property
    def metrics_path(self) -> Path:
        return self.dir / "metrics.json"

    @property
    def result_path(self) -> Path:
        return self.dir / "result.json"

    @property
    def trainer_pid_path(self) -> Path:
        return self.training / "trainer.pid"

    def acquire(self) -> JobWorkspace:
        """Create the directories and take the job's lock (one run of a job_id at a time)."""
        for d in (self.dir, self.generated, self.build, self.training, self.logs):
            d.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.dir / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise UserError(
                f"job {self.job_id!r} is already running in {self.dir}",
                hint="wait for it to finish, or use another job_id",
            ) from None
        self._lock_fd = fd
        return self

    def release(self) -> None:
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    def previous_result(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.result_path.read_text())
        except (OSError, ValueError):
            return None
