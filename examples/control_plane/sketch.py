# Seed 001's control-plane sketch, runnable: python examples/control_plane/sketch.py
import asyncio
from pathlib import Path

from mlops_unity_pipeline import ControlPlaneRuntime

HERE = Path(__file__).parent


async def main() -> None:
    runtime = ControlPlaneRuntime(
        bundle_path=HERE / "bundle.yaml",
        schemas_dir=HERE / "schemas",
        events_path="runtime/events.jsonl",
    )

    bundle = runtime.load_bundle()
    action_ids = runtime.enumerate_action_ids(bundle)
    stubs = runtime.generate_mcp_stub_tools(action_ids)
    _ = stubs

    runtime.compile_schemas()
    runtime.validate_tool_input("tool_action", {"example": "payload"})

    await runtime.append_event({"event_type": "tool_invocation", "action_id": "tool_action"})
    state = runtime.replay_events()
    decision = runtime.evaluate_transition_requirements(["guardrails_ok"], state)
    decision = runtime.enforce_guardrails_and_hitl(decision, state)
    print(decision)


asyncio.run(main())
