"""The control plane as MCP tools: an in-process client and a real stdio subprocess client."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import anyio
import pytest
import yaml
from mcp import Client, MCPError
from mcp.client.stdio import StdioServerParameters

from mlops_unity_pipeline.app.actions import PipelineActions
from mlops_unity_pipeline.behavior import build_behavior
from mlops_unity_pipeline.controlplane import ControlPlaneRuntime
from mlops_unity_pipeline.controlplane.keys import generate, load_private
from mlops_unity_pipeline.controlplane.mcp_server import build_server
from mlops_unity_pipeline.controlplane.runtime import DEFAULT_BUNDLE
from mlops_unity_pipeline.registry import LocalModelRegistry, RegistrationRequest

sys.path.insert(0, str(Path(__file__).parent))
from onnx_policies import linear_policy  # noqa: E402

NAV = build_behavior(behavior_name="Nav", archetype="navigation")


def registered_version(registry_root: Path, tmp_path: Path) -> str:
    model = linear_policy(tmp_path / "nav.onnx", 12, None, (1.0, 0.0))
    behavior = tmp_path / "behavior.json"
    behavior.write_text(NAV.to_json())
    return LocalModelRegistry(registry_root).register(RegistrationRequest(
        "nav-1", "Nav", "Nav", "job-1", model, files={"behavior.json": behavior}, git_sha="abc1234")).version


@pytest.fixture
def keys(tmp_path):
    """The agent's own key and a human approver's (their private keys never leave their owners)."""
    return {n: generate(tmp_path / "keys", n) for n in ("agent", "lead")}


@pytest.fixture
def bundle(tmp_path, keys):
    """The shipped bundle with the lead designer as the only approver."""
    d = tmp_path / "bundle"
    shutil.copytree(DEFAULT_BUNDLE.parent, d)
    data = yaml.safe_load((d / "bundle.yaml").read_text())
    data["approval_policy"]["approvers"] = [{"name": "lead-designer", "key": keys["lead"][1]}]
    (d / "bundle.yaml").write_text(yaml.safe_dump(data))
    return d / "bundle.yaml"


@pytest.fixture
def plane(tmp_path, monkeypatch, keys, bundle):
    monkeypatch.setenv("UNITY_MLOPS_IDENTITY_KEY", str(keys["agent"][0]))
    rt = ControlPlaneRuntime(bundle, events_path=tmp_path / "events.jsonl")
    rt.load_bundle()
    rt.compile_schemas()
    workspace = tmp_path / "runs"
    version = registered_version(workspace / "_registry", tmp_path)
    return rt, PipelineActions(rt, workspace), version, workspace


def test_in_process_client(plane, keys):
    rt, actions, version, workspace = plane
    server = build_server(rt, actions)
    payload = {"version": version, "to": "staging"}

    async def scenario():
        async with Client(server, raise_exceptions=True) as c:
            tools = (await c.list_tools()).tools
            by_name = {t.name: t for t in tools}
            assert sorted(by_name) == rt.enumerate_action_ids()
            assert by_name["model.promote"].input_schema["properties"]["to"]["enum"] == ["staging", "production"]
            assert by_name["model.rollback"].annotations.destructive_hint is True

            bad = await c.call_tool("model.promote", {"version": "nope", "to": "prod"})
            assert bad.is_error and "$.to" in bad.content[0].text
            with pytest.raises(MCPError, match="Unknown tool"):
                await c.call_tool("model.delete", {})

            halted = await c.call_tool("model.promote", payload)  # no facts, no approval
            assert halted.is_error and halted.structured_content["halted"] is True
            assert "guardrails_ok" in halted.structured_content["missing"]

            rt.assert_fact("guardrails_ok")
            halted = await c.call_tool("model.promote", payload)
            assert halted.is_error and "human_approval" in halted.structured_content["missing"]

            own = rt.sign_approval("model.promote", payload, load_private(keys["agent"][0]))
            self_approval = await c.call_tool("approval.grant", {"approval": own})
            assert not self_approval.is_error  # recorded, but the agent cannot use its own approval
            assert (await c.call_tool("model.promote", payload)).structured_content["halted"]
            forged = {**own, "approver_key": keys["lead"][1], "approval_id": "apr_" + "0" * 32}
            refused = await c.call_tool("approval.grant", {"approval": forged})  # claims to be the lead
            assert refused.is_error and "signature does not verify" in refused.content[0].text

            # the lead designer signs on their own terminal and hands the approval over; the agent records it
            signed = rt.sign_approval("model.promote", payload, load_private(keys["lead"][0]))
            assert not (await c.call_tool("approval.grant", {"approval": signed})).is_error
            ok = await c.call_tool("model.promote", payload)
            assert not ok.is_error, ok.content[0].text
            assert ok.structured_content["result"]["to"] == version

    anyio.run(scenario)
    assert LocalModelRegistry(workspace / "_registry").ledger.aliases("Nav")["staging"] == version
    types = [e["type"] for e in rt.events.read()]
    assert "call.rejected" in types and "approval.used" in types and "transition.executed" in types
    assert types.count("decision") >= 4 and rt.events.verify()["events"] == len(types)


def test_stdio_subprocess_client(plane, tmp_path):
    rt, _, version, workspace = plane
    env = {**os.environ, "UNITY_MLOPS_ACTOR": "agent", "PYTHONUNBUFFERED": "1"}
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "mlops_unity_pipeline", "control-plane", "serve", "--events", str(tmp_path / "events.jsonl"),
              "--workspace", str(workspace)], env=env)

    async def scenario():
        async with Client(params) as c:
            names = [t.name for t in (await c.list_tools()).tools]
            assert "model.promote" in names and "training.run_job" in names
            bad = await c.call_tool("schedule.pause", {"schedule_id": "nightly"})
            assert bad.is_error and "'paused' is a required property" in bad.content[0].text
            halted = await c.call_tool("model.rollback", {"asset": "nav", "version": version, "reason": "test"})
            assert halted.is_error and halted.structured_content["halted"]

    anyio.run(scenario)


def test_cli_promotions_go_through_the_control_plane(plane, tmp_path, keys, bundle):
    rt, _, version, workspace = plane
    env = {**os.environ, "UNITY_MLOPS_CONTROL_PLANE_BUNDLE": str(bundle),
           "UNITY_MLOPS_CONTROL_PLANE_EVENTS": str(tmp_path / "cli-events.jsonl"),
           "UNITY_MLOPS_IDENTITY_KEY": str(keys["agent"][0])}

    def cli(*args, actor="ops-bot"):
        return subprocess.run([sys.executable, "-m", "mlops_unity_pipeline", *args], capture_output=True, text=True,
                              env={**env, "UNITY_MLOPS_ACTOR": actor}, timeout=300)

    reg = ["models", "--registry", str(workspace / "_registry")]
    r = cli(*reg, "promote", version, "--to", "staging")
    assert r.returncode == 2 and "control plane HALT" in r.stderr and "guardrails_ok" in r.stderr
    assert cli("control-plane", "assert", "guardrails_ok", actor="sre").returncode == 0
    payload = f'{{"version": "{version}", "to": "staging"}}'
    r = cli("control-plane", "approve", "model.promote", "--payload", payload, "--key", str(keys["agent"][0]),
            actor="lead")  # the agent's own key, whatever actor name it claims
    assert r.returncode == 0
    r = cli(*reg, "promote", version, "--to", "staging")
    assert r.returncode == 2 and "not in the approval policy" in r.stderr
    assert cli("control-plane", "approve", "model.promote", "--payload", payload, "--key",
               str(keys["lead"][0])).returncode == 0
    r = cli(*reg, "promote", version, "--to", "staging")
    assert r.returncode == 0, r.stderr
    assert cli("control-plane", "verify").returncode == 0
