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
from typing import Any, NamedTuple

import orjson

GENESIS = "0" * 64
RECORD_KEYS = {"seq", "ts", "type", "payload", "idempotency_key", "bundle_digest", "prev_hash", "hash"}


class IntegrityError(Exception):
    """The log was edited, reordered or corrupted before its tail."""


class ConcurrencyError(Exception):
    """The caller's expected seq is not the log's current seq."""


def canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        dup = next(k for k in keys if keys.count(k) > 1)
        raise IntegrityError(f"duplicate key {dup!r} (readers would disagree on its value)")
    return dict(pairs)


def parse_line(line: bytes) -> tuple[dict[str, Any], str]:
    """One stored record, strictly, and its recomputed hash: the line must be byte for byte what the writer writes
    (so a reformatted line, or one with a duplicate key, is refused). One canonical encoding serves both checks:
    the record without its hash is what the hash covers, and the line is that with the hash member in place.

    The common case takes orjson's path: a line that orjson reads and writes back byte for byte (sorted keys, no
    duplicate, compact) is canonical, and the hash covers the line without its hash member. Anything else takes
    the standard library's path, which decides as before: NaN, integers beyond 64 bits, a bad line, and any line
    that may hold a float under 1e-4 (the two encoders spell those differently: 1e-05 / 0.00001, 1.5e-07 / 1.5e-7).
    tests/test_eventlog_fast.py checks that the two paths decide alike, on written, re-encoded and mutated lines."""
    if b"0.0000" not in line and b"e-" not in line:
        try:
            rec = orjson.loads(line)
        except orjson.JSONDecodeError:
            rec = None
        if isinstance(rec, dict) and rec.keys() == RECORD_KEYS \
                and orjson.dumps(rec, option=orjson.OPT_SORT_KEYS) == line:
            digest, prev = rec["hash"], rec["prev_hash"]
            member = b'"hash":"' + digest.encode() + b'",' if isinstance(digest, str) else b""
            at = line.find(member) if member and isinstance(prev, str) else -1
            if at > 0 and line[at - 1:at] == b",":
                body = line[:at] + line[at + len(member):]
                return rec, hashlib.sha256(prev.encode() + body).hexdigest()
    return _parse_line_strictly(line)


def _parse_line_strictly(line: bytes) -> tuple[dict[str, Any], str]:
    rec = json.loads(line)
    if not isinstance(rec, dict) or not isinstance(rec.get("prev_hash"), str) or not isinstance(rec.get("hash"), str):
        raise IntegrityError("not a record of this log")
    body = canonical({k: v for k, v in rec.items() if k != "hash"})
    expected = body.replace(b',"idempotency_key":', b',"hash":"' + rec["hash"].encode() + b'","idempotency_key":', 1)
    if expected != line:
        json.loads(line, object_pairs_hook=_no_duplicates)  # the precise reason when it is a duplicate key
        raise IntegrityError("not in canonical form (reformatted or re-encoded)")
    return rec, hashlib.sha256(rec["prev_hash"].encode() + body).hexdigest()


def record_hash(record: dict[str, Any]) -> str:
    body = {k: v for k, v in record.items() if k != "hash"}
    return hashlib.sha256(record["prev_hash"].encode() + canonical(body)).hexdigest()


def check_against(records: Iterator[dict[str, Any]], name: str, checkpoints: Checkpoints | None,
                  expect_head: tuple[int, str] | None) -> dict[str, Any]:
    """Walk verified records and compare them with the signed checkpoints and an externally kept head (both the file
    log and the database log)."""
    n, head = 0, GENESIS
    cps = checkpoints.load() if checkpoints is not None else []
    wanted: dict[int, str] = {cp["seq"]: cp["head"] for cp in cps}
    if expect_head is not None:
        wanted[expect_head[0]] = expect_head[1]
    for rec in records:
        n, head = rec["seq"], rec["hash"]
        if n in wanted and wanted[n] != head:
            raise IntegrityError(f"{name}: event {n} has hash {head[:16]}..., but a checkpoint or the expected head "
                                 f"says {wanted[n][:16]}...: history was rewritten")
    missing = [seq for seq in wanted if seq > n]
    if missing:
        raise IntegrityError(f"{name} ends at event {n}, but a checkpoint or the expected head vouches for event "
                             f"{max(missing)}: events were deleted or the file was truncated")
    return {"events": n, "head": head, "checkpoints": len(cps)}


class Position(NamedTuple):
    """Where a reader stands in a chain: after event `seq`, whose hash is `head`, `offset` bytes into the file (the
    database log has no offsets: 0)."""

    seq: int = 0
    head: str = GENESIS
    offset: int = 0


class EventLog:
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
    def _parse_from(self, data: bytes, base_offset: int, seq: int, head: str, strict_tail: bool):
        """Yield (record, end_offset) for complete, chained lines; stop at a torn tail (or raise if strict)."""
        pos = 0
        while pos < len(data):
            nl = data.find(b"\n", pos)
            if nl < 0:
                if strict_tail:
                    raise IntegrityError(f"{self.path}: incomplete last line at byte {base_offset + pos}")
                return
            line = data[pos:nl]
            why = "breaks the hash chain or the sequence"
            try:
                rec, digest = parse_line(line)
                ok = rec.get("seq") == seq + 1 and rec.get("prev_hash") == head and rec["hash"] == digest
            except IntegrityError as exc:
                ok, rec, why = False, None, str(exc)
            except (ValueError, KeyError, TypeError, AttributeError):
                ok, rec = False, None
            if not ok:
                raise IntegrityError(f"{self.path}: line {seq + 1} (byte {base_offset + pos}) {why}: the log was "
                                     "edited or corrupted")
            seq, head = rec["seq"], rec["hash"]
            pos = nl + 1
            yield rec, base_offset + pos

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
        for rec, end in self._parse_from(data, self._offset, self._seq, self._head, strict_tail=False):
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

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return self.read()

    def read(self) -> Iterator[dict[str, Any]]:
        """Every event, verified link by link (an incomplete last line is not returned)."""
        return (rec for rec, _ in self.read_after(Position()))

    def read_after(self, at: Position) -> Iterator[tuple[dict[str, Any], Position]]:
        """The events after a position (trusted: see `anchored`), verified link by link from it, each with the
        position after it."""
        if not self.path.exists():
            return
        seq, head, offset = at
        with self.path.open("rb") as fh:
            fh.seek(offset)
            buf = b""
            while True:
                chunk = fh.read(1 << 20)
                if not chunk:
                    break
                buf += chunk
                cut = buf.rfind(b"\n") + 1
                for rec, end in self._parse_from(buf[:cut], offset, seq, head, strict_tail=True):
                    seq, head = rec["seq"], rec["hash"]
                    yield rec, Position(seq, head, end)
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

    def verify(self, expect_head: tuple[int, str] | None = None,
               checkpoints: Checkpoints | None = None) -> dict[str, Any]:
        """Walk the whole chain and check it against the signed checkpoints and an externally kept head.
        Returns {events, head, checkpoints}; raises IntegrityError naming the first problem."""
        info = check_against(self.read(), str(self.path), checkpoints, expect_head)
        if self.path.exists() and self.path.stat().st_size and not self.path.read_bytes().endswith(b"\n"):
            raise IntegrityError(f"{self.path}: torn last line after seq {info['events']} (an append will recover it)")
        return info

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
                    dfd = os.open(self.path.parent, os.O_RDONLY)
                    try:
                        os.fsync(dfd)
                    finally:
                        os.close(dfd)
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
