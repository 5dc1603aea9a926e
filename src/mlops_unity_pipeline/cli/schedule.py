"""`schedule`, `webhooks` and `k8s`: the 24/7 scheduler, its webhook outbox, its Kubernetes manifests."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .. import settings
from ..app.actions import add_commands
from ..errors import UserError
from .options import scheduler_config


def _scheduler_parts(args: argparse.Namespace):
    from ..scheduler.config import load_scheduler_config
    from ..scheduler.store import StateStore

    cfg = load_scheduler_config(args.config)
    state_dir = Path(args.state_dir) if getattr(args, "state_dir", None) else cfg.resolved_state_dir()
    return cfg, StateStore(state_dir, cfg.database_url())


def _cmd_schedule_run(args: argparse.Namespace) -> int:
    import asyncio

    from ..pipeline.orchestrator import UnityMLOpsOrchestrator
    from ..scheduler.scheduler import TrainingScheduler

    cfg, store = _scheduler_parts(args)
    outbox = cfg.outbox(store.dir)
    orch = UnityMLOpsOrchestrator(cfg.workspace, registry=cfg.registry, webhooks=outbox, show_progress=False,
                                  vertex=cfg.vertex, database=cfg.database_url(),
                                  artifacts=cfg.artifacts)
    port = args.health_port if args.health_port is not None else cfg.health.port
    if port is None:
        port = settings.health_port()
    from ..execution import executor_from_config

    sched = TrainingScheduler(orch, state_dir=store.dir, poll_interval_s=cfg.poll_interval_s,
                              max_concurrent_jobs=cfg.max_concurrent_jobs, grace_period_s=cfg.grace_period_s,
                              health_port=port, health_host=cfg.health.host,
                              executor=executor_from_config(cfg.executor, orch))
    for schedule in cfg.schedules:
        sched.add_schedule(schedule)
    asyncio.run(sched.run_forever())
    return 0


def _cmd_schedule_run_once(args: argparse.Namespace) -> int:
    from ..pipeline.orchestrator import UnityMLOpsOrchestrator
    from ..scheduler.scheduler import job_id_for, utc_now
    from ..specs import TrainingJob

    cfg, store = _scheduler_parts(args)
    spec = next((s for s in cfg.schedules if s.schedule_id == args.schedule_id), None)
    if spec is None:
        raise UserError(f"schedule {args.schedule_id!r} is not in {args.config}")
    outbox = cfg.outbox(store.dir)
    orch = UnityMLOpsOrchestrator(cfg.workspace, registry=cfg.registry, webhooks=outbox, show_progress=False,
                                  vertex=cfg.vertex, database=cfg.database_url(),
                                  artifacts=cfg.artifacts)
    slot = utc_now().replace(second=0, microsecond=0)
    k8s_job = settings.k8s_job_name()  # stable across pod retries: resume
    failed = 0
    for asset in spec.asset_specs:
        job_id = f"{k8s_job}-{asset.asset_id}" if k8s_job else job_id_for(spec.schedule_id, asset.asset_id, slot)
        job = TrainingJob(job_id=job_id, asset_spec=asset, rl_config=spec.rl_config, timeout_s=spec.job_timeout_s,
                          evaluation=spec.evaluation, resources=spec.resources)
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


def config_context(args: argparse.Namespace):
    """An action's context on the command line of a scheduler config: its workspace, state store and webhooks."""
    from ..app import App
    from ..app.actions import Context
    from ..scheduler.config import load_scheduler_config

    cfg = load_scheduler_config(args.config)
    return Context(App(workspace=cfg.workspace), config=cfg, state_dir=Path(args.state_dir) if args.state_dir else None)


def _cmd_webhooks(args: argparse.Namespace) -> int:
    cfg, store = _scheduler_parts(args)
    outbox = cfg.outbox(store.dir)
    print(json.dumps({"counts": outbox.counts(), "dead": outbox.dead_letters()}, indent=2))
    return 0


def _cmd_k8s_render(args: argparse.Namespace) -> int:
    from ..deploy.kubernetes import dump_manifests, render_manifests, validate_manifests
    from ..scheduler.config import load_scheduler_config

    cfg = load_scheduler_config(args.config)  # rendering writes nothing but the output
    docs = render_manifests(cfg, args.config, args.mode)
    if args.validate or args.crd:
        from ..deploy.cluster import restricted_violations, validate_custom

        problems = validate_manifests(docs, cfg.kubernetes.kubernetes_version) if args.validate else []
        problems += validate_custom(docs, [Path(p) for p in args.crd]) + restricted_violations(docs)
        if problems:
            raise UserError("rendered manifests do not validate:\n  " + "\n  ".join(problems))
    text = dump_manifests(docs)
    if args.out:
        Path(args.out).write_text(text)
        print(f"wrote {len(docs)} manifests to {args.out}")
    else:
        print(text, end="")
    for doc in docs:  # Secrets are rendered with their keys only: say what to fill, and from which field
        if doc["kind"] == "Secret" and doc.get("stringData"):
            print(f"fill Secret {doc['metadata']['name']} before applying: {', '.join(doc['stringData'])} "
                  f"(kubectl create secret generic {doc['metadata']['name']} --from-literal=KEY=VALUE ...)",
                  file=sys.stderr)
    return 0



def register(sub: argparse._SubParsersAction) -> None:
    sc = sub.add_parser("schedule", help="run training on cron schedules, 24/7",
                        description="The scheduler reads CONFIG.yaml (schedules, webhooks, health port) and keeps "
                                    "its state in <workspace>/_state (or --state-dir).")
    scs = sc.add_subparsers(dest="schedule_command", metavar="ACTION", required=True)
    config = scheduler_config()
    for name, helptext in (("run", "run the scheduler until SIGTERM/SIGINT"),
                           ("list", "show schedules, next fire times and recent runs"),
                           ("run-once", "run a schedule's assets once, now (what a CronJob pod does)")):
        cmd = scs.add_parser(name, help=helptext, description=helptext, parents=[config])
        if name == "run-once":
            cmd.add_argument("schedule_id")
        if name == "run":
            cmd.add_argument("--health-port", type=int, help="serve /healthz, /readyz, /metrics on this port")
        if name == "list":
            cmd.add_argument("--runs", type=int, default=5, help="recent runs to show per schedule")
        cmd.set_defaults(func={"run": _cmd_schedule_run, "list": _cmd_schedule_list,
                               "run-once": _cmd_schedule_run_once}[name], timestamps=name in ("run", "run-once"))
    add_commands(scs, "schedule", [config], context=config_context)  # pause, resume, trigger: actions

    wh = sub.add_parser("webhooks", help="the webhook outbox: status, dead letters, replay")
    whs = wh.add_subparsers(dest="webhooks_command", metavar="ACTION", required=True)
    cmd = whs.add_parser("list", help="delivery counts and dead letters", description="delivery counts and dead "
                         "letters", parents=[config])
    cmd.set_defaults(func=_cmd_webhooks)
    add_commands(whs, "webhooks", [config], context=config_context)  # replay: an action

    k8 = sub.add_parser("k8s", help="Kubernetes deployment")
    k8s = k8.add_subparsers(dest="k8s_command", metavar="ACTION", required=True)
    kr = k8s.add_parser("render", help="render manifests for a scheduler config",
                        description="A CronJob per schedule, a Deployment for the 24/7 scheduler, a PVC, a ConfigMap "
                                    "and a Secret template; validated against the official schemas with --validate.")
    kr.add_argument("config")
    kr.add_argument("--out", help="write to this file (default: stdout)")
    kr.add_argument("--validate", action="store_true", help="validate offline with kubernetes-validate (strict)")
    kr.add_argument("--mode", choices=("deployment", "cronjob", "cluster"), default="deployment",
                    help="a 24/7 scheduler Deployment (default), one CronJob per schedule, or `cluster`: the "
                         "scheduler plus a KubeRay RayCluster, state in PostgreSQL and object storage, no shared "
                         "volume")
    kr.add_argument("--crd", action="append", default=[], metavar="FILE",
                    help="also validate custom resources (the RayCluster) against this CRD file (repeatable); "
                         "every pod is checked against Pod Security 'restricted' with --validate or --crd")
    kr.set_defaults(func=_cmd_k8s_render)
