"""The control plane as an MCP server (stdio), on the `mcp` SDK 2.x low-level `Server`.

The SDK validates nothing and forwards unknown tool names (control-plane reference §0), so this server does it all:
unknown tools are a protocol error (-32602); invalid arguments give `isError` with the JSON paths; a call the
runtime halts gives `isError` with `structuredContent.halted` and the missing facts or approval; an allowed call
runs the pipeline action and records its outcome in the event log.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import __version__
from .eventlog import IntegrityError
from .runtime import ControlPlaneRuntime

Executor = Callable[[str, dict[str, Any]], dict[str, Any]]


class PipelineActions:
    """What each action does once the runtime allowed it."""

    def __init__(self, runtime: ControlPlaneRuntime, workspace: str | Path = "runs",
                 registry_root: str | Path | None = None, state_dir: str | Path | None = None) -> None:
        from ..pipeline.orchestrator import REGISTRY_DIRNAME, STATE_DIRNAME

        self.runtime = runtime
        self.workspace = Path(workspace)
        self.registry_root = Path(registry_root) if registry_root else self.workspace / REGISTRY_DIRNAME
        self.state_dir = Path(state_dir) if state_dir else self.workspace / STATE_DIRNAME

    def __call__(self, action_id: str, payload: dict[str, Any]) -> dict[str, Any]:
        return getattr(self, "do_" + action_id.replace(".", "_"))(payload)

    def _governance(self):
        from ..governance import Governance
        from ..registry.local import LocalModelRegistry

        return Governance(LocalModelRegistry(self.registry_root))

    def do_training_run_job(self, p: dict[str, Any]) -> dict[str, Any]:
        from ..pipeline.orchestrator import UnityMLOpsOrchestrator
        from ..specs import TrainingJob

        orch = UnityMLOpsOrchestrator(self.workspace, registry_root=self.registry_root, show_progress=False)
        result = orch.execute_training_job_sync(TrainingJob.model_validate(p))
        return result.model_dump(mode="json", exclude={"log_tail"})

    def do_model_register(self, p: dict[str, Any]) -> dict[str, Any]:
        """Only an ML-Agents policy is registered, and only one that fits the asset's behavior: the contract of its
        latest version (whose behavior.json the new version inherits)."""
        from ..evaluation.onnx_policy import OnnxPolicy
        from ..registry.base import RegistrationRequest
        from ..registry.local import LocalModelRegistry

        registry = LocalModelRegistry(self.registry_root)
        policy = OnnxPolicy(p["model_path"])  # ContractError: not a loadable ML-Agents policy
        files = {}
        previous = registry.list(p["asset_name"])
        if previous:
            behavior = previous[-1].model_path.parent / "behavior.json"
            if behavior.is_file():
                from ..behavior.definition import BehaviorDefinition

                problems = policy.check_against(BehaviorDefinition.from_dict(json.loads(behavior.read_text())))
                if problems:
                    raise ValueError(f"{p['model_path']} does not fit {p['asset_name']}'s behavior (as of "
                                     f"{previous[-1].version}): " + "; ".join(problems))
                files["behavior.json"] = behavior
        v = registry.register(RegistrationRequest(
            asset_id=p["asset_id"], asset_name=p["asset_name"], behavior_name=p["behavior_name"],
            job_id=p.get("job_id", "control-plane"), model_path=Path(p["model_path"]), files=files))
        return {"version": v.version, "model_path": str(v.model_path), "contract": policy.contract.to_dict()}

    def do_model_promote(self, p: dict[str, Any]) -> dict[str, Any]:
        outcome = self._governance().promote(p["version"], p["to"], reason=p.get("reason", ""))
        if p["to"] == "staging":  # the runtime already gated this call; record the fact it establishes
            self.runtime.append_sync({"event_type": "model.staged", "fact": "model_in_staging",
                                      "subject": p["version"], "value": True})
        return {"alias": p["to"], "from": outcome.entry.from_version, "to": outcome.entry.to_version,
                "ledger_seq": outcome.entry.seq, "gates": [g.to_dict() for g in outcome.report.results]}

    def do_model_rollback(self, p: dict[str, Any]) -> dict[str, Any]:
        e = self._governance().rollback(p["asset"], reason=p["reason"],
                                        corrective_action=p.get("corrective_action", ""))
        return {"from": e.from_version, "to": e.to_version, "ledger_seq": e.seq, "frozen": True}

    def do_model_freeze(self, p: dict[str, Any]) -> dict[str, Any]:
        gov = self._governance()
        e = (gov.freeze if p["frozen"] else gov.unfreeze)(p["asset"], p["reason"])
        return {"asset": e.asset_name, "action": e.action, "ledger_seq": e.seq}

    def do_schedule_pause(self, p: dict[str, Any]) -> dict[str, Any]:
        from ..scheduler.scheduler import utc_now
        from ..scheduler.store import StateStore

        StateStore(self.state_dir).set_paused(p["schedule_id"], p["paused"], utc_now())
        return {"schedule_id": p["schedule_id"], "paused": p["paused"]}

    def do_approval_grant(self, p: dict[str, Any]) -> dict[str, Any]:
        """An agent can only pass on an approval a human signed; it cannot make one."""
        from .keys import verify_signature
        from .runtime import approval_message

        a = p["approval"]
        if not verify_signature(a["approver_key"], approval_message(a["subject"], a["expires_at"], a["nonce"]),
                                a["signature"]):
            raise ValueError("the approval's signature does not verify; nothing was recorded")
        ev = self.runtime.record_approval(a)
        return {"approval_id": a["approval_id"], "approver": ev["payload"]["approver"],
                "expires_at": a["expires_at"], "seq": ev["seq"]}


def build_server(runtime: ControlPlaneRuntime, executor: Executor):
    """The MCP server: one tool per action, with its real schema and annotations."""
    from mcp import MCPError
    from mcp.server import Server
    from mcp.types import INVALID_PARAMS, CallToolResult, ListToolsResult, TextContent, Tool, ToolAnnotations

    if not runtime.validators:
        runtime.load_bundle()
        runtime.compile_schemas()  # raises: the server never exists with a bad bundle
    tools = []
    for stub in runtime.generate_mcp_stub_tools():
        a = stub["annotations"]
        tools.append(Tool(name=stub["name"], description=stub["description"], input_schema=stub["inputSchema"],
                          annotations=ToolAnnotations(title=a.get("title"), read_only_hint=a["readOnlyHint"],
                                                      destructive_hint=a["destructiveHint"],
                                                      idempotent_hint=a["idempotentHint"],
                                                      open_world_hint=a["openWorldHint"])))
    known = {t.name for t in tools}

    def text(obj: Any) -> list:
        return [TextContent(type="text", text=obj if isinstance(obj, str) else json.dumps(obj, indent=2, default=str))]

    async def list_tools(ctx, params) -> ListToolsResult:
        return ListToolsResult(tools=tools)

    async def call_tool(ctx, params) -> CallToolResult:
        if params.name not in known:  # the SDK would forward it
            raise MCPError(INVALID_PARAMS, f"Unknown tool: {params.name}")
        try:
            return await _call(params.name, params.arguments if params.arguments is not None else {})
        except IntegrityError as exc:  # fail closed: nothing runs on a log that cannot be trusted
            reason = f"the control-plane event log failed verification: {exc}"
            return CallToolResult(content=text("HALT: " + reason), is_error=True,
                                  structured_content={"halted": True, "verdict": "HALT", "integrity_error": str(exc),
                                                      "reasons": [reason]})

    async def _call(name: str, args: Any) -> CallToolResult:
        errors = runtime.validate_tool_input(name, args)
        if errors:
            await runtime.append_event({"event_type": "call.rejected", **runtime.rejected(name, args, errors)})
            return CallToolResult(content=text("invalid input:\n" + "\n".join(errors[:20])), is_error=True,
                                  structured_content={"invalid": True, "errors": errors[:20]})
        decision = await asyncio.to_thread(runtime.gate, name, args)
        if not decision.allowed:
            info = {"halted": True, "verdict": "HALT", "reasons": decision.reasons, "missing": decision.missing,
                    "decision_seq": decision.seq}
            return CallToolResult(content=text("HALT: " + "; ".join(decision.reasons)), is_error=True,
                                  structured_content=info)
        try:
            result = await asyncio.to_thread(executor, name, args)
        except Exception as exc:  # the action itself failed (a gate, a missing file ...): a tool error, recorded
            await asyncio.to_thread(runtime.record_outcome, decision, args, False, {"error": str(exc)})
            return CallToolResult(content=text(f"{name} failed: {exc}"), is_error=True,
                                  structured_content={"failed": True, "error": str(exc), "decision_seq": decision.seq})
        await asyncio.to_thread(runtime.record_outcome, decision, args, True, result)
        return CallToolResult(content=text(result), structured_content={"result": result,
                                                                        "decision_seq": decision.seq})

    return Server("unity-mlops-control-plane", version=__version__, on_list_tools=list_tools,
                  on_call_tool=call_tool)


async def serve_stdio(runtime: ControlPlaneRuntime, executor: Executor) -> None:
    from mcp.server.stdio import stdio_server

    server = build_server(runtime, executor)
    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options())
