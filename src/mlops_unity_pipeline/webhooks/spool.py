"""Where an event waits while the outbox's database cannot be written (the shared PostgreSQL restarting).

One file per message, `<time in ns>.<message id>.json` (the name orders them), written whole (tmp file, fsync,
rename, directory fsync) with mode 0600; it holds the rows the outbox would have inserted, redacted as they would be
there. `drain` hands each to the outbox to record (an insert that adds nothing when the message is already there) and
removes it only once recorded, so a crash at any point loses nothing and duplicates nothing, and several processes
may drain one spool at once.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..durable import replacing

log = logging.getLogger("unity_mlops.webhooks")


class Spool:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def __str__(self) -> str:
        return str(self.path)

    def write(self, msg_id: str, rows: list[dict[str, Any]]) -> None:
        self.path.mkdir(mode=0o700, exist_ok=True)
        with replacing(self.path / f"{time.time_ns():020d}.{msg_id}.json", mode=0o600) as fh:
            fh.write(json.dumps(rows).encode())

    @staticmethod
    def message_id(path: Path) -> str:
        return path.name.split(".")[1]

    def files(self) -> list[Path]:
        """The events waiting, oldest first."""
        try:
            found = [p for p in self.path.iterdir() if p.suffix == ".json" and not p.name.startswith(".")]
        except FileNotFoundError:
            return []
        return sorted(found, key=lambda p: p.name)

    def drain(self, record: Callable[[list[dict[str, Any]]], None], unavailable: tuple[type[BaseException], ...]
              ) -> int:
        """Record each waiting event with `record`; stops at the first that meets `unavailable`, to retry later."""
        recorded = 0
        for path in self.files():
            try:
                rows = json.loads(path.read_bytes())
            except FileNotFoundError:  # another process recorded it
                continue
            except ValueError:  # written whole by us, so never partial: someone else's file; set aside, not lost
                log.error("webhook spool file %s is not an outbox event; moved to %s.bad", path, path.name)
                os.replace(path, path.with_name(path.name + ".bad"))
                continue
            try:
                record(rows)
            except unavailable:
                return recorded
            path.unlink(missing_ok=True)
            recorded += 1
        if recorded:
            log.info("%d spooled webhook event(s) recorded in the outbox", recorded)
        return recorded
