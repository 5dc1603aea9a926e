"""A run's summary, read from the files the pipeline writes in its folder: what the runs index stores and the
dashboard shows."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

PROGRESS = re.compile(rb"Step: (\d+)\. Time Elapsed: ([\d.]+) s\.(?: Mean Reward: (-?[\d.]+(?:e-?\d+)?)\.)?")


def _json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _tail(path: Path, size: int = 8192) -> bytes:
    try:
        with path.open("rb") as fh:
            fh.seek(max(0, fh.seek(0, os.SEEK_END) - size))
            return fh.read()
    except OSError:
        return b""


@dataclass
class RunSummary:
    job_id: str
    status: str
    stage: str | None = None
    trainer: str = "mlagents"
    steps: int | None = None
    max_steps: int | None = None
    success: float | None = None
    reward: float | None = None
    duration_s: float | None = None
    started_at: str = ""
    asset: str = ""
    model_version: str | None = None
    error: str | None = None
    evaluated_on: str | None = None  # "simulator" | "headless-player" | "unity"

    @property
    def running(self) -> bool:
        return self.status in ("pending", "running", "trained", "registered")

    @property
    def fraction(self) -> float:
        """Progress in [0, 1]: never beyond the end, never negative (the fast trainer's last batch overshoots)."""
        if not self.steps or not self.max_steps:
            return 0.0
        return max(0.0, min(1.0, self.steps / self.max_steps))


def _duration(result: dict[str, Any]) -> float | None:
    try:
        return (datetime.fromisoformat(result["finished_at"]) - datetime.fromisoformat(result["started_at"])) \
            .total_seconds()
    except (KeyError, TypeError, ValueError):
        return None


def live_progress(job_dir: Path) -> tuple[int, float, float | None] | None:
    """(step, elapsed, mean reward) from the last progress line of the trainer's log."""
    found = PROGRESS.findall(_tail(job_dir / "logs" / "trainer.log"))
    if not found:
        return None
    step, elapsed, reward = found[-1]
    return int(step), float(elapsed), float(reward) if reward else None


def summarize(job_dir: Path) -> RunSummary:
    state, result, metrics, job = (_json(job_dir / n) for n in ("state.json", "result.json", "metrics.json",
                                                                "job.json"))
    cfg = job.get("rl_config") or {}
    training = metrics.get("training") or {}
    model = (metrics.get("evaluation") or {}).get("model") or {}
    where = ((metrics.get("evaluation") or {}).get("environment") or {}).get("kind")
    status = state.get("phase") or result.get("status") or "unknown"
    s = RunSummary(
        job_id=job_dir.name, status=status, stage=result.get("failed_stage") if status != "completed" else None,
        trainer=cfg.get("trainer", "mlagents"), steps=training.get("final_step"),
        max_steps=training.get("max_steps") or cfg.get("max_steps"), success=model.get("success_rate"),
        reward=model.get("mean_reward", training.get("last_mean_reward")), duration_s=_duration(result),
        started_at=result.get("started_at") or state.get("started_at") or "",
        asset=(job.get("asset_spec") or {}).get("name", ""), model_version=result.get("model_version"),
        error=result.get("error") if status != "completed" else None,
        evaluated_on=where or ("simulator" if model else None))
    if s.running:
        live = live_progress(job_dir)
        if live:
            s.steps, s.reward = live[0], live[2] if live[2] is not None else s.reward
    return s
