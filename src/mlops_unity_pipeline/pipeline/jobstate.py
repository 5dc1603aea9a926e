"""A job's persisted state machine: where a restarted job continues from.

    pending -> running -> trained -> registered -> completed
                  \\-> failed | cancelled   (the same attempt continues on the next run)

Each transition is written to `<job>/state.json` (fsynced, replaced atomically) before the work that depends on
it. A run is identified by its *run key*: the scheduler's (schedule, slot, asset) key, or `<job_id>#<attempt>` for
one-off jobs. The registry records the run key with the version in the same transaction, so a run registers at
most once however often it is killed and restarted:

* killed after registration: the restart finds the version by run key and only finishes the bookkeeping;
* killed during training: the restart resumes from the attempt's last complete checkpoint;
* re-running a completed one-off job starts a new attempt, in its own run directory (nothing is deleted).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..trainer.base import TrainingOutcome
from .workspace import atomic_write_json

PHASES = ("pending", "running", "trained", "registered", "completed", "failed", "cancelled")
DONE = "completed"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


@dataclass
class JobState:
    job_id: str
    run_key: str
    attempt: int = 1
    phase: str = "pending"
    model_version: str | None = None
    training: dict[str, Any] | None = None  # what the train stage produced (for a restart after it)
    started_at: str = field(default_factory=_now)
    updated_at: str = field(default_factory=_now)
    transitions: list[list[str]] = field(default_factory=list)  # [phase, at] of this attempt
    file: Path | None = field(default=None, repr=False)
    # told after each save (the runs index writes its row); never persisted
    on_save: Callable[[JobState], None] | None = field(default=None, repr=False, compare=False)

    @classmethod
    def load(cls, job_dir: Path) -> JobState | None:
        path = job_dir / "state.json"
        try:
            data = json.loads(path.read_text())
            return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data and k != "file"}, file=path)
        except (OSError, ValueError, TypeError, KeyError):
            return None

    @classmethod
    def begin(cls, job_dir: Path, job_id: str, run_key: str | None) -> JobState:
        """The state this run continues from: the same run (resume or finish), or a new attempt."""
        prev = cls.load(job_dir)
        file = job_dir / "state.json"
        if prev is None:
            state = cls(job_id, run_key or f"{job_id}#1", file=file)
        elif run_key is not None and run_key != prev.run_key:  # another run that reuses the job id
            state = cls(job_id, run_key, attempt=prev.attempt + 1, file=file)
        elif run_key is None and prev.phase == DONE:  # re-running a completed one-off job: train anew
            state = cls(job_id, f"{job_id}#{prev.attempt + 1}", attempt=prev.attempt + 1, file=file)
        else:
            return prev
        state.save()
        return state

    def save(self) -> None:
        assert self.file is not None
        self.updated_at = _now()
        atomic_write_json(self.file, {f.name: getattr(self, f.name) for f in fields(self)
                                      if f.name not in ("file", "on_save")})
        if self.on_save is not None:
            self.on_save(self)

    def move(self, phase: str, **fields: Any) -> None:
        assert phase in PHASES, phase
        for k, v in fields.items():
            setattr(self, k, v)
        self.phase = phase
        self.transitions.append([phase, _now()])
        self.save()

    @property
    def run_id(self) -> str:
        """The trainer's run id (its results directory): one per attempt, so attempts never overwrite each other."""
        return self.job_id if self.attempt == 1 else f"{self.job_id}-attempt{self.attempt}"

    def record_training(self, t: TrainingOutcome) -> None:
        """Training completed: a later failure (evaluate, register, a kill) keeps this model."""
        self.move("trained", training={"run_dir": str(t.run_dir), "onnx_path": str(t.onnx_path),
                                       "final_step": t.final_step, "max_steps": t.max_steps,
                                       "log_path": str(t.log_path), "device": t.device,
                                       "others": {b: [str(m), f, top] for b, (m, f, top) in t.others.items()}})

    def completed_training(self) -> TrainingOutcome | None:
        """This attempt's complete training output, when a restart comes after training."""
        t = self.training
        if not t:
            return None
        outcome = TrainingOutcome(returncode=0, run_dir=Path(t["run_dir"]), onnx_path=Path(t["onnx_path"]),
                                  final_step=t["final_step"], max_steps=t["max_steps"], interrupted=False,
                                  timed_out=False, log_path=Path(t["log_path"]),
                                  others={b: (Path(m), f, top) for b, (m, f, top) in (t.get("others") or {}).items()},
                                  device=t.get("device"))
        return outcome if outcome.completed else None
