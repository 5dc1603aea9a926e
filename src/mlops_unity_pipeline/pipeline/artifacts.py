"""A job's directory mirrored to the shared artifact store, so that the job can continue on another machine.

At the start, a job with no local state (a Ray retry on a node that never ran it) restores its directory from the
store: `state.json`, the trainer's checkpoints, logs. During training, every new checkpoint goes up with what changed
since (TensorBoard events included); at the end, everything (metrics, result, evaluation, report). With no store
configured this is a no-op, and the workspace is the only copy, as before.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ..artifacts import ArtifactError, ArtifactStore
from ..artifacts.sync import Seen, pull_tree, push_tree, stamp
from ..failpoints import failpoint
from ..trainer.base import Callback, Progress

log = logging.getLogger("unity_mlops")


class RunSync(Callback):
    def __init__(self, store: ArtifactStore | None, job_dir: Path) -> None:
        self.store, self.dir = store, job_dir
        self.prefix = f"runs/{job_dir.name}"
        self.seen: Seen = {}
        self._checkpoints: dict[Path, tuple[int, int] | None] = {}

    def restore(self) -> int:
        """Bring the job's stored directory here when this machine has none of it."""
        if self.store is None or (self.dir / "state.json").exists():
            return 0
        got = pull_tree(self.store, self.prefix, self.dir, self.seen)
        if got:
            log.info("job %s: restored %d file(s) from %s (its checkpoint included)", self.dir.name, got,
                     self.store.url(self.prefix))
        return got

    def push(self) -> int:
        """Upload what changed; a store that cannot be reached is logged, never fails the job here."""
        if self.store is None:
            return 0
        try:
            return push_tree(self.store, self.dir, self.prefix, self.seen)
        except ArtifactError as exc:
            log.error("job %s: could not store its files: %s", self.dir.name, exc)
            return 0

    def on_progress(self, progress: Progress) -> bool:
        """After a summary: when the trainer wrote a new checkpoint, store it (and what else changed)."""
        if self.store is not None:
            now = {p: stamp(p) for p in self.dir.glob("training/*/*/checkpoint.pt")}
            if now != self._checkpoints:
                self._checkpoints = now
                if self.push():
                    failpoint("checkpointed")
        return True
