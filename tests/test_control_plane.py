"""The fail-closed control plane: load-time refusals, validation, the event log (torn tail, tampering, concurrency,
idempotency), facts, approvals and decisions."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mlops_unity_pipeline.controlplane import (
    BundleError,
    ConcurrencyError,
    ControlPlaneRuntime,
    EventLog,
    IntegrityError,
    UnknownAction,
)
from mlops_unity_pipeline.controlplane.runtime import DEFAULT_BUNDLE
from racing import race

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "control_plane"
VERSION = "unity-nav-20261123-abc1234-v001"


@pytest.fixture
def bundle_dir(tmp_path):
    d = tmp_path / "bundle"
    shutil.copytree(DEFAULT_BUNDLE.parent, d)
    return d


def runtime(bundle_dir, tmp_path, actor=None, monkeypatch=None):
    rt = ControlPlaneRuntime(bundle_dir / "bundle.yaml", bundle_dir / "schemas", tmp_path / "events.jsonl")
    rt.load_bundle()
    rt.compile_schemas()
    return rt


def edit_bundle(bundle_dir, fn):
    path = bundle_dir / "bundle.yaml"
    data = yaml.safe_load(path.read_text())
    fn(data)
    path.write_text(yaml.safe_dump(data))


def test_seed_sketch_runs_with_the_example_bundle(tmp_path):
    r = subprocess.run([sys.executable, str(EXAMPLE / "sketch.py")], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "HALT" in r.stdout and "guardrails_ok" in r.stdout, "no facts yet: fail closed"
    assert (tmp_path / "runtime" / "events.jsonl").is_file()


def _drop_action_transition(d):
    d["workflow"]["transitions"] = [t for t in d["workflow"]["transitions"] if t["action"] != "model.rollback"]


REFUSALS = [
    ("missing schema", lambda b: (b / "schemas" / "model.freeze.json").unlink(), "has no schema"),
    ("invalid schema", lambda b: (b / "schemas" / "model.freeze.json").write_text(
        '{"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object", '
        '"properties": {"a": {"type": 5}}}'),
     "is invalid"),
    ("remote $ref", lambda b: (b / "schemas" / "model.freeze.json").write_text(
        '{"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object", '
        '"properties": {"a": {"$ref": "https://example.com/evil.json"}}}'), "does not resolve locally"),
    ("dangling local $ref", lambda b: (b / "schemas" / "model.freeze.json").write_text(
        '{"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object", '
        '"properties": {"a": {"$ref": "#/$defs/missing"}}}'), "does not resolve locally"),
    ("other dialect", lambda b: (b / "schemas" / "model.freeze.json").write_text(
        '{"$schema": "http://json-schema.org/draft-07/schema#", "type": "object"}'), "dialect"),
    ("non-object root", lambda b: (b / "schemas" / "model.freeze.json").write_text(
        '{"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "array"}'), "type: object"),
    ("unknown requirement", lambda b: edit_bundle(b, lambda d: d["workflow"]["transitions"][0]["requires"].append(
        "moon_is_full")), "requires unknown 'moon_is_full'"),
    ("destructive without approval", lambda b: edit_bundle(b, lambda d: d["workflow"]["transitions"][2].update(
        requires=["guardrails_ok"])), "destructive action 'model.rollback' can run without human approval"),
    ("destructive without transition", lambda b: edit_bundle(b, _drop_action_transition),
     "destructive action 'model.rollback'"),
    ("unguarded transition", lambda b: edit_bundle(b, lambda d: d["workflow"]["transitions"][0].update(requires=[])),
     "unguarded"),
    ("unreachable transition", lambda b: edit_bundle(b, lambda d: (d["workflow"]["states"].append("limbo"),
                                                                    d["workflow"]["transitions"][1].update(
                                                                        **{"from": "limbo"}))), "unreachable"),
    ("duplicate action", lambda b: edit_bundle(b, lambda d: d["api_surface"]["tools"][0]["actions"].append(
        {"id": "training.run_job"})), "duplicate action id"),
]


@pytest.mark.parametrize("name, breaker, words", REFUSALS, ids=[r[0] for r in REFUSALS])
def test_every_load_time_refusal(bundle_dir, tmp_path, name, breaker, words):
    breaker(bundle_dir)
    rt = ControlPlaneRuntime(bundle_dir / "bundle.yaml", bundle_dir / "schemas", tmp_path / "events.jsonl")
    with pytest.raises(BundleError) as err:
        rt.load_bundle()
        rt.compile_schemas()
    assert words in str(err.value) and str(bundle_dir / "bundle.yaml") in str(err.value) and "fix:" in str(err.value)


def test_validation_errors_name_the_json_path(bundle_dir, tmp_path):
    rt = runtime(bundle_dir, tmp_path)
    assert rt.validate_tool_input("model.promote", {"version": VERSION, "to": "staging"}) == []
    errors = rt.validate_tool_input("model.promote", {"version": "v1", "to": "prod", "extra": True})
    assert any(e.startswith("$.version:") for e in errors) and any(e.startswith("$.to:") for e in errors)
    assert any("'extra' was unexpected" in e for e in errors)
    with pytest.raises(UnknownAction):
        rt.validate_tool_input("model.delete", {})
    stub = rt.generate_mcp_stub_tools(["model.promote"])[0]
    assert stub["inputSchema"]["properties"]["to"] == {"enum": ["staging", "production"]}
    assert "common" in stub["inputSchema"]["$defs"], "referenced schemas are bundled for clients"
    assert stub["annotations"]["destructiveHint"] is True


def test_unknown_formats_are_refused(bundle_dir, tmp_path):
    (bundle_dir / "schemas" / "schedule.pause.json").write_text(json.dumps({
        "$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",
        "properties": {"x": {"type": "string", "format": "no-such-format"}}}))
    with pytest.raises(BundleError, match="cannot be checked"):
        runtime(bundle_dir, tmp_path)


def test_format_checking_is_on(bundle_dir, tmp_path):
    (bundle_dir / "schemas" / "schedule.pause.json").write_text(json.dumps({
        "$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",
        "properties": {"schedule_id": {"type": "string"}, "paused": {"type": "boolean"},
                       "when": {"type": "string", "format": "date-time"}}}))
    rt = runtime(bundle_dir, tmp_path)
    assert rt.validate_tool_input("schedule.pause", {"when": "not a date"}) != []
    assert rt.validate_tool_input("schedule.pause", {"when": "2026-11-23T10:00:00Z"}) == []


def test_hash_chain_detects_any_edit(tmp_path):
    log = EventLog(tmp_path / "e.jsonl")
    for i in range(5):
        log.append("x", {"i": i})
    assert log.verify()["events"] == 5
    lines = (tmp_path / "e.jsonl").read_text().splitlines()
    lines[2] = lines[2].replace('"i":2', '"i":3')
    (tmp_path / "e.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(IntegrityError, match="line 3"):
        log.verify()
    r = subprocess.run([sys.executable, "-m", "mlops_unity_pipeline", "control-plane", "verify", "--events",
                        str(tmp_path / "e.jsonl")], capture_output=True, text=True)
    assert r.returncode == 1 and "TAMPERED" in r.stderr
    with pytest.raises(IntegrityError):
        EventLog(tmp_path / "e.jsonl").append("y", {})  # a tampered log is not appended to


def test_torn_tail_is_recovered_and_reported(tmp_path):
    path = tmp_path / "e.jsonl"
    log = EventLog(path)
    log.append("a", {})
    log.append("b", {})
    with path.open("ab") as fh:
        fh.write(b'{"seq":3,"type":"c","payl')  # a crash mid-write
    with pytest.raises(IntegrityError, match="torn"):
        EventLog(path).verify()
    fresh = EventLog(path)
    ev = fresh.append("c", {"again": True})
    events = list(fresh.read())
    assert [e["type"] for e in events] == ["a", "b", "log.recovered_tail", "c"]
    assert events[2]["payload"]["bytes"] == 25 and ev["seq"] == 4
    assert fresh.verify()["events"] == 4


def test_idempotency_and_expected_seq(tmp_path):
    log = EventLog(tmp_path / "e.jsonl")
    first = log.append("x", {"n": 1}, idempotency_key="k1")
    again = EventLog(tmp_path / "e.jsonl").append("x", {"n": 2}, idempotency_key="k1")  # another process
    assert again == first and log.verify()["events"] == 1
    log.append("y", {}, expected_seq=1)
    with pytest.raises(ConcurrencyError, match="expected seq 1"):
        log.append("z", {}, expected_seq=1)


def _appender(path, n):
    log = EventLog(path)
    for i in range(n):
        log.append("p", {"i": i})
    return n


def test_concurrent_appends_from_processes(tmp_path):
    assert sum(race(_appender, [(tmp_path / "e.jsonl", 40)] * 4)) == 160
    events = list(EventLog(tmp_path / "e.jsonl").read())
    assert [e["seq"] for e in events] == list(range(1, 161)), "no lost or duplicated seq"
    assert EventLog(tmp_path / "e.jsonl").verify()["events"] == 160


def test_facts_come_only_from_events_and_expire(bundle_dir, tmp_path):
    rt = runtime(bundle_dir, tmp_path)
    state = rt.replay_events()
    d = rt.evaluate_transition_requirements(["guardrails_ok"], state)
    assert not d.allowed and d.missing == ["guardrails_ok"]
    seq = rt.assert_fact("guardrails_ok", ttl_s=3600)["seq"]
    d = rt.evaluate_transition_requirements(["guardrails_ok"], rt.replay_events())
    assert d.allowed and d.facts_used == {"guardrails_ok": seq}
    rt.assert_fact("guardrails_ok", ttl_s=0.001)
    import time
    time.sleep(0.01)
    assert not rt.evaluate_transition_requirements(["guardrails_ok"], rt.replay_events()).allowed


PROMOTE = {"version": VERSION, "to": "staging"}


def ready(rt):
    rt.assert_fact("guardrails_ok")


def _keys(tmp_path, *names):
    from mlops_unity_pipeline.controlplane.keys import generate, load_private

    out = {}
    for n in names:
        path, pub = generate(tmp_path / "keys", n)
        out[n] = (load_private(path), pub, path)
    return out


def test_approval_failure_modes(bundle_dir, tmp_path, monkeypatch):
    """Approvals are signatures by keys the policy lists: an environment variable names nobody."""
    keys = _keys(tmp_path, "agent", "alice", "bob", "mallory")
    monkeypatch.setenv("UNITY_MLOPS_IDENTITY_KEY", str(keys["agent"][2]))  # the requester holds its own key
    edit_bundle(bundle_dir, lambda d: d["approval_policy"].update(
        approvers=[{"name": n, "key": keys[n][1]} for n in ("agent", "alice", "bob")]))
    rt = runtime(bundle_dir, tmp_path)
    ready(rt)
    d = rt.gate("model.promote", PROMOTE)
    assert not d.allowed and "no approval recorded" in "; ".join(d.reasons)

    rt.grant_approval("model.promote", PROMOTE, keys["agent"][0])  # the requester approving itself
    d = rt.gate("model.promote", PROMOTE)
    assert not d.allowed and "self-approval" in "; ".join(d.reasons)

    monkeypatch.setenv("UNITY_MLOPS_ACTOR", "alice")  # claiming to be alice changes nothing
    rt.grant_approval("model.promote", {**PROMOTE, "reason": "other payload"}, keys["alice"][0])
    rt.grant_approval("model.promote", PROMOTE, keys["alice"][0], ttl_s=0.001)
    rt.grant_approval("model.promote", PROMOTE, keys["mallory"][0])  # a valid signature by an outsider
    forged = rt.sign_approval("model.promote", PROMOTE, keys["mallory"][0])
    forged["approver_key"] = keys["bob"][1]  # claims to be bob, signed by mallory
    rt.record_approval(forged)
    import time
    time.sleep(0.01)
    reasons = "; ".join(rt.gate("model.promote", PROMOTE).reasons)
    assert "another payload or bundle" in reasons and "expired" in reasons
    assert "not in the approval policy" in reasons and "does not carry a valid signature" in reasons

    rt.grant_approval("model.promote", PROMOTE, keys["bob"][0])
    ok = rt.gate("model.promote", PROMOTE)
    assert ok.allowed and ok.approval_id
    again = rt.gate("model.promote", PROMOTE)
    assert not again.allowed and "already used" in "; ".join(again.reasons), "approvals are single-use"
    decisions = [e for e in rt.events.read() if e["type"] == "decision"]
    assert all(e["payload"]["verdict"] in ("ALLOW", "HALT") for e in decisions) and len(decisions) >= 5

    edit_bundle(bundle_dir, lambda d: d["approval_policy"].update(approvers=[]))  # nobody listed: fail closed
    rt2 = runtime(bundle_dir, tmp_path / "other")
    ready(rt2)
    rt2.grant_approval("model.promote", PROMOTE, keys["bob"][0])
    assert "lists no approver keys" in "; ".join(rt2.gate("model.promote", PROMOTE).reasons)


def test_workflow_state_is_enforced(bundle_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("UNITY_MLOPS_ACTOR", "agent")
    rt = runtime(bundle_dir, tmp_path)
    ready(rt)
    prod = {"version": VERSION, "to": "production"}
    d = rt.gate("model.promote", prod)
    assert not d.allowed and "model_in_staging" in d.missing
    assert "state 'registered'" in "; ".join(d.reasons)


def test_events_carry_the_bundle_digest(bundle_dir, tmp_path):
    rt = runtime(bundle_dir, tmp_path)
    ev = asyncio.run(rt.append_event({"event_type": "tool_invocation", "action_id": "model.promote"}))
    assert ev["bundle_digest"] == rt.bundle_digest and len(rt.bundle_digest) == 64
