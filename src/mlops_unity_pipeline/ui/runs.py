"""The runs the workspace holds, read from the files the pipeline writes (no second source of truth).

A run's summary is cached by the modification times of the files it comes from, so a page over thousands of runs
stats them and reads only what changed. With a shared artifact store, runs that other machines (Ray workers) wrote
are mirrored from it first, so the dashboard lists every run wherever it ran.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from ..artifacts import ArtifactError, ArtifactStore
from ..artifacts.sync import mirror_tree
from ..evaluation.tfevents import read_scalars

log = logging.getLogger("unity_mlops.ui")

PROGRESS = re.compile(rb"Step: (\d+)\. Time Elapsed: ([\d.]+) s\.(?: Mean Reward: (-?[\d.]+(?:e-?\d+)?)\.)?")
CURVE_TAGS = ("Environment/Cumulative Reward", "Policy/Entropy", "Losses/Policy Loss", "Losses/Value Loss")
SORTABLE = ("job_id", "status", "trainer", "steps", "success", "reward", "duration_s", "started_at")


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


@dataclass
class RunIndex:
    workspace: Path
    store: ArtifactStore | None = None  # runs other machines wrote: mirrored into the workspace before listing
    mirror_every_s: float = 5.0
    _cache: dict[str, tuple[tuple[int, ...], RunSummary]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _mirrored_at: float | None = None

    def mirror(self) -> int:
        """Bring runs from the shared artifact store (at most every `mirror_every_s`); a store that cannot be
        reached leaves the local view as it is."""
        now = time.monotonic()
        if self.store is None or (self._mirrored_at is not None and now - self._mirrored_at < self.mirror_every_s):
            return 0
        self._mirrored_at = now
        try:
            return mirror_tree(self.store, "runs", self.workspace)
        except ArtifactError as exc:
            log.warning("dashboard: cannot mirror runs from %s: %s", self.store.uri, exc)
            return 0

    def job_dirs(self) -> list[Path]:
        try:
            entries = list(os.scandir(self.workspace))
        except OSError:
            return []
        return [Path(e.path) for e in entries if e.is_dir() and not e.name.startswith(("_", "."))]

    @staticmethod
    def _signature(job_dir: Path) -> tuple[int, ...]:
        sig = []
        for name in ("state.json", "result.json", "metrics.json", "logs/trainer.log"):
            try:
                st = os.stat(job_dir / name)
                sig += [st.st_mtime_ns, st.st_size]
            except OSError:
                sig += [0, 0]
        return tuple(sig)

    def all(self) -> list[RunSummary]:
        out = []
        with self._lock:
            self.mirror()
            seen = set()
            for d in self.job_dirs():
                sig = self._signature(d)
                hit = self._cache.get(d.name)
                if hit is None or hit[0] != sig:
                    hit = (sig, summarize(d))
                    self._cache[d.name] = hit
                seen.add(d.name)
                out.append(hit[1])
            for gone in set(self._cache) - seen:
                del self._cache[gone]
        return out

    def query(self, *, text: str = "", status: str = "", sort: str = "started_at", descending: bool = True,
              offset: int = 0, limit: int = 50) -> tuple[list[RunSummary], int]:
        rows = self.all()
        if text:
            t = text.lower()
            rows = [r for r in rows if t in r.job_id.lower() or t in r.asset.lower()]
        if status:
            rows = [r for r in rows if r.status == status]
        key = sort if sort in SORTABLE else "started_at"
        present = [r for r in rows if getattr(r, key) is not None]
        missing = [r for r in rows if getattr(r, key) is None]  # always last, whichever the direction
        present.sort(key=lambda r: getattr(r, key), reverse=descending)
        rows = present + missing
        return rows[offset:offset + limit], len(rows)


def curves(job_dir: Path) -> dict[str, list[tuple[float, float | None]]]:
    """The run's TensorBoard scalars (the latest attempt's), by tag."""
    files = sorted(job_dir.glob("training/*/*/events.out.tfevents.*"), key=lambda p: p.stat().st_mtime)
    if not files:
        return {}
    out: dict[str, list[tuple[float, float | None]]] = {}
    for path in sorted(files[-1].parent.glob("events.out.tfevents.*")):  # the latest attempt's files, merged
        try:
            scalars = read_scalars(path)
        except (OSError, ValueError):
            continue
        for tag, points in scalars.items():
            out.setdefault(tag, []).extend((float(s), v) for s, v in points)
    return out


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted keys to leaf values, for a config diff."""
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for k, v in data.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: data}


def detail(job_dir: Path) -> dict[str, Any]:
    metrics = _json(job_dir / "metrics.json")
    log = _tail(job_dir / "logs" / "pipeline.log", 6000).decode("utf-8", "replace").splitlines()[-60:]
    return {"summary": summarize(job_dir), "metrics": metrics, "result": _json(job_dir / "result.json"),
            "job": _json(job_dir / "job.json"), "state": _json(job_dir / "state.json"), "log_tail": log,
            "curves": curves(job_dir)}
