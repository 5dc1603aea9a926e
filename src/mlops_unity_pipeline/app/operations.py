"""The product's own actions (see `app/actions.py`): governance and operations, each one object. Their inputs are
the control-plane bundle's schemas where the bundle exposes them over MCP (one schema, every front end)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .actions import Action, Command, Context, bundled_schema


def _version_ref(ctx: Context, payload: dict[str, Any]) -> dict[str, Any]:
    """A version as the command line and the dashboard name it: its full string or ASSET@ALIAS."""
    from ..errors import UserError
    from ..registry.base import VersionNotFound

    if "version" in payload:
        registry = ctx.app.registry()
        try:
            payload = {**payload, "version": registry.resolve(payload["version"]).version}
        except VersionNotFound as exc:
            raise UserError(str(exc), hint=f"`unity-mlops models list` shows the versions in {registry.root}; a "
                                           "version is its full name or ASSET@ALIAS (e.g. navagent@production)") \
                from None
    return payload


def _promote(ctx: Context, p: dict[str, Any]) -> dict[str, Any]:
    outcome = ctx.governance().promote(p["version"], p["to"], reason=p.get("reason", ""), actor=ctx.actor)
    if ctx.runtime is not None and p["to"] == "staging":  # the runtime gated this call: record the fact it makes
        ctx.runtime.record_staged(p["version"])
    return {"alias": p["to"], "from": outcome.entry.from_version, "to": outcome.entry.to_version,
            "ledger_seq": outcome.entry.seq, "actor": ctx.actor, "gates": [g.to_dict() for g in outcome.report.results]}


def _promote_text(r: dict[str, Any]) -> str:
    lines = [f"PASS {g['gate']}: {g['message']}" for g in r["gates"]]
    return "\n".join([*lines, f"{r['alias']}: {r['from'] or '-'} -> {r['to']} (ledger #{r['ledger_seq']})"])


PROMOTE = Action(
    "model.promote", "move the staging or production alias to a version (behind gates)",
    bundled_schema("model.promote"), _promote, _promote_text, prepare=_version_ref,
    commands=(Command("models", "promote", positionals=("version",), page="asset",
                      help="move the staging or production alias to a version (behind gates): to staging, the ONNX "
                           "contract gate; to production, the version must hold staging and the reward, safety, "
                           "reproducibility and contract gates must pass against production (exit 4 when one "
                           "blocks it)",
                      options=(("--gates", {"help": "gate settings file (YAML/JSON): seeds, episodes_per_seed, "
                                                     "thresholds ..."}),
                               ("--reproducibility", {"choices": ("auto", "reevaluate", "retrain", "off"),
                                                      "help": "auto (default): retrain the candidate's job with "
                                                              "further seeds where it has one"}))),))


def _current_production(ctx: Context, payload: dict[str, Any]) -> dict[str, Any]:
    """The rollback's version is the one production holds now (the front ends name only the asset)."""
    if "version" in payload:
        return payload
    registry = ctx.app.registry()
    held = registry.ledger.aliases(registry.asset_name_for(payload.get("asset", "")))
    return {**payload, **({"version": held["production"]} if "production" in held else {})}


def _rollback(ctx: Context, p: dict[str, Any]) -> dict[str, Any]:
    e = ctx.governance().rollback(p["asset"], reason=p["reason"], corrective_action=p.get("corrective_action", ""),
                                  actor=ctx.actor)
    return {"asset": e.asset_name, "from": e.from_version, "to": e.to_version, "ledger_seq": e.seq, "frozen": True}


ROLLBACK = Action(
    "model.rollback", "re-point production to the last known-good version", bundled_schema("model.rollback"),
    _rollback, lambda r: (f"production: {r['from']} -> {r['to']}; incident recorded; {r['asset']} is frozen until "
                          f"`unity-mlops models unfreeze {r['asset']}`"),
    prepare=_current_production, filled=("version",),
    commands=(Command("models", "rollback", positionals=("asset",), page="asset",
                      defaults={"reason": "rolled back from the dashboard"},
                      help="re-point production to the last known-good version; records an incident and freezes "
                           "the asset"),))


def _freeze(ctx: Context, p: dict[str, Any]) -> dict[str, Any]:
    gov = ctx.governance()
    e = (gov.freeze if p["frozen"] else gov.unfreeze)(p["asset"], p["reason"], actor=ctx.actor)
    return {"asset": e.asset_name, "action": e.action, "ledger_seq": e.seq}


FREEZE = Action(
    "model.freeze", "freeze or unfreeze promotions of an asset", bundled_schema("model.freeze"), _freeze,
    lambda r: f"{r['asset']}: {r['action']} (ledger #{r['ledger_seq']})",
    commands=(Command("models", "freeze", positionals=("asset",), presets={"frozen": True},
                      defaults={"reason": "freeze"}, page="asset", help="block promotions of an asset"),
              Command("models", "unfreeze", positionals=("asset",), presets={"frozen": False},
                      defaults={"reason": "unfreeze"}, page="asset", help="allow promotions again")))


def _pause(ctx: Context, p: dict[str, Any]) -> dict[str, Any]:
    from ..scheduler.scheduler import utc_now

    store = ctx.state_store()
    store.get_schedule(p["schedule_id"])  # an unknown schedule is an error, not a silent no-op
    store.set_paused(p["schedule_id"], p["paused"], utc_now())
    return {"schedule_id": p["schedule_id"], "paused": p["paused"], "actor": ctx.actor}


PAUSE = Action(
    "schedule.pause", "pause or resume a schedule (no catch-up burst on resume)", bundled_schema("schedule.pause"),
    _pause, lambda r: f"{r['schedule_id']}: {'paused' if r['paused'] else 'resumed'} by {r['actor']}",
    commands=(Command("schedule", "pause", positionals=("schedule_id",), presets={"paused": True}, page="schedules",
                      help="pause a schedule (no catch-up burst on resume)"),
              Command("schedule", "resume", positionals=("schedule_id",), presets={"paused": False},
                      page="schedules", help="resume a paused schedule from now")))


def _trigger(ctx: Context, p: dict[str, Any]) -> dict[str, Any]:
    from ..errors import UserError
    from ..scheduler.scheduler import trigger_now, utc_now

    store, now = ctx.state_store(), utc_now()
    if ctx.config is not None:  # the command line names the config: its schedule may not be in the store yet
        spec = next((s for s in ctx.config.schedules if s.schedule_id == p["schedule_id"]), None)
        if spec is None:
            raise UserError(f"schedule {p['schedule_id']!r} is not in the scheduler config")
        store.insert_schedule_if_absent(spec.schedule_id, spec.model_dump(mode="json"), now)
    return {"queued": trigger_now(store, p["schedule_id"], now), "actor": ctx.actor}


TRIGGER = Action(
    "schedule.trigger", "queue a run of a schedule's assets now",
    {"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object", "additionalProperties": False,
     "required": ["schedule_id"],
     "properties": {"schedule_id": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"}}},
    _trigger, lambda r: "\n".join(f"queued {j}" for j in r["queued"]),
    commands=(Command("schedule", "trigger", positionals=("schedule_id",), page="schedules",
                      help="queue a run of a schedule's assets now"),))


def _replay(ctx: Context, p: dict[str, Any]) -> dict[str, Any]:
    from ..webhooks.outbox import WebhookOutbox

    if ctx.config is not None:  # with the config's endpoints: it may send now
        outbox = ctx.config.outbox(ctx.state_store().dir)
    else:  # no endpoints: it only re-queues, it never sends
        outbox = WebhookOutbox(ctx.app.paths.outbox, database=ctx.app.paths.database)
    n = outbox.replay(p.get("id"))
    counts = None
    if p.get("send"):
        outbox.deliver_due()
        counts = outbox.counts()
    return {"queued": n, "actor": ctx.actor, "counts": counts}


REPLAY = Action(
    "webhook.replay", "queue dead webhook deliveries again (same webhook-id)",
    {"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object", "additionalProperties": False,
     "properties": {"id": {"type": "string", "maxLength": 200, "description": "only this webhook-id"},
                    "send": {"type": "boolean", "description": "attempt delivery now"}}},
    _replay, lambda r: (f"{r['queued']} dead delivery(ies) queued again by {r['actor']}; the scheduler (or the next "
                        "job) sends them with their original webhook-id"
                        + (f"\n{json.dumps(r['counts'])}" if r["counts"] is not None else "")),
    commands=(Command("webhooks", "replay", page="webhooks", help="queue dead deliveries again (same webhook-id)"),))


def _register(ctx: Context, p: dict[str, Any]) -> dict[str, Any]:
    """Only an ML-Agents policy is registered, and only one that fits the asset's behavior: the contract of its
    latest version (whose behavior.json the new version inherits)."""
    from ..behavior.definition import BehaviorDefinition
    from ..evaluation.onnx_policy import OnnxPolicy
    from ..registry.base import RegistrationRequest

    registry = ctx.app.registry()
    policy = OnnxPolicy(p["model_path"])  # ContractError: not a loadable ML-Agents policy
    files = {}
    previous = registry.list(p["asset_name"])
    behavior = previous[-1].model_path.parent / "behavior.json" if previous else None
    if behavior is not None and behavior.is_file():
        problems = policy.check_against(BehaviorDefinition.from_dict(json.loads(behavior.read_text())))
        if problems:
            raise ValueError(f"{p['model_path']} does not fit {p['asset_name']}'s behavior (as of "
                             f"{previous[-1].version}): " + "; ".join(problems))
        files["behavior.json"] = behavior
    v = registry.register(RegistrationRequest(
        asset_id=p["asset_id"], asset_name=p["asset_name"], behavior_name=p["behavior_name"],
        job_id=p.get("job_id", "control-plane"), model_path=Path(p["model_path"]), files=files))
    return {"version": v.version, "model_path": str(v.model_path), "contract": policy.contract.to_dict()}


REGISTER = Action("model.register", "register an existing ONNX policy as a new immutable version",
                  bundled_schema("model.register"), _register)


def _run_job(ctx: Context, p: dict[str, Any]) -> dict[str, Any]:
    from ..pipeline.orchestrator import UnityMLOpsOrchestrator
    from ..specs import TrainingJob

    orch = UnityMLOpsOrchestrator(ctx.app.paths.workspace, registry=ctx.app.paths.registry, show_progress=False)
    result = orch.execute_training_job_sync(TrainingJob.model_validate(p))
    return result.model_dump(mode="json", exclude={"log_tail"})


RUN_JOB = Action("training.run_job", "run a training job (generate, build, train, evaluate, register)",
                 bundled_schema("training.run_job"), _run_job)


def _grant(ctx: Context, p: dict[str, Any]) -> dict[str, Any]:
    """An agent can only pass on an approval a human signed; it cannot make one."""
    from ..controlplane.keys import verify_signature
    from ..controlplane.runtime import approval_message

    a = p["approval"]
    if not verify_signature(a["approver_key"], approval_message(a["subject"], a["expires_at"], a["nonce"]),
                            a["signature"]):
        raise ValueError("the approval's signature does not verify; nothing was recorded")
    ev = ctx.runtime.record_approval(a)
    return {"approval_id": a["approval_id"], "approver": ev["payload"]["approver"], "expires_at": a["expires_at"],
            "seq": ev["seq"]}


GRANT = Action("approval.grant", "record an approval an approver signed (the control plane's, over MCP)",
               bundled_schema("approval.grant"), _grant)
