"""Append-only, hash-chained JSONL event log, safe across processes.

Each line is one event: ``{"seq", "ts", "type", "payload", "idempotency_key", "bundle_digest", "prev_hash",
"hash"}`` where ``hash = sha256(prev_hash || canonical JSON of the event without its hash)``. An append takes an
exclusive lock (a `.lock` file beside the log), catches up with what other processes appended since (only the new
bytes are read), checks the optional expected `seq` (optimistic concurrency) and the idempotency key (a repeated
append returns the original event), writes the line with one `write` on an O_APPEND descriptor and fsyncs it (and
the directory when the file is created). An fsync error is fatal: nothing is acknowledged.

A torn last line (a crash mid-write) is detected when the log is opened for appending: the tail is truncated to the
last complete record and a `log.recovered_tail` event records how many bytes were dropped and their sha256, so a
recovery is never silent — unless a signed checkpoint proves that more events existed: then the "torn tail" is a
truncation of the history, an `IntegrityError`. Any other inconsistency (an edited, reformatted or missing line, a
duplicate key) is an `IntegrityError`: the log is not trusted, and `verify` names the first bad line.

A hash chain alone cannot show that someone rewrote a line and recomputed every later hash, or deleted the last
lines. That needs a reference kept elsewhere: `Checkpoints` are (seq, head, size) statements signed with the
operator's Ed25519 key, which lives outside the log's directory; `verify` checks the log against every checkpoint and
against an optional head the operator kept (`--expect-head SEQ:HASH`).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..durable import fsync_dir
from .chain import (  # noqa: F401  (the chain's names, where callers have always found them)
    GENESIS,
    ChainedLog,
    ConcurrencyError,
    IntegrityError,
    Position,
    _no_duplicates,
    canonical,
    check_against,
    parse_line,
    record_hash,
)


class EventLog(ChainedLog):
    unit = "line"

    def __init__(self, path: str | Path, checkpoints: Checkpoints | None = None) -> None:
        self.path = Path(path)
        self.checkpoints = checkpoints
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        # cache of what we have read (valid across processes because we always catch up under the lock)
        self._offset = 0
        self._seq = 0
        self._head = GENESIS
        self._keys: dict[str, int] = {}  # idempotency key -> byte offset of its event's line
        self.recovered: list[dict[str, Any]] = []

    # ------------------------------------------------------------------ reading
    def _split(self, data: bytes, base_offset: int, strict_tail: bool) -> Iterator[tuple[bytes, str, int]]:
        """The complete lines of `data` (read from `base_offset`); a torn tail stops it (or raises if strict)."""
        pos = 0
        while pos < len(data):
            nl = data.find(b"\n", pos)
            if nl < 0:
                if strict_tail:
                    raise IntegrityError(f"{self.path}: incomplete last line at byte {base_offset + pos}")
                return
            yield data[pos:nl], f"byte {base_offset + pos}", base_offset + nl + 1
            pos = nl + 1

    def _catch_up(self, fd: int) -> None:
        size = os.fstat(fd).st_size
        if size < self._offset:
            raise IntegrityError(f"{self.path} shrank from {self._offset} to {size} bytes")
        if size == self._offset:
            return
        os.lseek(fd, self._offset, os.SEEK_SET)
        data = b""
        while len(data) < size - self._offset:
            chunk = os.read(fd, size - self._offset - len(data))
            if not chunk:
                break
            data += chunk
        for line, where, end in self._split(data, self._offset, strict_tail=False):
            rec = self.link(line, self._seq, self._head, where)
            if rec.get("idempotency_key"):
                self._keys.setdefault(rec["idempotency_key"], self._offset)
            self._seq, self._head, self._offset = rec["seq"], rec["hash"], end

    def prime(self, at: Position, keys: dict[str, int]) -> bool:
        """Start from a verified position (a state snapshot's) instead of genesis: appends then read only what came
        after it. `keys` maps the idempotency keys used before it to their lines' offsets. Only before this object
        has read anything, and only where the log still holds that position."""
        if self._offset or not at.offset or not self.anchored(at):
            return False
        self._seq, self._head, self._offset = at.seq, at.head, at.offset
        self._keys = dict(keys)
        return True

    def _original(self, key: str) -> dict[str, Any]:
        """The event that first used an idempotency key, read back from its line (and checked to be it)."""
        with self.path.open("rb") as fh:
            fh.seek(self._keys[key])
            rec, digest = parse_line(fh.readline().rstrip(b"\n"))
        if rec.get("idempotency_key") != key or rec["hash"] != digest:
            raise IntegrityError(f"{self.path}: the event for idempotency key {key!r} is not where it was")
        return rec

    def _lines_after(self, at: Position) -> Iterator[tuple[bytes, str, int]]:
        if not self.path.exists():
            return
        offset = at.offset
        with self.path.open("rb") as fh:
            fh.seek(offset)
            buf = b""
            while True:
                chunk = fh.read(1 << 20)
                if not chunk:
                    break
                buf += chunk
                cut = buf.rfind(b"\n") + 1
                yield from self._split(buf[:cut], offset, strict_tail=True)
                offset += cut
                buf = buf[cut:]

    def anchored(self, at: Position) -> bool:
        """Whether the log still holds, ending at `at.offset`, a valid line for event `at.seq` with hash `at.head`:
        what lets a reader resume from a position instead of genesis."""
        if at.seq == 0:
            return at.offset == 0 and at.head == GENESIS
        try:
            with self.path.open("rb") as fh:
                start = at.offset
                while True:  # back to the start of the line that ends at the offset
                    start = max(0, start - 4096)
                    fh.seek(start)
                    block = fh.read(at.offset - start)
                    if len(block) != at.offset - start or not block.endswith(b"\n"):
                        return False
                    nl = block.rfind(b"\n", 0, len(block) - 1)
                    if nl >= 0 or start == 0:
                        line = block[nl + 1:]
                        break
            rec, digest = parse_line(line[:-1])
        except (OSError, ValueError, IntegrityError, KeyError, TypeError):
            return False
        return rec.get("seq") == at.seq and rec["hash"] == digest == at.head

    @property
    def name(self) -> str:
        return str(self.path)

    def _check_end(self) -> None:
        if self.path.exists() and self.path.stat().st_size and not self.path.read_bytes().endswith(b"\n"):
            raise IntegrityError(f"{self.path}: torn last line after the last complete event (an append will "
                                 "recover it)")

    # ------------------------------------------------------------------ writing
    @contextmanager
    def _locked(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            created = not self.path.exists()
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                if created:
                    os.fsync(fd)
                    fsync_dir(self.path.parent)
                yield fd
            finally:
                os.close(fd)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
            os.close(lock)

    def _recover_tail(self, fd: int) -> dict[str, Any] | None:
        size = os.fstat(fd).st_size
        if size == self._offset:
            return None
        latest = self.checkpoints.latest() if self.checkpoints is not None else None
        if latest is not None and latest["seq"] > self._seq:
            raise IntegrityError(f"{self.path} holds {self._seq} whole events and a torn line, but checkpoint "
                                 f"{latest['seq']} vouches for more: the file was truncated, not torn by a crash")
        os.lseek(fd, self._offset, os.SEEK_SET)
        torn = os.read(fd, size - self._offset)
        os.ftruncate(fd, self._offset)
        os.fsync(fd)
        info = {"bytes": len(torn), "sha256": hashlib.sha256(torn).hexdigest(), "after_seq": self._seq}
        self.recovered.append(info)
        return info

    def _write(self, fd: int, event_type: str, payload: dict[str, Any], key: str | None,
               bundle_digest: str | None) -> dict[str, Any]:
        rec = {"seq": self._seq + 1, "ts": datetime.now(timezone.utc).isoformat(), "type": event_type,
               "payload": payload, "idempotency_key": key, "bundle_digest": bundle_digest, "prev_hash": self._head}
        rec["hash"] = record_hash(rec)
        line = json.dumps(rec, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode() + b"\n"
        view = memoryview(line)
        while view:  # a full write loop: O_APPEND puts each write at the end, under our lock nobody interleaves
            n = os.write(fd, view)
            view = view[n:]
        os.fsync(fd)  # an exception here propagates: the event is not acknowledged
        if key:
            self._keys[key] = self._offset
        self._seq, self._head, self._offset = rec["seq"], rec["hash"], self._offset + len(line)
        return rec

    def append(self, event_type: str, payload: dict[str, Any], *, idempotency_key: str | None = None,
               expected_seq: int | None = None, bundle_digest: str | None = None) -> dict[str, Any]:
        """Append durably and return the stored event (or, for a repeated idempotency key, the original one)."""
        with self._locked() as fd:
            self._catch_up(fd)
            recovered = self._recover_tail(fd)
            if recovered is not None:
                self._write(fd, "log.recovered_tail", recovered, None, bundle_digest)
            if idempotency_key and idempotency_key in self._keys:
                return self._original(idempotency_key)
            if expected_seq is not None and expected_seq != self._seq:
                raise ConcurrencyError(f"expected seq {expected_seq}, the log is at {self._seq}")
            return self._write(fd, event_type, payload, idempotency_key, bundle_digest)

    def head(self) -> tuple[int, str]:
        with self._locked() as fd:
            self._catch_up(fd)
            return self._seq, self._head


class Checkpoints:
    """Signed statements "the log had `seq` events ending in `head` (`size` bytes)", one JSON line each, in a file
    outside the log's directory. Signing needs the operator's private key; checking needs only the public key, which
    must come from a trusted place (the key file, or the bundle's `checkpoint_keys`), never from the checkpoint."""

    def __init__(self, path: str | Path, public_keys: list[str]) -> None:
        self.path = Path(path)
        self.public_keys = list(public_keys)

    def load(self) -> list[dict[str, Any]]:
        from .keys import verify_signature

        if not self.path.exists():
            return []
        if not self.public_keys:
            raise IntegrityError(f"{self.path} holds checkpoints but no trusted operator key was given to check them "
                                 "(--operator-pub, or the bundle's checkpoint_keys)")
        out = []
        for i, line in enumerate(self.path.read_bytes().splitlines(), 1):
            try:
                cp = json.loads(line, object_pairs_hook=_no_duplicates)
                body = {k: cp[k] for k in ("log", "seq", "head", "size", "at", "key")}
                ok = cp["key"] in self.public_keys and verify_signature(cp["key"], canonical(body), cp["sig"])
            except (ValueError, KeyError, TypeError, IntegrityError):
                ok = False
            if not ok:
                raise IntegrityError(f"{self.path}: checkpoint {i} is not signed by a trusted operator key")
            out.append(cp)
        return out

    def latest(self) -> dict[str, Any] | None:
        cps = self.load()
        return max(cps, key=lambda c: c["seq"]) if cps else None

    def sign(self, log: EventLog, private_key: Any) -> dict[str, Any]:
        from .keys import public_key_text, sign

        info = log.verify(checkpoints=self)  # never vouch for a log that is already broken
        body = {"log": str(log.path.resolve()), "seq": info["events"], "head": info["head"],
                "size": log.path.stat().st_size if log.path.exists() else 0,
                "at": datetime.now(timezone.utc).isoformat(), "key": public_key_text(private_key)}
        cp = {**body, "sig": sign(private_key, canonical(body))}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("ab") as fh:
            fh.write(canonical(cp) + b"\n")
            fh.flush()
            os.fsync(fh.fileno())
        return cp
