"""What each control-plane action does once the runtime allowed it: the pipeline, the registry, governance."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..controlplane.runtime import ControlPlaneRuntime
from . import App


class PipelineActions:
    """What each action does once the runtime allowed it."""

    def __init__(self, runtime: ControlPlaneRuntime, workspace: str | Path = "runs",
                 registry_root: str | Path | None = None, state_dir: str | Path | None = None) -> None:
        self.runtime = runtime
        self.app = App(workspace=str(workspace), registry=str(registry_root) if registry_root else None)
        self.workspace = self.app.paths.workspace
        self.state_dir = Path(state_dir) if state_dir else self.app.paths.state_dir

    def __call__(self, action_id: str, payload: dict[str, Any]) -> dict[str, Any]:
        return getattr(self, "do_" + action_id.replace(".", "_"))(payload)

    def _governance(self):
        from ..governance import Governance

        return Governance(self.app.registry())

    def do_training_run_job(self, p: dict[str, Any]) -> dict[str, Any]:
        from ..pipeline.orchestrator import UnityMLOpsOrchestrator
        from ..specs import TrainingJob

        orch = UnityMLOpsOrchestrator(self.workspace, registry=self.app.paths.registry, show_progress=False)
        result = orch.execute_training_job_sync(TrainingJob.model_validate(p))
        return result.model_dump(mode="json", exclude={"log_tail"})

    def do_model_register(self, p: dict[str, Any]) -> dict[str, Any]:
        """Only an ML-Agents policy is registered, and only one that fits the asset's behavior: the contract of its
        latest version (whose behavior.json the new version inherits)."""
        from ..evaluation.onnx_policy import OnnxPolicy
        from ..registry.base import RegistrationRequest
        registry = self.app.registry()
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
            self.runtime.record_staged(p["version"])
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

        StateStore(self.state_dir, self.app.paths.database).set_paused(p["schedule_id"], p["paused"], utc_now())
        return {"schedule_id": p["schedule_id"], "paused": p["paused"]}

    def do_approval_grant(self, p: dict[str, Any]) -> dict[str, Any]:
        """An agent can only pass on an approval a human signed; it cannot make one."""
        from ..controlplane.keys import verify_signature
        from ..controlplane.runtime import approval_message

        a = p["approval"]
        if not verify_signature(a["approver_key"], approval_message(a["subject"], a["expires_at"], a["nonce"]),
                                a["signature"]):
            raise ValueError("the approval's signature does not verify; nothing was recorded")
        ev = self.runtime.record_approval(a)
        return {"approval_id": a["approval_id"], "approver": ev["payload"]["approver"],
                "expires_at": a["expires_at"], "seq": ev["seq"]}
