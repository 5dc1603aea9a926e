"""The runs the workspace holds: listed from the runs index (rows the pipeline writes at each transition, in the
workspace's SQLite file or the shared database), a run's page read from the files in its folder. With a shared
artifact store and no shared database, runs that other machines (Ray workers) wrote are mirrored from it first and
indexed, so the dashboard lists every run wherever it ran.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import settings
from ..artifacts import ArtifactError, ArtifactStore
from ..artifacts.sync import mirror_tree
from ..evaluation.tfevents import read_scalars
from ..pipeline.runindex import RunTable
from ..pipeline.summary import RunSummary, _json, _tail, live_progress, summarize  # noqa: F401

log = logging.getLogger("unity_mlops.ui")

CURVE_TAGS = ("Environment/Cumulative Reward", "Policy/Entropy", "Losses/Policy Loss", "Losses/Value Loss")



@dataclass
class RunIndex:
    """The dashboard's runs: pages read the runs index (`pipeline/runindex.py`) in SQL; only the running rows of a
    page look at their trainer log for live progress."""

    workspace: Path
    store: ArtifactStore | None = None  # runs other machines wrote: mirrored into the workspace before listing
    mirror_every_s: float = 5.0
    database: str | None = None  # the shared database (its index holds every worker's runs); else the workspace's
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _mirrored_at: float | None = None
    _table: RunTable | None = None

    @property
    def table(self) -> RunTable:
        if self._table is None:
            self._table = RunTable(self.database or self.workspace / settings.STATE_DIRNAME / "runs.db")
        return self._table

    def mirror(self) -> int:
        """Bring runs from the shared artifact store (at most every `mirror_every_s`) and index what came; a store
        that cannot be reached leaves the local view as it is."""
        now = time.monotonic()
        if self.store is None or (self._mirrored_at is not None and now - self._mirrored_at < self.mirror_every_s):
            return 0
        self._mirrored_at = now
        try:
            count = mirror_tree(self.store, "runs", self.workspace)
        except ArtifactError as exc:
            log.warning("dashboard: cannot mirror runs from %s: %s", self.store.uri, exc)
            return 0
        if count:
            self.table.reindex(self.workspace)
        return count

    def job_dirs(self) -> list[Path]:
        try:
            entries = list(os.scandir(self.workspace))
        except OSError:
            return []
        return [Path(e.path) for e in entries if e.is_dir() and not e.name.startswith(("_", "."))]

    def start(self) -> None:
        """At the dashboard's start: a workspace whose runs were never indexed (an older release's) is indexed
        once; its own folders are added, nothing another machine wrote is dropped."""
        with self._lock:
            if self.table.count() == 0 and self.job_dirs():
                self.table.reindex(self.workspace)

    def all(self) -> list[RunSummary]:
        self.start()
        return self.query(limit=10**9)[0]

    def query(self, *, text: str = "", status: str = "", sort: str = "started_at", descending: bool = True,
              offset: int = 0, limit: int = 50) -> tuple[list[RunSummary], int]:
        with self._lock:
            self.mirror()
        rows, total = self.table.query(text_=text, status=status, sort=sort, descending=descending, offset=offset,
                                       limit=limit)
        for r in rows:
            if r.running:  # live progress from the trainer's log, for the rows on this page only
                live = live_progress(self.workspace / r.job_id)
                if live:
                    r.steps, r.reward = live[0], live[2] if live[2] is not None else r.reward
        return rows, total


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
