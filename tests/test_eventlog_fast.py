"""The control-plane log's fast paths keep their promises: orjson's reader decides exactly as the standard library's
strict one (hypothesis, hostile values and mutated lines), and the state snapshot gives the state a full fold gives,
is re-checked against the log on every open, and cannot hide an edit or a forgery from `verify`."""

from __future__ import annotations

import json
import random
import shutil

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlops_unity_pipeline.controlplane import ControlPlaneRuntime, IntegrityError
from mlops_unity_pipeline.controlplane.chain import _parse_line_strictly
from mlops_unity_pipeline.controlplane.eventlog import GENESIS, EventLog, Position, canonical, parse_line, record_hash
from mlops_unity_pipeline.controlplane.runtime import DEFAULT_BUNDLE
from mlops_unity_pipeline.controlplane.sql_eventlog import SqlEventLog
from mlops_unity_pipeline.controlplane.state import Folder, State, StateCache

# ---------------------------------------------------------------------------------------------------- the reader
scalars = (st.none() | st.booleans() | st.integers(-10**30, 10**30) | st.text(max_size=12)
           | st.floats(allow_nan=True, allow_infinity=True)
           | st.sampled_from([1e-5, 5e-5, 1.5e-7, 1e-4, 1e16, 1e15, 123456789012345.6, -0.0, 2.0**63, 2**63, 2**64,
                              "\x00\x1f\x7f\u2028\U0001F600\"\\/", "0.00001"]))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                                                             max_size=4), max_leaves=12)


def written(payload, key=None, digest=None, prev=GENESIS) -> bytes:
    """What the writer writes (EventLog._write)."""
    rec = {"seq": 1, "ts": "2026-11-29T00:00:00+00:00", "type": "decision", "payload": payload,
           "idempotency_key": key, "bundle_digest": digest, "prev_hash": prev}
    rec["hash"] = record_hash(rec)
    return json.dumps(rec, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def decision(line: bytes):
    try:
        return parse_line(line)
    except (ValueError, IntegrityError) as exc:
        return type(exc)


def strict_decision(line: bytes):
    try:
        return _parse_line_strictly(line)
    except (ValueError, IntegrityError) as exc:
        return type(exc)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payload=st.dictionaries(st.text(max_size=8), values, max_size=5), key=st.none() | st.text(max_size=10),
       digest=st.none() | st.text(max_size=10))
def test_the_fast_reader_reads_what_the_writer_writes_as_the_strict_one_does(payload, key, digest):
    line = written(payload, key, digest)
    fast, strict = decision(line), strict_decision(line)
    assert not isinstance(strict, type), "the writer's own line is refused by the strict reader"
    assert fast[1] == strict[1] == json.loads(line)["hash"]
    assert canonical(fast[0]) == canonical(strict[0])


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payload=st.dictionaries(st.text(max_size=8), values, max_size=5), data=st.data())
def test_the_fast_reader_refuses_what_the_strict_one_refuses(payload, data):
    line = written(payload)
    rec = orjson.loads(line) if b"NaN" not in line and b"Infinity" not in line else None
    variants = [line.replace(b",", b", ", 1), line.replace(b'{"bundle_digest"', b'{"a":1,"bundle_digest"', 1),
                line[:-1] + b',"seq":2}', line.replace(b'"seq":1', b'"seq":1,"seq":1', 1)]
    if rec is not None:
        try:
            variants.append(orjson.dumps(rec, option=orjson.OPT_SORT_KEYS))  # another encoder's bytes
        except TypeError:
            pass
    at = data.draw(st.integers(0, len(line) - 1))
    variants.append(line[:at] + bytes([line[at] ^ data.draw(st.integers(1, 255))]) + line[at + 1:])
    for v in variants:
        fast, strict = decision(v), strict_decision(v)
        if isinstance(strict, type):
            assert isinstance(fast, type), f"accepted by the fast reader only: {v!r}"
        else:
            assert not isinstance(fast, type) and fast[1] == strict[1], v


# ---------------------------------------------------------------------------------------------------- the snapshot
FACTS = {"guardrails_ok": {"name": "guardrails_ok", "established_by": ["guardrails.checked"], "ttl_s": 86400},
         "model_in_staging": {"name": "model_in_staging", "established_by": ["model.staged"]}}


def random_events(rng: random.Random, n: int):
    for _ in range(n):
        kind = rng.choice(["decision", "decision", "guardrails.checked", "model.staged", "approval.granted",
                           "approval.used", "transition.executed"])
        subject = f"v{rng.randint(1, 5)}"
        payload = {"decision": {"verdict": "HALT"}, "guardrails.checked": {"subject": rng.choice(["*", subject]),
                                                                          "value": rng.random() < 0.8},
                   "model.staged": {"fact": "model_in_staging", "subject": subject},
                   "approval.granted": {"approval_id": f"a{rng.randint(1, 9)}", "expires_at": "2099-01-01"},
                   "approval.used": {"approval_id": f"a{rng.randint(1, 9)}"},
                   "transition.executed": {"subject": subject, "to": rng.choice(["staging", "production"])}}[kind]
        yield kind, payload


def full_fold(log) -> State:
    state, folder = State(), Folder(FACTS)
    for ev in log.read():
        folder.apply(state, ev)
    return state


@pytest.fixture(params=["file", "sqlite", "postgresql"])
def log(request, tmp_path):
    if request.param == "file":
        return EventLog(tmp_path / "events.jsonl")
    if request.param == "sqlite":
        return SqlEventLog(f"sqlite:///{tmp_path / 'state.db'}")
    return SqlEventLog(request.getfixturevalue("pg_database"))


def test_the_cached_and_snapshotted_state_is_the_full_fold(log, tmp_path):
    rng = random.Random(7)
    snap = tmp_path / "state" / "snapshot.json"
    for round_ in range(4):
        for kind, payload in random_events(rng, 60):
            log.append(kind, payload)
        cache = StateCache(log, snap, every=25)  # a process starting now: the snapshot, then the tail
        assert cache.state(FACTS).to_json() == full_fold(log).to_json(), round_
        warm = cache.state(FACTS)  # nothing appended: the same, read from memory
        assert warm.to_json() == full_fold(log).to_json()
    data = json.loads(snap.read_bytes())
    assert data["position"][0] >= 25 and cache.check_snapshot(FACTS)["seq"] == data["position"][0]


def test_a_snapshot_saves_the_replay_but_not_the_verification(tmp_path):
    bundle = tmp_path / "bundle"
    shutil.copytree(DEFAULT_BUNDLE.parent, bundle)
    rt = ControlPlaneRuntime(bundle / "bundle.yaml", bundle / "schemas", tmp_path / "events.jsonl")
    rt.load_bundle()
    rt.state_cache = StateCache(rt.events, tmp_path / "snap.json", every=10)
    for kind, payload in random_events(random.Random(1), 30):
        rt.append_sync({"event_type": kind, **payload})
    before = rt.replay_events().to_json()
    assert rt.verify()["snapshot"]["seq"] == 30
    # an edit inside the snapshotted history: the next start does not re-read it (so it cannot fail on it) ...
    lines = rt.events.path.read_bytes().splitlines(keepends=True)
    lines[3] = lines[3].replace(b'"HALT"', b'"ALLO"')
    rt.events.path.write_bytes(b"".join(lines))
    fresh = StateCache(rt.events, tmp_path / "snap.json", every=10)
    assert fresh.state(rt._facts_declared()).to_json() == before
    # ... and verify still walks it from genesis
    rt.state_cache = fresh
    with pytest.raises(IntegrityError, match="line 4"):
        rt.verify()


def test_a_forged_or_stale_snapshot_is_caught_by_verify(tmp_path):
    log = EventLog(tmp_path / "events.jsonl")
    for kind, payload in random_events(random.Random(2), 40):
        log.append(kind, payload)
    snap = tmp_path / "snap.json"
    StateCache(log, snap, every=10).state(FACTS)
    data = json.loads(snap.read_bytes())
    data["state"]["approvals"]["forged"] = {"approval_id": "forged", "expires_at": "2099-01-01", "seq": 1}
    snap.write_bytes(canonical(data))
    with pytest.raises(IntegrityError, match="does not match the state the log establishes"):
        StateCache(log, snap).check_snapshot(FACTS)
    data["position"][1] = "f" * 64  # anchored to a hash the log does not hold: not used, and reported
    snap.write_bytes(canonical(data))
    assert StateCache(log, snap).state(FACTS).to_json() == full_fold(log).to_json()
    with pytest.raises(IntegrityError, match="does not hold with that hash"):
        StateCache(log, snap).check_snapshot(FACTS)


def test_a_replaced_truncated_or_refactored_log_is_folded_again(tmp_path):
    path, snap = tmp_path / "events.jsonl", tmp_path / "snap.json"
    log = EventLog(path)
    for kind, payload in random_events(random.Random(3), 50):
        log.append(kind, payload)
    cache = StateCache(log, snap, every=10)
    cache.state(FACTS)
    # truncated below the snapshot's position: the anchor is gone, the state is the shorter log's
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:20]))
    short = EventLog(path)
    assert StateCache(short, snap).state(FACTS).to_json() == full_fold(short).to_json()
    assert cache.state(FACTS).to_json() == full_fold(short).to_json(), "the warm cache noticed too"
    # another log at the same path with as many events: different hashes, no anchor
    path.unlink()
    other = EventLog(path)
    for kind, payload in random_events(random.Random(4), 50):
        other.append(kind, payload)
    assert StateCache(other, snap).state(FACTS).to_json() == full_fold(other).to_json()
    # other fact declarations (a TTL changed): not this snapshot's
    facts = {**FACTS, "guardrails_ok": {**FACTS["guardrails_ok"], "ttl_s": 60}}
    assert StateCache(other, snap).check_snapshot(facts) is None


def test_positions_anchor_only_where_the_chain_says(tmp_path):
    log = EventLog(tmp_path / "events.jsonl")
    for kind, payload in random_events(random.Random(5), 5):
        log.append(kind, payload)
    positions = [at for _, at in log.read_after(Position())]
    assert all(log.anchored(at) for at in positions) and log.anchored(Position())
    first = positions[0]
    assert not log.anchored(first._replace(offset=first.offset + 1))
    assert not log.anchored(first._replace(seq=2)) and not log.anchored(first._replace(head="0" * 64))
    assert not log.anchored(positions[-1]._replace(offset=positions[-1].offset + 500))
    assert [r["seq"] for r, _ in log.read_after(positions[1])] == [3, 4, 5]


def test_appends_start_from_the_snapshot_and_keep_idempotency(tmp_path):
    path, snap = tmp_path / "events.jsonl", tmp_path / "snap.json"
    log = EventLog(path)
    first = log.append("approval.used", {"approval_id": "a1"}, idempotency_key="use:a1")
    for kind, payload in random_events(random.Random(6), 30):
        log.append(kind, payload)
    StateCache(log, snap, every=10).state(FACTS)
    size = path.stat().st_size
    with path.open("ab") as fh:
        fh.write(b'{"torn')  # a crash mid-append after the snapshot
    # a new process: appends start at the snapshot's position, not at genesis
    fresh = EventLog(path)
    assert StateCache(fresh, snap).prime_log() and fresh._offset == size
    again = fresh.append("approval.used", {"approval_id": "a1", "decision_seq": 99}, idempotency_key="use:a1")
    assert again == first, "a key used before the snapshot still answers with the original event"
    new = fresh.append("decision", {"n": 1}, idempotency_key="k-new")
    assert new["seq"] == 33 and fresh.recovered and fresh.recovered[0]["bytes"] == 6  # 31 events + the recovery
    assert [r["seq"] for r in EventLog(path).read()][-1] == 33
    assert StateCache(EventLog(path), snap).check_snapshot(FACTS) is not None
    # a snapshot whose key map was edited is caught by verify
    data = json.loads(snap.read_bytes())
    data["keys"]["use:forged"] = 0
    snap.write_bytes(canonical(data))
    with pytest.raises(IntegrityError, match="does not match"):
        StateCache(EventLog(path), snap).check_snapshot(FACTS)
