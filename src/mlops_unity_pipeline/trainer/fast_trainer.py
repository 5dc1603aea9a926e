"""Trainer 'fast': PPO in-process on the vectorized behaviour simulator (no player process, no ML-Agents)."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from ..errors import StageError
from .base import Callback, CallbackList, RecordProgress, TrainingOutcome, TrainRequest
from .config import agents_per_env
from .environment import TrainerEnvironment, default_env_path


class FastTrainer:
    name = "fast"
    needs_player = False

    def __init__(self, trainer_env_path: Path | None = None) -> None:
        self.trainer_env_path = trainer_env_path

    def checker_python(self) -> Path | None:
        """ML-Agents' own parser checks the YAML when its environment exists (it is optional for 'fast')."""
        env = TrainerEnvironment(self.trainer_env_path or default_env_path())
        return env.python if env.is_ready() else None

    def train(self, request: TrainRequest, callback: Callback) -> TrainingOutcome:
        if not request.build.has_simulator:
            raise StageError("train", "trainer 'fast' trains on the built-in simulator; a Unity build needs "
                                      "trainer 'mlagents'")
        try:
            from ..fast.ppo import FastPPOTrainer, UnsupportedOption
        except ImportError:
            raise StageError("train", "trainer 'fast' needs torch: pip install 'unity-mlops[fast]'") from None
        cfg = request.config
        resume = request.resume
        log_path = request.logs / "trainer.log"
        with log_path.open("a", encoding="utf-8") as fh:
            fh.write(f"[unity-mlops] {datetime.now(timezone.utc).isoformat(timespec='seconds')} trainer fast, run "
                     f"{request.run_dir.name}: {'resuming' if resume else 'starting'} (max_steps "
                     f"{request.settings.max_steps})\n")  # runs appended to one log stay apart

            def log_line(line: str) -> None:
                fh.write(line + "\n")
                fh.flush()

            try:
                trainer = FastPPOTrainer(request.definition, request.settings, request.run_dir,
                                         num_agents=cfg.num_envs * agents_per_env(cfg), seed=cfg.seed, log=log_line)
            except UnsupportedOption as exc:
                raise StageError("train", str(exc)) from None
            recorded = RecordProgress()
            callback = CallbackList([recorded, callback])
            callback.on_training_start(request)
            out = trainer.train(resume=resume, stop=request.stop, callback=callback)
        stopped = out["interrupted"]
        outcome = TrainingOutcome(returncode=0, run_dir=request.run_dir, onnx_path=Path(out["onnx"]),
                                  final_step=out["final_step"], max_steps=request.settings.max_steps,
                                  interrupted=stopped and request.stop.cancelled,
                                  timed_out=stopped and not request.stop.cancelled, log_path=log_path,
                                  progress=recorded.history, resumed_from_step=out["resumed_from_step"],
                                  device=request.device)
        callback.on_training_end(outcome)
        return outcome
