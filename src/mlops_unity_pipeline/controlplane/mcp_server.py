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
from typing import Any

from .. import __version__
from .eventlog import IntegrityError
from .runtime import ControlPlaneRuntime

Executor = Callable[[str, dict[str, Any]], dict[str, Any]]  # app.actions.PipelineActions in the product


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

