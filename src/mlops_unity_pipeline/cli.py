"""`unity-mlops`: the command line. User mistakes print one clear message (no traceback) and exit non-zero.

Heavy imports (onnxruntime, pydantic models, the orchestrator) happen inside the commands, so `--help` is fast.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from . import __version__
from .errors import UserError

EPILOG = """examples:
  unity-mlops trainer setup                 create the ML-Agents trainer environment (once)
  unity-mlops train examples/reach_target_job.yaml
  unity-mlops models list
  tensorboard --logdir ./runs

environment:
  UNITY_MLOPS_WORKSPACE    workspace root for jobs (default ./runs)
  UNITY_MLOPS_REGISTRY     local registry root (default <workspace>/_registry)
  UNITY_MLOPS_TRAINER_ENV  trainer environment location (default: in the user cache)
  UNITY_BUILD_COMMAND      build a real Unity player instead of the headless player
  MLAGENTS_TRAIN_COMMAND   run this instead of the managed mlagents-learn
"""


def _cmd_train(args: argparse.Namespace) -> int:
    from .pipeline.orchestrator import UnityMLOpsOrchestrator
    from .specs import load_job

    job = load_job(args.job)
    if args.job_id:
        job = job.model_copy(update={"job_id": args.job_id})
    if args.vertex_project:
        from .specs import VertexSettings

        job = job.model_copy(update={"vertex": VertexSettings(project=args.vertex_project,
                                                              region=args.vertex_region or "us-central1",
                                                              bucket=args.vertex_bucket)})
    orch = UnityMLOpsOrchestrator(args.workspace, registry_root=args.registry, evaluation_episodes=args.episodes,
                                  show_progress=not args.quiet)
    result = orch.execute_training_job_sync(job)
    if result.succeeded:
        ev = result.metrics.get("evaluation", {}).get("model", {})
        print(f"model version: {result.model_version}")
        if ev:
            print(f"evaluation: success {ev['success_rate']:.1%} over {ev['episodes']} held-out episodes, "
                  f"mean reward {ev['mean_reward']:.3f}")
        print(f"Training complete: {result.trained_model_path}")
        return 0
    print(f"job {result.job_id} {result.status} in stage {result.failed_stage}: {result.error}", file=sys.stderr)
    if result.log_tail:
        print("--- log tail ---\n" + result.log_tail, file=sys.stderr)
    print(f"artifacts kept in {result.artifacts.get('workspace')}", file=sys.stderr)
    return 1


def _cmd_trainer_setup(args: argparse.Namespace) -> int:
    from .trainer.environment import setup

    env = setup(args.path, python=args.python, force=args.force)
    print(env.path)
    return 0


def _cmd_trainer_check(args: argparse.Namespace) -> int:
    from .trainer.environment import TrainerEnvironment, default_env_path

    info = TrainerEnvironment((args.path or default_env_path()).resolve()).check()
    for k in ("path", "python", "mlagents", "mlagents_envs", "torch", "numpy", "google.protobuf", "grpc", "onnx"):
        print(f"{k:16} {info.get(k)}")
    print("ok: the ML-Agents trainer environment is ready")
    return 0


def _definition(spec_path: str):
    from .behavior.definition import BehaviorError, build_behavior
    from .specs import load_asset_spec

    spec = load_asset_spec(spec_path)
    try:
        return spec, build_behavior(
            behavior_name=spec.effective_behavior_name, asset_type=spec.asset_type, description=spec.description,
            observation_space=spec.observation_space, action_space=spec.action_space, archetype=spec.archetype,
        )
    except BehaviorError as exc:
        raise UserError(f"{spec_path}: {exc}") from None


def _cmd_behavior_show(args: argparse.Namespace) -> int:
    _, d = _definition(args.spec)
    print(d.to_json())
    return 0


def _cmd_generate(args: argparse.Namespace) -> int:
    from .generate.base import TemplateGenerator
    from .specs import RLTrainingConfig, load_document, parse_model

    spec, d = _definition(args.spec)
    doc = load_document(args.spec)
    config = parse_model(RLTrainingConfig, doc.get("rl_config", {}), args.spec) if "asset_spec" in doc \
        else RLTrainingConfig()
    out = TemplateGenerator().generate(spec, d, config, Path(args.out))
    for path in out.as_dict().values():
        print(path)
    return 0


def _cmd_build(args: argparse.Namespace) -> int:
    from .player.build import build_headless_player
    from .trainer.environment import resolve

    out = args.out or args.mlagents_build_output_path
    if not out:
        raise UserError("missing --out DIR", hint="say where to write the headless player")
    _, d = _definition(args.spec)
    python = Path(args.python) if args.python else resolve().python
    print(build_headless_player(d, Path(out), python, args.agents))
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from .evaluation.evaluate import HELD_OUT_SEED, evaluate_onnx
    from .evaluation.onnx_policy import ContractError

    _, d = _definition(args.spec)
    try:
        model, baseline = evaluate_onnx(args.model, d, args.episodes, args.seed or HELD_OUT_SEED)
    except ContractError as exc:
        raise UserError(str(exc)) from None
    print(json.dumps({"model": model.to_dict(), "random_baseline": baseline.to_dict()}, indent=2))
    return 0


def _cmd_demos_record(args: argparse.Namespace) -> int:
    from .demos.record import record_demonstrations

    _, d = _definition(args.spec)
    s = record_demonstrations(d, args.episodes, Path(args.out), seed=args.seed)
    print(f"wrote {s.path}: behavior {d.behavior_name}, {s.episodes} episodes, {s.steps} steps, "
          f"mean reward {s.mean_reward:.3f}, expert success {s.success_rate:.1%}")
    return 0


def _cmd_demos_show(args: argparse.Namespace) -> int:
    from .demos.demofile import DemoError, read_demos

    try:
        demos = read_demos(args.path)
    except DemoError as exc:
        raise UserError(str(exc)) from None
    for d in demos:
        parts = ([f"continuous {d.continuous_size}"] if d.continuous_size else []) + \
            ([f"discrete {list(d.branches)}"] if d.branches else [])
        actions = " + ".join(parts) or "none"
        print(f"{d.path}: behavior {d.behavior_name!r}, {d.number_steps} steps, {d.number_episodes} episodes, "
              f"mean reward {d.mean_reward:.4f}, observations {d.observation_shapes}, actions {actions}")
    return 0


def _registry(args: argparse.Namespace):
    from .pipeline.orchestrator import DEFAULT_WORKSPACE, REGISTRY_DIRNAME
    from .registry.local import LocalModelRegistry

    root = args.registry or os.environ.get("UNITY_MLOPS_REGISTRY") or (
        Path(os.environ.get("UNITY_MLOPS_WORKSPACE", DEFAULT_WORKSPACE)) / REGISTRY_DIRNAME)
    return LocalModelRegistry(root)


def _get_version(args: argparse.Namespace):
    from .registry.base import VersionNotFound

    try:
        return _registry(args).get(args.version)
    except VersionNotFound as exc:
        raise UserError(str(exc), hint="`unity-mlops models list` shows the registered versions") from None


def _cmd_models_list(args: argparse.Namespace) -> int:
    versions = _registry(args).list(args.asset)
    if not versions:
        print("no models registered")
        return 0
    print(f"{'VERSION':48} {'JOB':24} {'SUCCESS':>8} CREATED")
    for v in versions:
        ev = (v.metrics.get("evaluation") or {}).get("model") or {}
        success = f"{ev['success_rate']:.1%}" if "success_rate" in ev else "-"
        print(f"{v.version:48} {v.job_id:24} {success:>8} {v.created_at[:19]}")
    return 0


def _cmd_models_show(args: argparse.Namespace) -> int:
    print(json.dumps(_get_version(args).to_dict(), indent=2, sort_keys=True))
    return 0


def _governance(args: argparse.Namespace):
    from .governance import GateConfig, Governance

    gates = GateConfig()
    if getattr(args, "gates", None):
        from .specs import load_document

        try:
            gates = GateConfig.from_dict(load_document(args.gates))
        except (TypeError, ValueError) as exc:
            raise UserError(f"{args.gates}: {exc}") from None
    if getattr(args, "reproducibility", None):
        gates.reproducibility = args.reproducibility
    registry = _registry(args)
    mirror = None
    from .specs import VertexSettings

    vertex = VertexSettings.from_environment()
    if vertex is not None:  # aliases follow the ledger in Vertex AI
        from .pipeline.orchestrator import vertex_registry

        mirror = vertex_registry(registry, vertex.project, vertex.region, vertex.bucket)
    hook = None
    if os.environ.get("UNITY_MLOPS_CONTROL_PLANE_BUNDLE"):  # consequential moves go through the control plane
        from .governance.service import ApprovalHook

        hook = ApprovalHook(_control_plane(args))
    retrain = None
    if gates.reproducibility in ("auto", "retrain"):  # training is possible wherever the pipeline runs
        from .governance.retrain import Retrainer

        workspace = getattr(args, "workspace", None) or os.environ.get("UNITY_MLOPS_WORKSPACE", "runs")
        retrain = Retrainer(workspace)
    return Governance(registry, gates, mirror=mirror, approval_hook=hook, retrain=retrain)


def _control_plane(args: argparse.Namespace):
    from .controlplane.runtime import DEFAULT_BUNDLE, BundleError, ControlPlaneRuntime
    from .pipeline.orchestrator import DEFAULT_WORKSPACE, STATE_DIRNAME

    bundle = getattr(args, "bundle", None) or os.environ.get("UNITY_MLOPS_CONTROL_PLANE_BUNDLE") or DEFAULT_BUNDLE
    workspace = getattr(args, "workspace", None) or os.environ.get("UNITY_MLOPS_WORKSPACE", DEFAULT_WORKSPACE)
    events = getattr(args, "events", None) or os.environ.get("UNITY_MLOPS_CONTROL_PLANE_EVENTS") or (
        Path(workspace) / STATE_DIRNAME / "control-plane.jsonl")
    rt = ControlPlaneRuntime(bundle, getattr(args, "schemas", None), events)
    try:
        rt.load_bundle()
        rt.compile_schemas()
    except BundleError as exc:
        raise UserError(str(exc)) from None
    from .controlplane.keys import KeyFileError, read_public

    try:
        keys = [read_public(k) for k in getattr(args, "operator_pub", None) or []]
        key_file = getattr(args, "operator_key", None)
        if key_file:
            from .controlplane.keys import load_private, public_key_text

            keys.append(public_key_text(load_private(key_file)))
    except KeyFileError as exc:
        raise UserError(str(exc)) from None
    rt.use_checkpoints(getattr(args, "checkpoints", None) or os.environ.get("UNITY_MLOPS_CHECKPOINTS"), keys)
    return rt


def _cmd_cp_serve(args: argparse.Namespace) -> int:
    import asyncio

    from .controlplane.mcp_server import PipelineActions, serve_stdio

    rt = _control_plane(args)
    workspace = args.workspace or os.environ.get("UNITY_MLOPS_WORKSPACE", "runs")
    asyncio.run(serve_stdio(rt, PipelineActions(rt, workspace)))
    return 0


def _cmd_cp_verify(args: argparse.Namespace) -> int:
    from .controlplane.eventlog import IntegrityError

    rt = _control_plane(args)
    expect = None
    if args.expect_head:
        seq, _, head = args.expect_head.partition(":")
        if not seq.isdigit() or len(head) != 64:
            raise UserError(f"--expect-head {args.expect_head!r} is not SEQ:HASH",
                            hint="copy it from a previous `verify` or `checkpoint` output, e.g. 120:3fa9...")
        expect = (int(seq), head)
    try:
        info = rt.events.verify(expect_head=expect, checkpoints=rt.events.checkpoints)
    except IntegrityError as exc:
        print(f"TAMPERED OR CORRUPT: {exc}", file=sys.stderr)
        return 1
    print(f"ok: {info['events']} events, hash chain intact, {info['checkpoints']} signed checkpoint(s) hold, "
          f"head {info['events']}:{info['head']}")
    return 0


def _cmd_cp_keygen(args: argparse.Namespace) -> int:
    from platformdirs import user_config_dir

    from .controlplane.keys import KeyFileError, generate

    try:
        path, pub = generate(args.dir or Path(user_config_dir("unity-mlops")) / "keys", args.name)
    except KeyFileError as exc:
        raise UserError(str(exc)) from None
    print(f"private key {path} (keep it; mode 0600)\npublic key  {pub}")
    return 0


def _cmd_cp_checkpoint(args: argparse.Namespace) -> int:
    from .controlplane.keys import KeyFileError, load_private

    rt = _control_plane(args)
    try:
        key = load_private(args.operator_key)
    except KeyFileError as exc:
        raise UserError(str(exc)) from None
    cp = rt.events.checkpoints.sign(rt.events, key)
    print(f"checkpoint {cp['seq']}:{cp['head']} signed into {rt.events.checkpoints.path}")
    return 0


def _cmd_cp_check(args: argparse.Namespace) -> int:
    rt = _control_plane(args)
    print(f"ok: bundle {rt.bundle_path} ({len(rt.actions)} actions, digest {rt.bundle_digest[:16]})")
    return 0


def _cmd_cp_approve(args: argparse.Namespace) -> int:
    from .controlplane.keys import KeyFileError, load_private
    from .controlplane.runtime import UnknownAction

    rt = _control_plane(args)
    try:
        key = load_private(args.key)
        payload = json.loads(args.payload)
        approval = rt.sign_approval(args.action_id, payload, key, args.ttl, args.reason or "")
    except KeyFileError as exc:
        raise UserError(str(exc), hint="create one with `unity-mlops control-plane keygen NAME`") from None
    except (ValueError, UnknownAction) as exc:
        raise UserError(str(exc), hint="--ttl takes seconds, e.g. --ttl 3600") from None
    if args.sign_only:  # to hand to an agent, which records it with the approval.grant tool
        print(json.dumps({"approval": approval}))
        return 0
    ev = rt.record_approval(approval)
    print(f"approved {args.action_id} as {approval['approver']}: {approval['approval_id']} "
          f"(expires {approval['expires_at']}, seq {ev['seq']})")
    return 0


def _cmd_cp_assert(args: argparse.Namespace) -> int:
    rt = _control_plane(args)
    try:
        ev = rt.assert_fact(args.fact, not args.false, args.subject, args.ttl, args.reason or "")
    except KeyError as exc:
        raise UserError(str(exc)) from None
    except ValueError as exc:
        raise UserError(str(exc), hint="--ttl takes seconds, e.g. --ttl 86400") from None
    print(f"{args.fact}={not args.false} for {args.subject} (seq {ev['seq']})")
    return 0


def _governance_call(fn):
    from .governance import GovernanceError, PromotionBlocked

    try:
        return fn()
    except PromotionBlocked as exc:
        print(str(exc), file=sys.stderr)
        raise SystemExit(4) from None
    except GovernanceError as exc:
        raise UserError(str(exc)) from None


def _cmd_models_promote(args: argparse.Namespace) -> int:
    gov = _governance(args)
    _get_version(args)
    outcome = _governance_call(lambda: gov.promote(args.version, args.to, reason=args.reason or ""))
    for g in outcome.report.results:
        print(f"PASS {g.name}: {g.message}")
    print(f"{args.to}: {outcome.entry.from_version or '-'} -> {outcome.entry.to_version} (ledger #{outcome.entry.seq})")
    return 0


def _cmd_models_rollback(args: argparse.Namespace) -> int:
    gov = _governance(args)
    e = _governance_call(lambda: gov.rollback(args.asset, reason=args.reason,
                                              corrective_action=args.corrective_action or ""))
    print(f"production: {e.from_version} -> {e.to_version}; incident recorded; {e.asset_name} is frozen until "
          f"`unity-mlops models unfreeze {e.asset_name}`")
    return 0


def _cmd_models_freeze(args: argparse.Namespace) -> int:
    gov = _governance(args)
    fn = gov.freeze if args.models_command == "freeze" else gov.unfreeze
    e = fn(args.asset, args.reason or args.models_command)
    print(f"{e.asset_name}: {e.action} (ledger #{e.seq})")
    return 0


def _cmd_models_history(args: argparse.Namespace) -> int:
    from .governance import Ledger

    ledger = Ledger(_registry(args))
    aliases = ledger.aliases(args.asset)
    print(f"staging: {aliases.get('staging', '-')}   production: {aliases.get('production', '-')}"
          + (f"   FROZEN ({ledger.frozen(args.asset)['reason']})" if ledger.frozen(args.asset) else ""))
    for e in ledger.history(args.asset):
        moved = f"{e.alias}: {e.from_version or '-'} -> {e.to_version or '-'}" if e.alias else ""
        print(f"#{e.seq:<4} {e.at[:19]} {e.actor:12} {e.action:18} {moved}  {e.reason}")
    for i in ledger.incidents(args.asset):
        print(f"incident #{i['id']} {i['opened_at'][:19]}: {i['failed_version']} rolled back to "
              f"{i['restored_version']}: {i['reason']}; corrective action: {i['corrective_action'] or '-'}")
    return 0


def _cmd_models_sync(args: argparse.Namespace) -> int:
    from .governance import Ledger
    from .pipeline.orchestrator import vertex_registry

    project = os.environ.get("UNITY_MLOPS_VERTEX_PROJECT")
    if not project:
        raise UserError("models sync compares the local ledger with Vertex AI: set UNITY_MLOPS_VERTEX_PROJECT")
    registry = _registry(args)
    report = vertex_registry(registry, project).sync_report(args.asset, Ledger(registry).aliases(args.asset))
    print(json.dumps(report, indent=2))
    return 1 if report["drift"] else 0


def _cmd_models_report(args: argparse.Namespace) -> int:
    from .governance.report import write_report

    _get_version(args)
    md = write_report(_registry(args), args.version, Path(args.out) if args.out else None)
    print(md)
    return 0


def _cmd_models_path(args: argparse.Namespace) -> int:
    print(_get_version(args).model_path)
    return 0


def _scheduler_parts(args: argparse.Namespace):
    from .scheduler.config import load_scheduler_config
    from .scheduler.store import StateStore

    cfg = load_scheduler_config(args.config)
    state_dir = Path(args.state_dir) if getattr(args, "state_dir", None) else cfg.resolved_state_dir()
    return cfg, StateStore(state_dir)


def _cmd_schedule_run(args: argparse.Namespace) -> int:
    import asyncio

    from .pipeline.orchestrator import UnityMLOpsOrchestrator
    from .scheduler.scheduler import TrainingScheduler

    cfg, store = _scheduler_parts(args)
    outbox = cfg.outbox(store.dir)
    orch = UnityMLOpsOrchestrator(cfg.workspace, webhooks=outbox, show_progress=False, vertex=cfg.vertex)
    port = args.health_port if args.health_port is not None else cfg.health.port
    if port is None and os.environ.get("UNITY_MLOPS_HEALTH_PORT"):
        port = int(os.environ["UNITY_MLOPS_HEALTH_PORT"])
    sched = TrainingScheduler(orch, state_dir=store.dir, poll_interval_s=cfg.poll_interval_s,
                              max_concurrent_jobs=cfg.max_concurrent_jobs, grace_period_s=cfg.grace_period_s,
                              health_port=port, health_host=cfg.health.host)
    for schedule in cfg.schedules:
        sched.add_schedule(schedule)
    asyncio.run(sched.run_forever())
    return 0


def _cmd_schedule_run_once(args: argparse.Namespace) -> int:
    from .pipeline.orchestrator import UnityMLOpsOrchestrator
    from .scheduler.scheduler import job_id_for, utc_now
    from .specs import TrainingJob

    cfg, store = _scheduler_parts(args)
    spec = next((s for s in cfg.schedules if s.schedule_id == args.schedule_id), None)
    if spec is None:
        raise UserError(f"schedule {args.schedule_id!r} is not in {args.config}")
    outbox = cfg.outbox(store.dir)
    orch = UnityMLOpsOrchestrator(cfg.workspace, webhooks=outbox, show_progress=False, vertex=cfg.vertex)
    slot = utc_now().replace(second=0, microsecond=0)
    k8s_job = os.environ.get("UNITY_MLOPS_K8S_JOB_NAME", "").strip()  # stable across pod retries: resume
    failed = 0
    for asset in spec.asset_specs:
        job_id = f"{k8s_job}-{asset.asset_id}" if k8s_job else job_id_for(spec.schedule_id, asset.asset_id, slot)
        job = TrainingJob(job_id=job_id, asset_spec=asset, rl_config=spec.rl_config, timeout_s=spec.job_timeout_s)
        # a retried pod is the same run: it resumes, or only finishes the bookkeeping if it had registered
        result = orch.execute_training_job_sync(job, run_key=f"run-once:{job_id}")
        print(f"{job_id}: {result.status} {result.model_version or result.error or ''}")
        failed += not result.succeeded
    outbox.close(10.0)
    return 1 if failed else 0


def _cmd_schedule_list(args: argparse.Namespace) -> int:
    _, store = _scheduler_parts(args)
    schedules = store.list_schedules()
    if not schedules:
        print("no schedules in the state store yet (they are added when `schedule run` starts)")
    for s in schedules:
        spec = s["spec"]
        state = "paused" if s["paused"] else ("enabled" if spec.get("enabled", True) else "disabled")
        nxt = s["next_fire"].isoformat() if s["next_fire"] else "-"
        print(f"{s['schedule_id']:32} {spec['cron_expression']:16} {spec.get('timezone', 'UTC'):18} {state:9} "
              f"next {nxt}")
        for run in store.runs_for(s["schedule_id"], limit=args.runs):
            print(f"    {run.slot.isoformat()}  {run.asset_id:16} {run.status:11} attempts={run.attempts} "
                  f"{run.model_version or run.error or ''}")
    return 0


def _cmd_schedule_pause(args: argparse.Namespace) -> int:
    from .scheduler.scheduler import utc_now

    _, store = _scheduler_parts(args)
    store.set_paused(args.schedule_id, args.schedule_command == "pause", utc_now())
    print(f"{args.schedule_id}: {'paused' if args.schedule_command == 'pause' else 'resumed'}")
    return 0


def _cmd_schedule_trigger(args: argparse.Namespace) -> int:
    from .scheduler.scheduler import trigger_now, utc_now

    cfg, store = _scheduler_parts(args)
    now = utc_now()
    spec = next((s for s in cfg.schedules if s.schedule_id == args.schedule_id), None)
    if spec is None:
        raise UserError(f"schedule {args.schedule_id!r} is not in {args.config}")
    store.insert_schedule_if_absent(spec.schedule_id, spec.model_dump(mode="json"), now)
    for job_id in trigger_now(store, args.schedule_id, now):
        print(f"queued {job_id}")
    return 0


def _cmd_webhooks(args: argparse.Namespace) -> int:

    cfg, store = _scheduler_parts(args)
    outbox = cfg.outbox(store.dir)
    if args.webhooks_command == "replay":
        n = outbox.replay(args.id)
        print(f"{n} dead delivery(ies) queued again; the scheduler (or the next job) sends them")
        if args.send:
            outbox.deliver_due()
            print(json.dumps(outbox.counts()))
        return 0
    print(json.dumps({"counts": outbox.counts(), "dead": outbox.dead_letters()}, indent=2))
    return 0


def _cmd_k8s_render(args: argparse.Namespace) -> int:
    from .deploy.kubernetes import dump_manifests, render_manifests, validate_manifests
    from .scheduler.config import load_scheduler_config

    cfg = load_scheduler_config(args.config)  # rendering writes nothing but the output
    docs = render_manifests(cfg, args.config, args.mode)
    if args.validate:
        problems = validate_manifests(docs, cfg.kubernetes.kubernetes_version)
        if problems:
            raise UserError("rendered manifests do not validate:\n  " + "\n  ".join(problems))
    text = dump_manifests(docs)
    if args.out:
        Path(args.out).write_text(text)
        print(f"wrote {len(docs)} manifests to {args.out}")
    else:
        print(text, end="")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="unity-mlops", description="Train, evaluate and register Unity ML-Agents models from a plain spec.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"unity-mlops {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    t = sub.add_parser("train", help="run one training job (generate, build, train, evaluate, register)",
                       description="Run a training job from a YAML/JSON file with keys job_id, asset_spec, "
                                   "rl_config (as in the Python API). Exits 1 if the job fails.")
    t.add_argument("job", help="job file (YAML or JSON)")
    t.add_argument("--job-id", help="override the job_id from the file")
    t.add_argument("--workspace", help="workspace root (default: $UNITY_MLOPS_WORKSPACE or ./runs)")
    t.add_argument("--registry", help="local registry root (default: <workspace>/_registry)")
    t.add_argument("--episodes", type=int, default=500, help="held-out evaluation episodes (default 500)")
    t.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    t.add_argument("--vertex-project", help="also register in Vertex AI (default: the job file's `vertex:`, else "
                                            "$GOOGLE_CLOUD_PROJECT; UNITY_MLOPS_VERTEX=off keeps models local)")
    t.add_argument("--vertex-region", help="Vertex AI region (default $VERTEX_REGION or us-central1)")
    t.add_argument("--vertex-bucket", help="gs:// bucket for the artifacts (default <project>-mlops-unity-models)")
    t.set_defaults(func=_cmd_train)

    tr = sub.add_parser("trainer", help="manage the isolated ML-Agents trainer environment",
                        description="ML-Agents 1.1.0 runs in its own virtual environment (it pins old protobuf "
                                    "and numpy). Location: --path, $UNITY_MLOPS_TRAINER_ENV, or the user cache.")
    trs = tr.add_subparsers(dest="trainer_command", metavar="ACTION", required=True)
    s = trs.add_parser("setup", help="create the trainer environment (idempotent)",
                       description="Create the trainer environment from the lock file shipped with the package. "
                                   "Does nothing if it is already complete.")
    s.add_argument("--path", type=Path, help="where to create it")
    s.add_argument("--python", help="a CPython 3.10/3.11 to build it from ($UNITY_MLOPS_TRAINER_PYTHON)")
    s.add_argument("--force", action="store_true", help="rebuild even if it looks complete")
    s.set_defaults(func=_cmd_trainer_setup)
    c = trs.add_parser("check", help="verify the trainer environment and print versions",
                       description="Import the trainer in its environment; fail with what is missing.")
    c.add_argument("--path", type=Path, help="environment location")
    c.set_defaults(func=_cmd_trainer_check)

    b = sub.add_parser("behavior", help="inspect the behavior derived from an asset spec")
    bs = b.add_subparsers(dest="behavior_command", metavar="ACTION", required=True)
    show = bs.add_parser("show", help="print the behavior definition (archetype, observations, actions)",
                         description="Print the behavior definition derived from an asset spec (or job) file.")
    show.add_argument("spec", help="asset spec or job file")
    show.set_defaults(func=_cmd_behavior_show)

    g = sub.add_parser("generate", help="write the trainer YAML and the C# Agent for an asset spec",
                       description="Write trainer_config.yaml, <Behavior>Agent.cs and behavior.json.")
    g.add_argument("spec", help="asset spec or job file")
    g.add_argument("--out", required=True, help="output directory")
    g.set_defaults(func=_cmd_generate)

    bu = sub.add_parser("build", help="build the headless player for an asset spec",
                        description="Build the headless player (what `mlagents-learn --env` launches).")
    bu.add_argument("spec", help="asset spec or job file")
    bu.add_argument("--out", help="output directory")
    bu.add_argument("--mlagents-build-output-path", help=argparse.SUPPRESS)
    bu.add_argument("--mlagents-build-target", help=argparse.SUPPRESS)
    bu.add_argument("-logFile", "--log-file", dest="log_file", help=argparse.SUPPRESS)
    bu.add_argument("--agents", type=int, default=32, help="agents per player process (default 32)")
    bu.add_argument("--python", help="Python that runs the player (default: the trainer environment's)")
    bu.set_defaults(func=_cmd_build)

    ev = sub.add_parser("evaluate", help="evaluate an ONNX policy on held-out simulator episodes",
                        description="Deterministic actions, batched, on held-out seeds; with a random baseline.")
    ev.add_argument("model", help="the .onnx file")
    ev.add_argument("--spec", required=True, help="asset spec or job file the model was trained for")
    ev.add_argument("--episodes", type=int, default=500)
    ev.add_argument("--seed", type=int, default=None, help="evaluation seed (default: the held-out seed)")
    ev.set_defaults(func=_cmd_evaluate)

    dm = sub.add_parser("demos", help="demonstrations (.demo files): record from the simulator, inspect")
    dms = dm.add_subparsers(dest="demos_command", metavar="ACTION", required=True)
    dr = dms.add_parser("record", help="record a scripted expert in the simulator as a Unity-style .demo",
                        description="The expert heads for the goal and steers away from obstacles seen by the rays.")
    dr.add_argument("spec", help="asset spec or job file")
    dr.add_argument("--episodes", type=int, default=200)
    dr.add_argument("--out", required=True, help="the .demo file to write")
    dr.add_argument("--seed", type=int, default=7)
    dr.set_defaults(func=_cmd_demos_record)
    dsh = dms.add_parser("show", help="print what a .demo file (or a directory of them) holds")
    dsh.add_argument("path")
    dsh.set_defaults(func=_cmd_demos_show)

    m = sub.add_parser("models", help="the local model registry")
    m.add_argument("--registry", help="registry root (default: $UNITY_MLOPS_REGISTRY or ./runs/_registry)")
    ms = m.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    ml = ms.add_parser("list", help="list registered versions")
    ml.add_argument("--asset", help="only this asset name")
    ml.set_defaults(func=_cmd_models_list)
    mshow = ms.add_parser("show", help="print a version's record (metrics, lineage, files)")
    mshow.add_argument("version")
    mshow.set_defaults(func=_cmd_models_show)
    mp = ms.add_parser("path", help="print the path of a version's ONNX model")
    mp.add_argument("version")
    mp.set_defaults(func=_cmd_models_path)
    mpr = ms.add_parser("promote", help="move the staging or production alias to a version (behind gates)",
                        description="To staging: the ONNX contract gate. To production: the version must hold "
                                    "staging, and the reward, safety, reproducibility and contract gates must pass "
                                    "against the current production version. Exit 4 when a gate blocks it.")
    mpr.add_argument("version")
    mpr.add_argument("--to", required=True, choices=("staging", "production"))
    mpr.add_argument("--reason", help="why (recorded in the ledger)")
    mpr.add_argument("--gates", help="gate settings file (YAML/JSON): seeds, episodes_per_seed, thresholds ...")
    mpr.add_argument("--reproducibility", choices=("auto", "reevaluate", "retrain", "off"),
                     help="auto (default): retrain the candidate's job with further seeds where it has one")
    mpr.set_defaults(func=_cmd_models_promote)
    mrb = ms.add_parser("rollback", help="re-point production to the last known-good version",
                        description="Moves production back, records an incident and freezes the asset.")
    mrb.add_argument("asset")
    mrb.add_argument("--reason", required=True)
    mrb.add_argument("--corrective-action", help="what will be done about it (incident record)")
    mrb.set_defaults(func=_cmd_models_rollback)
    for name, helptext in (("freeze", "block promotions of an asset"), ("unfreeze", "allow promotions again")):
        mf = ms.add_parser(name, help=helptext, description=helptext)
        mf.add_argument("asset")
        mf.add_argument("--reason")
        mf.set_defaults(func=_cmd_models_freeze)
    mh = ms.add_parser("history", help="aliases, the promotion ledger and incidents of an asset")
    mh.add_argument("asset")
    mh.set_defaults(func=_cmd_models_history)
    msy = ms.add_parser("sync", help="report drift between the local ledger and Vertex AI aliases",
                        description="Exit 1 when an alias differs. Needs UNITY_MLOPS_VERTEX_PROJECT.")
    msy.add_argument("asset")
    msy.set_defaults(func=_cmd_models_sync)
    mre = ms.add_parser("report", help="write the evaluation report and changelog of a version")
    mre.add_argument("version")
    mre.add_argument("--out", help="directory (default <registry>/reports/<version>)")
    mre.set_defaults(func=_cmd_models_report)

    sc = sub.add_parser("schedule", help="run training on cron schedules, 24/7",
                        description="The scheduler reads CONFIG.yaml (schedules, webhooks, health port) and keeps "
                                    "its state in <workspace>/_state (or --state-dir).")
    scs = sc.add_subparsers(dest="schedule_command", metavar="ACTION", required=True)
    for name, helptext in (("run", "run the scheduler until SIGTERM/SIGINT"),
                           ("list", "show schedules, next fire times and recent runs"),
                           ("pause", "pause a schedule (no catch-up burst on resume)"),
                           ("resume", "resume a paused schedule from now"),
                           ("trigger", "queue a run of a schedule's assets now"),
                           ("run-once", "run a schedule's assets once, now (what a CronJob pod does)")):
        cmd = scs.add_parser(name, help=helptext, description=helptext)
        cmd.add_argument("config", help="scheduler config (YAML/JSON)")
        cmd.add_argument("--state-dir", help="state store directory (default <workspace>/_state)")
        if name in ("pause", "resume", "trigger", "run-once"):
            cmd.add_argument("schedule_id")
        if name == "run":
            cmd.add_argument("--health-port", type=int, help="serve /healthz, /readyz, /metrics on this port")
        if name == "list":
            cmd.add_argument("--runs", type=int, default=5, help="recent runs to show per schedule")
        cmd.set_defaults(func={"run": _cmd_schedule_run, "list": _cmd_schedule_list, "pause": _cmd_schedule_pause,
                               "resume": _cmd_schedule_pause, "trigger": _cmd_schedule_trigger,
                               "run-once": _cmd_schedule_run_once}[name], timestamps=name in ("run", "run-once"))

    wh = sub.add_parser("webhooks", help="the webhook outbox: status, dead letters, replay")
    whs = wh.add_subparsers(dest="webhooks_command", metavar="ACTION", required=True)
    for name, helptext in (("list", "delivery counts and dead letters"),
                           ("replay", "queue dead deliveries again (same webhook-id)")):
        cmd = whs.add_parser(name, help=helptext, description=helptext)
        cmd.add_argument("config", help="scheduler config (for the endpoints and the state directory)")
        cmd.add_argument("--state-dir", help="state store directory (default <workspace>/_state)")
        if name == "replay":
            cmd.add_argument("--id", help="only this webhook-id")
            cmd.add_argument("--send", action="store_true", help="attempt delivery now")
        cmd.set_defaults(func=_cmd_webhooks)

    cp = sub.add_parser("control-plane", help="the fail-closed control plane (MCP tools, event log, approvals)",
                        description="Bundle: --bundle, $UNITY_MLOPS_CONTROL_PLANE_BUNDLE, or the shipped default. "
                                    "Events: --events, $UNITY_MLOPS_CONTROL_PLANE_EVENTS, or "
                                    "<workspace>/_state/control-plane.jsonl. "
                                    "Approvals are Ed25519 signatures by keys the bundle lists; the requester's "
                                    "key: $UNITY_MLOPS_IDENTITY_KEY.")
    cps = cp.add_subparsers(dest="cp_command", metavar="ACTION", required=True)
    for name, helptext in (("serve", "serve the actions as MCP tools over stdio"),
                           ("verify", "verify the event log's hash chain (exit 1 on any edit)"),
                           ("check", "load the bundle and compile its schemas (fail closed)"),
                           ("approve", "approve one exact action and payload, as this identity"),
                           ("assert", "record a fact (for example guardrails_ok) as this identity"),
                           ("keygen", "create an Ed25519 key pair (operator or approver)"),
                           ("checkpoint", "sign the log's current head with the operator key")):
        c = cps.add_parser(name, help=helptext, description=helptext)
        if name == "keygen":
            c.add_argument("name", help="key name: NAME.key and NAME.pub are written")
            c.add_argument("--dir", help="where (default: the user's config directory, keys/)")
            c.set_defaults(func=_cmd_cp_keygen)
            continue
        c.add_argument("--bundle", help="bundle YAML")
        c.add_argument("--schemas", help="schemas directory (default: next to the bundle)")
        c.add_argument("--events", help="event log (JSONL)")
        c.add_argument("--workspace", help="workspace root (the log is <workspace>/_state/control-plane.jsonl)")
        c.add_argument("--checkpoints", help="signed checkpoints file (default: in the user's state directory, "
                                             "outside the log's; or $UNITY_MLOPS_CHECKPOINTS)")
        c.add_argument("--operator-pub", action="append", help="a trusted operator public key (base64 or .pub "
                                                                "file; repeatable; the bundle's checkpoint_keys too)")
        if name == "verify":
            c.add_argument("--expect-head", help="SEQ:HASH kept from an earlier verify: the log must still hold it")
        if name == "checkpoint":
            c.add_argument("--operator-key", required=True, help="the operator's private key (NAME.key)")
        if name == "approve":
            c.add_argument("action_id")
            c.add_argument("--payload", required=True, help="the exact JSON arguments being approved")
            c.add_argument("--key", required=True, help="your Ed25519 private key (NAME.key from keygen); its public "
                                                        "key must be in the bundle's approval_policy.approvers")
            c.add_argument("--sign-only", action="store_true",
                           help="print the signed approval instead of recording it (for the approval.grant tool)")
            c.add_argument("--ttl", type=float, help="seconds until the approval expires")
            c.add_argument("--reason")
        if name == "assert":
            c.add_argument("fact")
            c.add_argument("--subject", default="*", help="what the fact is about (default: global)")
            c.add_argument("--ttl", type=float, help="seconds until the fact expires")
            c.add_argument("--false", action="store_true", help="record the fact as false")
            c.add_argument("--reason")
        c.set_defaults(func={"serve": _cmd_cp_serve, "verify": _cmd_cp_verify, "check": _cmd_cp_check,
                             "approve": _cmd_cp_approve, "assert": _cmd_cp_assert,
                             "checkpoint": _cmd_cp_checkpoint}[name])

    k8 = sub.add_parser("k8s", help="Kubernetes deployment")
    k8s = k8.add_subparsers(dest="k8s_command", metavar="ACTION", required=True)
    kr = k8s.add_parser("render", help="render manifests for a scheduler config",
                        description="A CronJob per schedule, a Deployment for the 24/7 scheduler, a PVC, a ConfigMap "
                                    "and a Secret template; validated against the official schemas with --validate.")
    kr.add_argument("config")
    kr.add_argument("--out", help="write to this file (default: stdout)")
    kr.add_argument("--validate", action="store_true", help="validate offline with kubernetes-validate (strict)")
    kr.add_argument("--mode", choices=("deployment", "cronjob"), default="deployment",
                    help="a 24/7 scheduler Deployment (default) or one CronJob per schedule")
    kr.set_defaults(func=_cmd_k8s_render)
    return p


INTEGRITY_EXIT = 4


def main(argv: list[str] | None = None) -> int:
    from .controlplane.eventlog import IntegrityError

    parser = build_parser()
    args = parser.parse_args(argv)
    from .logs import TIMESTAMPED, redacting

    # long-running processes (the scheduler) stamp their lines; every line has known secret values masked
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, stream=sys.stderr,
                        format=TIMESTAMPED if getattr(args, "timestamps", False) else "%(message)s")
    for handler in logging.getLogger().handlers:
        redacting(handler)
    if not args.verbose:  # a request line per webhook attempt is noise at INFO
        logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        rc = args.func(args)
        sys.stdout.flush()  # inside the try: a reader that went away is met here, not at interpreter exit
        return rc
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except IntegrityError as exc:  # fail closed, in one line: nothing was appended to a log that is not trusted
        print(f"error: the control-plane event log is not trusted: {exc}\n"
              "  fix: restore it from a copy whose head matches your last checkpoint "
              "(`unity-mlops control-plane verify` names the first bad line)", file=sys.stderr)
        return INTEGRITY_EXIT
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `unity-mlops models history X | head`: the reader stopped; stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
