"""The hash chain both event-log stores keep (the JSONL file, `eventlog.EventLog`, and the rows of the shared
database, `sql_eventlog.SqlEventLog`): the canonical line, its strict parser, its hash, and the reading and
verification they share (`ChainedLog`)."""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, NamedTuple

import orjson

from ..errors import IntegrityError  # defined there: the CLI catches it without importing the chain

if TYPE_CHECKING:
    from .eventlog import Checkpoints

GENESIS = "0" * 64
RECORD_KEYS = {"seq", "ts", "type", "payload", "idempotency_key", "bundle_digest", "prev_hash", "hash"}


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


class ChainedLog(ABC):
    """What the two stores share: reading. A store yields its lines after a position (`_lines_after`); reading
    checks each link the same way (the strict parser, the sequence, the previous hash, the line's own hash), and
    `verify` compares the chain with the signed checkpoints and an expected head. The file log and the database log
    differ only in where their lines are and how they append."""

    name: str
    unit = "event"  # what a message calls a stored event: the file log says "line"

    @abstractmethod
    def _lines_after(self, at: Position) -> Iterator[tuple[bytes, str, int]]:
        """(line, where it is for a message (a byte offset, or ""), the position's offset after it) for each stored
        line after `at`."""

    def _check_end(self) -> None:
        """A store's own check of its end (the file: no torn last line); none by default."""
        return None

    def link(self, line: bytes, seq: int, head: str, where: str) -> dict[str, Any]:
        """The event of `line` if it is event `seq + 1` chained onto `head` and its hash is right; else one clear
        IntegrityError naming where it is."""
        why = "breaks the hash chain or the sequence"
        try:
            rec, digest = parse_line(line)
            ok = rec.get("seq") == seq + 1 and rec.get("prev_hash") == head and rec["hash"] == digest
        except IntegrityError as exc:
            ok, why = False, str(exc)
        except (ValueError, KeyError, TypeError, AttributeError):
            ok = False
        if not ok:
            at = f" ({where})" if where else ""
            raise IntegrityError(f"{self.name}: {self.unit} {seq + 1}{at} {why}: the log was edited or corrupted")
        return rec

    def read_after(self, at: Position) -> Iterator[tuple[dict[str, Any], Position]]:
        """The events after a position (trusted: see `anchored`), verified link by link from it, each with the
        position after it."""
        seq, head = at.seq, at.head
        for line, where, offset in self._lines_after(at):
            rec = self.link(line, seq, head, where)
            seq, head = rec["seq"], rec["hash"]
            yield rec, Position(seq, head, offset)

    def read(self) -> Iterator[dict[str, Any]]:
        """Every event, verified link by link (a long log is read in pieces, never held in memory)."""
        return (rec for rec, _ in self.read_after(Position()))

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return self.read()

    def verify(self, expect_head: tuple[int, str] | None = None,
               checkpoints: Checkpoints | None = None) -> dict[str, Any]:
        """Walk the whole chain and check it against the signed checkpoints and an externally kept head.
        Returns {events, head, checkpoints}; raises IntegrityError naming the first problem."""
        info = check_against(self.read(), self.name, checkpoints, expect_head)
        self._check_end()
        return info
