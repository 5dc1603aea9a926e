"""The control plane attacked as an auditor and an attacker would: hand-edited logs (rewritten and re-hashed,
deleted tail, reformatted line, duplicate key, mid-file truncation) against signed checkpoints and an externally
kept head; unbounded TTLs; huge and non-finite inputs; a tampered log met by the CLI and by an MCP call."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from mlops_unity_pipeline.controlplane import ControlPlaneRuntime, EventLog, IntegrityError
from mlops_unity_pipeline.controlplane.eventlog import Checkpoints, canonical, record_hash
from mlops_unity_pipeline.controlplane.keys import generate, load_private
from mlops_unity_pipeline.controlplane.runtime import DEFAULT_BUNDLE

VERSION = "unity-nav-20261123-abc1234-v001"


def cli(tmp_path, *args):
    env_events = ["--events", str(tmp_path / "events.jsonl"), "--checkpoints", str(tmp_path / "ck" / "cp.jsonl")]
    return subprocess.run([sys.executable, "-m", "mlops_unity_pipeline", "control-plane", *args, *env_events],
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def signed_log(tmp_path):
    """A log of 20 events with a checkpoint at 20 signed by an operator key kept in another directory."""
    log = EventLog(tmp_path / "events.jsonl")
    for i in range(20):
        log.append("test", {"i": i})
    key_path, pub = generate(tmp_path / "operator-keys", "operator")
    cps = Checkpoints(tmp_path / "ck" / "cp.jsonl", [pub])
    cp = cps.sign(log, load_private(key_path))
    return log, cps, cp, key_path, pub


def _lines(path):
    return path.read_bytes().splitlines(keepends=True)


def _rehash_from(lines, index):
    """What an attacker with write access does: edit line `index`, then recompute every later hash."""
    recs = [json.loads(x) for x in lines]
    recs[index]["payload"] = {"i": "forged"}
    prev = recs[index - 1]["hash"] if index else "0" * 64
    for r in recs[index:]:
        r["prev_hash"] = prev
        r["hash"] = record_hash(r)
        prev = r["hash"]
    return [canonical(r) + b"\n" for r in recs]


ATTACKS = {
    "rewritten and re-hashed": lambda ls: _rehash_from(ls, 5),
    "deleted tail": lambda ls: ls[:-3],
    "mid-file truncation": lambda ls: [*ls[:7], ls[7][:40]],
}


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_history_rewrites_that_the_chain_alone_cannot_see_are_caught_by_a_checkpoint(signed_log, tmp_path, attack):
    log, cps, cp, _, _ = signed_log
    tampered = b"".join(ATTACKS[attack](_lines(log.path)))
    log.path.write_bytes(tampered)
    if attack != "mid-file truncation":
        EventLog(log.path).verify()  # the chain alone says ok: that is the point
    with pytest.raises(IntegrityError, match="rewritten|deleted|truncated"):
        EventLog(log.path).verify(checkpoints=cps)
    with pytest.raises(IntegrityError, match="rewritten|deleted|truncated"):
        EventLog(log.path).verify(expect_head=(cp["seq"], cp["head"]))
    if attack == "mid-file truncation":  # an append must not "recover" it as a torn tail
        with pytest.raises(IntegrityError, match="truncated, not torn"):
            EventLog(log.path, checkpoints=cps).append("test", {"after": True})


@pytest.mark.parametrize("edit", ["reformatted", "duplicate key"])
def test_non_canonical_lines_and_duplicate_keys_break_the_chain(tmp_path, edit):
    log = EventLog(tmp_path / "events.jsonl")
    for i in range(5):
        log.append("test", {"i": i})
    lines = _lines(log.path)
    rec = json.loads(lines[2])
    if edit == "reformatted":  # same data, same hash, other bytes
        lines[2] = (json.dumps(rec, sort_keys=True, indent=1).replace("\n", " ") + "\n").encode()
    else:  # readers disagree on which payload counts
        lines[2] = lines[2].replace(b'"payload":', b'"payload":{"i":"forged"},"payload":', 1)
    log.path.write_bytes(b"".join(lines))
    with pytest.raises(IntegrityError, match="line 3") as err:
        EventLog(log.path).verify()
    assert ("canonical" if edit == "reformatted" else "duplicate key") in str(err.value)


def test_forged_or_foreign_checkpoints_are_refused(signed_log, tmp_path):
    log, cps, cp, _, _ = signed_log
    other_key, other_pub = generate(tmp_path / "mallory", "mallory")
    forged = Checkpoints(cps.path, [other_pub])  # a verifier that trusts only mallory's key
    with pytest.raises(IntegrityError, match="not signed by a trusted"):
        forged.load()
    data = json.loads(cps.path.read_text())
    data["seq"] = 5  # edit a signed checkpoint
    cps.path.write_text(json.dumps(data) + "\n")
    with pytest.raises(IntegrityError, match="not signed by a trusted"):
        log.verify(checkpoints=cps)


def test_cli_checkpoint_verify_and_a_tampered_log_in_one_line(tmp_path):
    keys = tmp_path / "keys"
    r = subprocess.run([sys.executable, "-m", "mlops_unity_pipeline", "control-plane", "keygen", "op", "--dir",
                        str(keys)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and (keys / "op.key").stat().st_mode & 0o777 == 0o600
    assert cli(tmp_path, "assert", "guardrails_ok").returncode == 0
    r = cli(tmp_path, "checkpoint", "--operator-key", str(keys / "op.key"))
    assert r.returncode == 0 and "checkpoint 1:" in r.stdout, r.stderr
    r = cli(tmp_path, "verify", "--operator-pub", str(keys / "op.pub"))
    assert r.returncode == 0 and "1 signed checkpoint(s) hold" in r.stdout, r.stdout + r.stderr
    head = r.stdout.strip().rsplit(" ", 1)[1]
    (tmp_path / "events.jsonl").write_bytes(b"")  # the whole history deleted
    r = cli(tmp_path, "verify", "--operator-pub", str(keys / "op.pub"))
    assert r.returncode == 1 and "deleted or the file was truncated" in r.stderr
    r = cli(tmp_path, "verify", "--expect-head", head)
    assert r.returncode == 1 and "no trusted operator key was given" in r.stderr, "checkpoints are never ignored"
    r = cli(tmp_path, "verify", "--expect-head", head, "--operator-pub", str(keys / "op.pub"))
    assert r.returncode == 1 and "deleted or the file was truncated" in r.stderr
    # an edited line: every command that reads the log refuses in one line, nothing appended
    (tmp_path / "events.jsonl").write_bytes(b'{"seq": 1}\n')
    r = cli(tmp_path, "assert", "guardrails_ok")
    assert r.returncode == 4 and "not trusted" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 2  # the error and its fix
    assert (tmp_path / "events.jsonl").read_bytes() == b'{"seq": 1}\n'


@pytest.mark.parametrize("ttl", ["inf", "nan", "0", "-1", "-30", "1e12", "1e300"])
def test_ttls_are_finite_positive_and_capped_everywhere(tmp_path, ttl):
    r = cli(tmp_path, "assert", "guardrails_ok", "--ttl", ttl)
    assert r.returncode == 2 and "ttl must be a finite number" in r.stderr and "Traceback" not in r.stderr
    payload = json.dumps({"version": VERSION, "to": "staging"})
    key, _ = generate(tmp_path / "keys", "lead")
    r = cli(tmp_path, "approve", "model.promote", "--payload", payload, "--ttl", ttl, "--key", str(key))
    assert r.returncode == 2 and "ttl must be a finite number" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "events.jsonl").exists() or EventLog(tmp_path / "events.jsonl").verify()["events"] == 0


def test_replay_never_fails_on_a_stored_value_and_fails_closed(tmp_path):
    rt = ControlPlaneRuntime(DEFAULT_BUNDLE, None, tmp_path / "events.jsonl")
    rt.load_bundle()
    rt.compile_schemas()
    for bad in (math.inf, math.nan, 1e300, -5, "soon", None):  # written raw, as an old release or a hand could
        rt.events.append("guardrails.checked", {"fact": "guardrails_ok", "value": True, "ttl_s": bad})
        state = rt.replay_events()
        fact = state.fact("guardrails_ok")
        assert fact is None or bad is None, f"ttl {bad!r} must not grant a standing fact"
    rt.events.append("approval.granted", {"approval_id": "apr_x", "approver": "a", "expires_at": "never",
                                          "subject": {"action_id": "model.promote"}})
    d = rt.gate("model.promote", {"version": VERSION, "to": "staging"})
    assert not d.allowed


def test_huge_and_non_finite_inputs_are_rejected_and_logged_small(tmp_path):
    rt = ControlPlaneRuntime(DEFAULT_BUNDLE, None, tmp_path / "events.jsonl")
    rt.load_bundle()
    rt.compile_schemas()
    before = 0
    d = rt.gate("schedule.pause", {"schedule_id": "x" * 1_000_001, "paused": True})
    assert not d.allowed
    grown = (tmp_path / "events.jsonl").stat().st_size - before
    assert grown < 4000, f"the log grew {grown} bytes for one rejected call"
    rec = list(rt.events.read())[-1]["payload"]
    assert rec["input"]["input_bytes"] > 1_000_000 and len(rec["input"]["input_sha256"]) == 64
    errors = rt.validate_tool_input("approval.grant", {"action_id": "model.promote", "payload": {},
                                                       "ttl_s": math.nan})
    assert any("not a finite number" in e for e in errors)


def test_mcp_call_on_a_tampered_log_is_a_structured_halt(tmp_path):
    import asyncio

    from mcp import Client

    from mlops_unity_pipeline.app.actions import PipelineActions
    from mlops_unity_pipeline.controlplane.mcp_server import build_server

    rt = ControlPlaneRuntime(DEFAULT_BUNDLE, None, tmp_path / "events.jsonl")
    rt.load_bundle()
    rt.compile_schemas()
    rt.assert_fact("guardrails_ok")
    rt.events.path.write_bytes(rt.events.path.read_bytes().replace(b'"value":true', b'"value":false'))
    rt.events = EventLog(rt.events.path)  # a fresh process's view

    async def call():
        async with Client(build_server(rt, PipelineActions(rt, tmp_path / "runs"))) as c:
            return await c.call_tool("model.promote", {"version": VERSION, "to": "staging"})

    res = asyncio.run(call())
    assert res.is_error and res.structured_content["verdict"] == "HALT"
    assert "integrity_error" in res.structured_content


def test_register_refuses_what_is_not_a_fitting_policy_and_unfreeze_needs_a_human(tmp_path, samples):
    """Over MCP with every fact established: /etc/passwd and a model of another contract are refused, and an agent
    cannot unfreeze an asset (nor freeze it) without a signed approval."""
    import asyncio

    from mcp import Client

    from mlops_unity_pipeline.app.actions import PipelineActions
    from mlops_unity_pipeline.controlplane.mcp_server import build_server

    rt = ControlPlaneRuntime(DEFAULT_BUNDLE, None, tmp_path / "events.jsonl")
    rt.load_bundle()
    rt.compile_schemas()
    rt.assert_fact("guardrails_ok")
    actions = PipelineActions(rt, tmp_path / "runs")
    base = {"asset_id": "ball-1", "asset_name": "Ball", "behavior_name": "Ball"}

    sys.path.insert(0, str(Path(__file__).parent))
    from mlops_unity_pipeline.behavior import build_behavior
    from mlops_unity_pipeline.registry import LocalModelRegistry, RegistrationRequest
    from onnx_policies import linear_policy

    nav = build_behavior(behavior_name="Nav", archetype="navigation")
    (tmp_path / "behavior.json").write_text(nav.to_json())
    LocalModelRegistry(tmp_path / "runs" / "_registry").register(RegistrationRequest(
        "nav-1", "Nav", "Nav", "j", linear_policy(tmp_path / "nav.onnx", 12, None, (1.0, 0.0)),
        files={"behavior.json": tmp_path / "behavior.json"}))

    async def scenario():
        async with Client(build_server(rt, actions)) as c:
            other = await c.call_tool("model.register", {"asset_id": "nav-1", "asset_name": "Nav",
                                                         "behavior_name": "Nav",
                                                         "model_path": str(samples / "onnx" / "3DBall.onnx")})
            assert other.is_error and "does not fit Nav's behavior" in other.content[0].text
            passwd = await c.call_tool("model.register", {**base, "model_path": "/etc/passwd"})
            ok = await c.call_tool("model.register", {**base, "model_path": str(samples / "onnx" / "3DBall.onnx")})
            unfreeze = await c.call_tool("model.freeze", {"asset": "ball", "frozen": False, "reason": "agent wants"})
            return passwd, ok, unfreeze

    passwd, ok, unfreeze = asyncio.run(scenario())
    assert passwd.is_error and "not a loadable ONNX model" in passwd.content[0].text
    assert not ok.is_error and ok.structured_content["result"]["contract"]["observation_shapes"]
    assert unfreeze.is_error and "human_approval" in unfreeze.structured_content["missing"]
