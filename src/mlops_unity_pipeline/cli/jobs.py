"""Commands for one job and its parts: train, trainer, behavior, generate, build, evaluate, demos."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..errors import UserError
from .options import json_output, where


def _cmd_train(args: argparse.Namespace) -> int:
    from ..pipeline.orchestrator import UnityMLOpsOrchestrator
    from ..specs import load_job

    job = load_job(args.job)
    if args.job_id:
        job = job.model_copy(update={"job_id": args.job_id})
    if args.vertex_project:
        from ..specs import VertexSettings

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


def _cmd_sweep(args: argparse.Namespace) -> int:
    import asyncio

    from ..execution import executor_from_config, sweep
    from ..pipeline.orchestrator import UnityMLOpsOrchestrator
    from ..pipeline.workspace import atomic_write_json
    from ..scheduler.config import ExecutorConfig
    from ..specs import load_job

    base = load_job(args.job)
    trials = sweep.plan(base, [sweep.parse_axis(p) for p in args.param], args.random, args.seed)
    try:
        executor_cfg = ExecutorConfig(kind=args.executor, address=args.address, num_cpus=args.cpus)
    except ValueError as exc:
        raise UserError(f"executor: {exc}") from None
    orch = UnityMLOpsOrchestrator(args.workspace, registry_root=args.registry, evaluation_episodes=args.episodes,
                                  show_progress=False)
    executor = executor_from_config(executor_cfg, orch)
    print(f"sweep {base.job_id}: {len(trials)} trial(s) on the {executor.name} executor, {args.parallel} at a time",
          flush=True)

    def done(trial, result):
        ev = (result.metrics.get("evaluation") or {}).get("model") or {}
        shown = f"success {ev['success_rate']:.1%}" if ev else (result.error or "")[:80]
        print(f"  {trial.job.job_id} {trial.settings}: {result.status} {shown}", flush=True)

    try:
        results = asyncio.run(sweep.run(executor, trials, args.parallel, done))
    finally:
        executor.close()
    rows = sweep.table(trials, results)
    out = orch.workspace / f"{base.job_id}-sweep.json"
    atomic_write_json(out, {"job": base.job_id, "trials": rows})
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(f"{'trial':<28} {'status':<10} {'success':>8} {'reward':>8}  settings")
        for r in rows:
            success = "-" if r["success_rate"] is None else f"{r['success_rate']:.1%}"
            reward = "-" if r["mean_reward"] is None else f"{r['mean_reward']:.3f}"
            print(f"{r['job_id']:<28} {r['status']:<10} {success:>8} {reward:>8}  {r['settings']}")
        print(f"best: {rows[0]['job_id']} ({rows[0]['model_version'] or 'not registered'}); table in {out}")
    return 0 if all(r.succeeded for r in results) else 1


def _cmd_trainer_setup(args: argparse.Namespace) -> int:
    from ..trainer.environment import setup

    env = setup(args.path, python=args.python, force=args.force, torch_index_url=args.torch_index_url)
    print(env.path)
    return 0


def _cmd_trainer_check(args: argparse.Namespace) -> int:
    from ..trainer.environment import TrainerEnvironment, default_env_path

    info = TrainerEnvironment((args.path or default_env_path()).resolve()).check()
    for k in ("path", "python", "mlagents", "mlagents_envs", "torch", "numpy", "google.protobuf", "grpc", "onnx"):
        print(f"{k:16} {info.get(k)}")
    print("ok: the ML-Agents trainer environment is ready")
    return 0


def _definition(spec_path: str):
    from ..behavior.definition import BehaviorError, build_behavior
    from ..specs import load_asset_spec

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
    from ..generate.base import TemplateGenerator
    from ..specs import RLTrainingConfig, load_document, parse_model

    spec, d = _definition(args.spec)
    doc = load_document(args.spec)
    config = parse_model(RLTrainingConfig, doc.get("rl_config", {}), args.spec) if "asset_spec" in doc \
        else RLTrainingConfig()
    out = TemplateGenerator().generate(spec, d, config, Path(args.out))
    for path in out.as_dict().values():
        print(path)
    return 0


def _cmd_build(args: argparse.Namespace) -> int:
    from ..build.headless import build_headless_player
    from ..trainer.environment import resolve

    out = args.out or args.mlagents_build_output_path
    if not out:
        raise UserError("missing --out DIR", hint="say where to write the headless player")
    _, d = _definition(args.spec)
    python = Path(args.python) if args.python else resolve().python
    print(build_headless_player(d, Path(out), python, args.agents))
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from ..evaluation.environments import SimulatorEnvironment
    from ..evaluation.evaluate import HELD_OUT_SEED, evaluate_model
    from ..evaluation.onnx_policy import ContractError, OnnxPolicy
    from ..pipeline.progress import ConsoleProgress

    if not args.spec and not args.build:
        raise UserError("say where to play the model: --spec SPEC (the built-in simulator) or --build EXE",
                        hint="`unity-mlops evaluate MODEL --spec job.yaml` or `--build builds/MyGame`")
    behavior = args.behavior
    if args.build:
        from ..evaluation.build_env import BuildEnvironment

        try:
            graphics = OnnxPolicy(args.model).spec.visual
        except ContractError as exc:
            raise UserError(str(exc)) from None
        env = BuildEnvironment(Path(args.build), kind="unity", envs=args.envs, time_scale=args.time_scale,
                               graphics=graphics, success_stat=args.success_stat or None)
        behavior = behavior or (_definition(args.spec)[1].behavior_name if args.spec else None)
        if behavior is None:
            names = sorted(env.specs())
            if len(names) != 1:
                raise UserError(f"{args.build} has behaviours {names}", hint="choose one with --behavior NAME")
            behavior = names[0]
    else:
        _, d = _definition(args.spec)
        env, behavior = SimulatorEnvironment(d), d.behavior_name
    bar = ConsoleProgress(f"evaluate {behavior} on the {env.kind}", enabled=not args.quiet)
    try:
        model, baseline = evaluate_model(args.model, env, behavior, args.episodes, args.seed or HELD_OUT_SEED,
                                         progress=bar.count)
    except ContractError as exc:
        raise UserError(str(exc)) from None
    finally:
        bar.done()
    print(json.dumps({"environment": env.describe(), "model": model.to_dict(),
                      "random_baseline": baseline.to_dict()}, indent=2))
    return 0


def _cmd_demos_record(args: argparse.Namespace) -> int:
    from ..demos.record import record_demonstrations

    _, d = _definition(args.spec)
    s = record_demonstrations(d, args.episodes, Path(args.out), seed=args.seed)
    print(f"wrote {s.path}: behavior {d.behavior_name}, {s.episodes} episodes, {s.steps} steps, "
          f"mean reward {s.mean_reward:.3f}, expert success {s.success_rate:.1%}")
    return 0


def _cmd_demos_show(args: argparse.Namespace) -> int:
    from ..demos.demofile import DemoError, read_demos

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



def register(sub: argparse._SubParsersAction) -> None:
    t = sub.add_parser("train", help="run one training job (generate, build, train, evaluate, register)",
                       description="Run a training job from a YAML/JSON file with keys job_id, asset_spec, "
                                   "rl_config (as in the Python API). Exits 1 if the job fails.",
                       parents=[where()])
    t.add_argument("job", help="job file (YAML or JSON)")
    t.add_argument("--job-id", help="override the job_id from the file")
    t.add_argument("--episodes", type=int, default=500, help="held-out evaluation episodes (default 500)")
    t.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    t.add_argument("--vertex-project", help="also register in Vertex AI (default: the job file's `vertex:`, else "
                                            "$GOOGLE_CLOUD_PROJECT; UNITY_MLOPS_VERTEX=off keeps models local)")
    t.add_argument("--vertex-region", help="Vertex AI region (default $VERTEX_REGION or us-central1)")
    t.add_argument("--vertex-bucket", help="gs:// bucket for the artifacts (default <project>-mlops-unity-models)")
    t.set_defaults(func=_cmd_train)

    sw = sub.add_parser("sweep", help="train a job over a hyperparameter grid or random search, best first",
                        description="Each trial is the job with some settings replaced, run as a normal job (its own "
                                    "id, version and curves) on the local executor or a Ray cluster. A name that is "
                                    "an rl_config field sets it; network.KEY sets network_settings; any other name "
                                    "sets hyperparameters. Re-running a sweep continues it (nothing registers "
                                    "twice). Exits 1 if a trial failed.",
                        epilog="example: unity-mlops sweep examples/reach_target_job.yaml --param learning_rate="
                               "3e-4,1e-3 --param batch_size=128,256 --parallel 2",
                        parents=[where(), json_output("print the table as JSON")])
    sw.add_argument("job", help="the base job file (YAML or JSON)")
    sw.add_argument("--param", action="append", default=[], metavar="NAME=VALUES",
                    help="V1,V2,... (a grid axis) or LOW..HIGH (with --random); repeatable")
    sw.add_argument("--random", type=int, metavar="N", help="random search: N trials drawn from the axes")
    sw.add_argument("--seed", type=int, default=0, help="the random search's seed (default 0)")
    sw.add_argument("--parallel", type=int, default=1, help="trials at once (default 1)")
    sw.add_argument("--executor", default="local", help="where trials run: local (default), ray, or an installed "
                                                          "executor (`unity-mlops plugins --family executors`)")
    sw.add_argument("--address", help="Ray cluster address for --executor ray (default: auto)")
    sw.add_argument("--cpus", type=float, default=1.0, help="CPUs each trial declares to Ray (default 1)")
    sw.add_argument("--episodes", type=int, default=500, help="held-out evaluation episodes per trial (default 500)")
    sw.set_defaults(func=_cmd_sweep)

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
    s.add_argument("--torch-index-url", metavar="URL",
                   help="install torch 2.13.0 from this index, e.g. https://download.pytorch.org/whl/cu126 for a "
                        "CUDA build ($UNITY_MLOPS_TORCH_INDEX_URL); jobs with resources.device auto then train on "
                        "the GPU")
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

    ev = sub.add_parser("evaluate", help="evaluate an ONNX policy on held-out episodes (simulator or a build)",
                        description="Deterministic actions, batched, on held-out seeds; with a random baseline. "
                                    "--spec plays the built-in simulator of an asset spec; --build plays any "
                                    "executable that speaks ML-Agents' protocol (your Unity build, or a headless "
                                    "player) through ML-Agents' UnityEnvironment.")
    ev.add_argument("model", help="the .onnx file")
    ev.add_argument("--spec", help="asset spec or job file the model was trained for (the simulator)")
    ev.add_argument("--build", help="an executable to play instead of the simulator (a Unity player build)")
    ev.add_argument("--behavior", help="with --build: the behaviour to play (default: the build's only one)")
    ev.add_argument("--envs", type=int, default=2, help="with --build: environment processes at once (default 2)")
    ev.add_argument("--time-scale", type=float, default=20.0, help="with --build: Unity's time scale (default 20)")
    ev.add_argument("--success-stat", default="Episode/Success",
                    help="with --build: the statistic recording success (default Episode/Success; '' for none)")
    ev.add_argument("--episodes", type=int, default=500)
    ev.add_argument("--seed", type=int, default=None, help="evaluation seed (default: the held-out seed)")
    ev.add_argument("-q", "--quiet", action="store_true", help="no progress")
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
