"""What every trainer is: the `Trainer` protocol, its one progress type, its outcome, and callbacks.

As in Stable-Baselines3, the trainer owns its loop and calls back: `on_progress` after each summary (a progress bar,
a log line, a metrics exporter) may return False to stop it, and `should_stop` carries cancellation and the job's
deadline. A trainer is chosen once per job by `select.select_trainer`; the orchestrator knows only this module.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ..behavior.definition import BehaviorDefinition
    from ..build.builders import BuildArtifact
    from ..specs import RLTrainingConfig
    from .settings import TrainerSettings


@dataclass
class Progress:
    step: int
    max_steps: int
    elapsed_s: float
    mean_reward: float | None

    @property
    def eta_s(self) -> float | None:
        """Never negative: a trainer's last batch may end past `max_steps` (the fast trainer's whole rollouts)."""
        if self.step <= 0:
            return None
        return self.elapsed_s * max(0, self.max_steps - self.step) / self.step

    @property
    def fraction(self) -> float:
        """Progress in [0, 1]."""
        return max(0.0, min(1.0, self.step / self.max_steps)) if self.max_steps else 0.0


@dataclass
class TrainingOutcome:
    returncode: int
    run_dir: Path
    onnx_path: Path
    final_step: int | None
    max_steps: int
    interrupted: bool
    timed_out: bool
    log_path: Path
    progress: list[Progress] = field(default_factory=list)
    port_in_use: bool = False  # the trainer could not listen on its base port (another process took it)
    resumed_from_step: int | None = None
    pretrain: dict[str, Any] | None = None  # the offline behaviour-cloning step, when there was one
    # the run's other behaviours (a build with several): name -> (model, final step, max steps)
    others: dict[str, tuple[Path, int | None, int]] = field(default_factory=dict)
    device: str | None = None  # the torch device it trained on (the job's resources, decided on its machine)

    @property
    def onnx_exists(self) -> bool:
        return self.onnx_path.is_file()

    @property
    def models(self) -> dict[str, Path]:
        """Every behaviour's model, the job's own first."""
        return {self.onnx_path.stem: self.onnx_path, **{b: m for b, (m, _, _) in self.others.items()}}

    @property
    def completed(self) -> bool:
        return (
            self.returncode == 0
            and self.onnx_exists
            and self.final_step is not None
            and self.final_step >= self.max_steps
            and all(m.is_file() and f is not None and f >= top for m, f, top in self.others.values())
        )

    def failure_reason(self) -> str | None:
        if self.completed:
            return None
        if self.timed_out:
            return f"training stopped after the time limit at step {self.final_step} of {self.max_steps}"
        if self.interrupted:
            return f"training was cancelled at step {self.final_step} of {self.max_steps}"
        if self.returncode != 0:
            return f"the trainer exited with code {self.returncode}"
        short = [f"{b} at step {f} of {top}" for b, (m, f, top) in self.others.items()
                 if not (m.is_file() and f is not None and f >= top)]
        if short:
            return "another behaviour of the run did not finish: " + ", ".join(short)
        if not self.onnx_exists:
            return f"the trainer exited 0 but did not write {self.onnx_path}"
        return f"the trainer stopped at step {self.final_step}, before max_steps={self.max_steps}"


class Callback:
    """Stable-Baselines3's `BaseCallback`, reduced to what both trainers can honour."""

    def on_training_start(self, request: TrainRequest) -> None:
        """Before the first step."""

    def on_progress(self, progress: Progress) -> bool:
        """After each summary; False stops training (it then saves a checkpoint, as on cancel)."""
        return True

    def on_training_end(self, outcome: TrainingOutcome) -> None:
        """After the trainer stopped, for whatever reason."""


class CallbackList(Callback):
    def __init__(self, callbacks: Iterable[Callback]) -> None:
        self.callbacks = list(callbacks)

    def on_training_start(self, request: TrainRequest) -> None:
        for cb in self.callbacks:
            cb.on_training_start(request)

    def on_progress(self, progress: Progress) -> bool:
        return all([cb.on_progress(progress) for cb in self.callbacks])  # every callback sees every summary

    def on_training_end(self, outcome: TrainingOutcome) -> None:
        for cb in self.callbacks:
            cb.on_training_end(outcome)


class ProgressCallback(Callback):
    """Calls `fn` with each progress summary (a console bar, a log line)."""

    def __init__(self, fn: Callable[[Progress], None]) -> None:
        self.fn = fn

    def on_progress(self, progress: Progress) -> bool:
        self.fn(progress)
        return True


class RecordProgress(Callback):
    """Keeps every summary (the reward curve that goes into the registered metrics)."""

    def __init__(self) -> None:
        self.history: list[Progress] = []

    def on_progress(self, progress: Progress) -> bool:
        self.history.append(progress)
        return True


@dataclass
class StopCondition:
    """Cancellation (the job's cancel event) and the job's deadline, checked by the trainer's loop."""

    cancel: threading.Event = field(default_factory=threading.Event)
    deadline: float | None = None  # time.monotonic()
    stopped_by_callback: bool = False

    @classmethod
    def for_job(cls, cancel: threading.Event, timeout_s: float | None) -> StopCondition:
        return cls(cancel, time.monotonic() + timeout_s if timeout_s else None)

    @property
    def cancelled(self) -> bool:
        return self.cancel.is_set() or self.stopped_by_callback

    @property
    def timed_out(self) -> bool:
        return self.deadline is not None and time.monotonic() > self.deadline

    def should_stop(self) -> bool:
        return self.cancelled or self.timed_out


@dataclass
class TrainRequest:
    """One training run: what to train, where its files go, how to stop it."""

    definition: BehaviorDefinition
    config: RLTrainingConfig
    settings: TrainerSettings  # parsed once from the config: the one source of max_steps and hyperparameters
    trainer_config: Path  # the generated ML-Agents YAML
    build: BuildArtifact
    run_dir: Path  # <results>/<run id>: one per attempt
    logs: Path
    cwd: Path
    stop: StopCondition
    pid_file: Path | None = None
    device: str = "cpu"  # torch device of the update (the job's resources)

    @property
    def behavior(self) -> str:
        return self.definition.behavior_name

    @property
    def results_dir(self) -> Path:
        return self.run_dir.parent

    @property
    def resume(self) -> bool:
        """This attempt's own checkpoint exists: continue it, never restart from zero."""
        return (self.run_dir / self.behavior / "checkpoint.pt").is_file()

    def checkpoint_step(self) -> int | None:
        """The step of the last complete checkpoint: `<B>-<step>.pt` is written before `<B>-<step>.onnx`, so a
        step whose ONNX exists is fully saved."""
        b = self.behavior
        steps = [int(p.stem.rsplit("-", 1)[1]) for p in (self.run_dir / b).glob(f"{b}-*.onnx")
                 if p.stem.rsplit("-", 1)[1].isdigit() and p.with_suffix(".pt").is_file()]
        return max(steps) if steps else None


class Trainer(Protocol):
    """A way to turn a behaviour and a config into an ONNX policy."""

    name: str
    needs_player: bool  # False: it steps the behaviour simulator in-process, no player process

    def checker_python(self) -> Path | None:
        """The interpreter whose ML-Agents validates the generated YAML (None: skip that check)."""

    def train(self, request: TrainRequest, callback: Callback) -> TrainingOutcome:
        """Train to `settings.max_steps`, a stop or a failure; the outcome says which."""
