"""The fast trainer's own callbacks (Stable-Baselines3 style): summaries and checkpoints, outside the PPO loop.

`Summaries` turns each summary period into TensorBoard scalars under ML-Agents' tag names, the log line
`mlagents-learn` prints (the pipeline and users parse it the same way) and a `Progress` for the job's callbacks.
`Checkpoints` writes `<B>-<step>.pt|.onnx` and `checkpoint.pt` atomically, keeps `keep_checkpoints`, and at the end
the final `<B>.onnx` and `run_logs/training_status.json`, as ML-Agents does.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..durable import replacing
from ..evaluation.tfevents import EventWriter
from ..trainer.base import Progress
from .export import export_onnx
from .rollout import EpisodeLog


def save_atomic(obj: Any, path: Path) -> None:
    with replacing(path) as fh:
        torch.save(obj, fh)


class Summaries:
    def __init__(self, model_dir: Path, behavior: str, episodes: EpisodeLog, every: int, max_steps: int,
                 log: Callable[[str], None], start_step: int = 0) -> None:
        self.writer = EventWriter(model_dir)
        self.behavior, self.episodes, self.every, self.max_steps, self.log = behavior, episodes, every, max_steps, log
        self.stats: dict[str, list[float]] = {}
        self.seen = 0  # episodes already summarised
        self.t0 = time.monotonic()
        self.next = (start_step // every + 1) * every

    def add(self, scalars: dict[str, float]) -> None:
        for k, v in scalars.items():
            self.stats.setdefault(k, []).append(float(v))

    def due(self, step: int) -> bool:
        return step >= self.next or step >= self.max_steps

    def write(self, step: int) -> Progress:
        elapsed = time.monotonic() - self.t0
        recent = self.episodes.returns[self.seen:]
        scalars = {k: float(np.mean(v)) for k, v in self.stats.items()}
        mean_r = float(np.mean(recent)) if recent else None
        if recent:
            scalars["Environment/Cumulative Reward"] = mean_r
            scalars["Policy/Extrinsic Reward"] = mean_r
            scalars["Environment/Episode Length"] = float(np.mean(self.episodes.lengths[-len(recent):]))
        self.writer.add_scalars(step, scalars)
        self.stats, self.seen = {}, len(self.episodes.returns)
        if mean_r is None:
            self.log(f"[INFO] {self.behavior}. Step: {step}. Time Elapsed: {elapsed:.3f} s. No episode was "
                     "completed since last summary. Training.")
        else:
            self.log(f"[INFO] {self.behavior}. Step: {step}. Time Elapsed: {elapsed:.3f} s. Mean Reward: "
                     f"{mean_r:.3f}. Std of Reward: {np.std(recent):.3f}. Training.")
        self.next = (step // self.every + 1) * self.every
        return Progress(step, self.max_steps, elapsed, mean_r)

    def close(self) -> None:
        self.writer.close()


class Checkpoints:
    def __init__(self, run_dir: Path, behavior: str, definition: Any, every: int, keep: int,
                 episodes: EpisodeLog, history: list[dict[str, Any]], start_step: int = 0) -> None:
        self.run_dir, self.behavior, self.definition = run_dir, behavior, definition
        self.model_dir = run_dir / behavior
        self.every, self.keep, self.episodes, self.history = every, keep, episodes, history
        self.next = (start_step // every + 1) * every

    @property
    def state_file(self) -> Path:
        return self.model_dir / "checkpoint.pt"

    def due(self, step: int, max_steps: int) -> bool:
        return self.next <= step < max_steps

    def save(self, step: int, net: Any, opt: Any) -> None:
        base = self.model_dir / f"{self.behavior}-{step}"
        state = {"step": step, "network": net.state_dict(), "optimizer": opt.state_dict(), "checkpoints": self.history}
        save_atomic(state, Path(f"{base}.pt"))
        export_onnx(net, self.definition, Path(f"{base}.onnx.tmp"))
        os.replace(f"{base}.onnx.tmp", f"{base}.onnx")
        mean = float(np.mean(self.episodes.returns[-100:])) if self.episodes.returns else None
        self.history.append({"steps": step, "file_path": f"{base}.onnx", "reward": mean,
                             "creation_time": time.time(), "auxillary_file_paths": [f"{base}.pt"]})
        state["checkpoints"] = self.history
        save_atomic(state, self.state_file)  # a kill -9 mid-save leaves the previous checkpoint intact
        while len(self.history) > self.keep:
            old = self.history.pop(0)
            for f in [old["file_path"], *old["auxillary_file_paths"]]:
                Path(f).unlink(missing_ok=True)
        self.next = (step // self.every + 1) * self.every

    def finish(self, step: int, net: Any, opt: Any) -> Path:
        """The final checkpoint (also on cancel: ML-Agents saves on interruption too), `<B>.onnx` and the status."""
        if not self.history or self.history[-1]["steps"] != step:
            self.save(step, net, opt)
        final = self.run_dir / f"{self.behavior}.onnx"
        shutil.copyfile(self.history[-1]["file_path"], f"{final}.tmp")
        os.replace(f"{final}.tmp", final)
        status = {self.behavior: {"checkpoints": self.history,
                                  "final_checkpoint": {**self.history[-1], "file_path": str(final)}},
                  "metadata": {"stats_format_version": "0.3.0", "mlagents_version": "fast (unity-mlops)",
                               "torch_version": torch.__version__}}
        (self.run_dir / "run_logs").mkdir(parents=True, exist_ok=True)
        status_file = self.run_dir / "run_logs" / "training_status.json"
        Path(f"{status_file}.tmp").write_text(json.dumps(status, indent=4))
        os.replace(f"{status_file}.tmp", status_file)
        return final
