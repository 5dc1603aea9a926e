"""Where a job's model is judged, and what is refused before training so that nothing fails after it.

A model trained on the built-in behaviours' headless player is judged in the simulator (the same task, in this
process, fast); a model trained on a team's own build is judged on that build, through ML-Agents' protocol. The
job's `evaluation:` settings can ask for the build in every case.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ..build.builders import HeadlessPlayerBuilder, unity_build_requested
from ..errors import StageError, UserError
from ..evaluation.environments import EvaluationEnvironment, SimulatorEnvironment
from ..evaluation.evaluate import evaluate_model
from ..evaluation.outcomes import EvaluationReport
from ..specs import TrainingJob
from ..trainer import environment as trainer_env
from ..trainer.base import Trainer
from ..trainer.config import agents_per_env
from .context import JobContext
from .progress import ConsoleProgress

log = logging.getLogger("unity_mlops")


def preflight(job: TrainingJob, trainer: Trainer, fixed_build: bool, trainer_env_path: Path | None) -> None:
    """Combinations that could only fail after training, refused before it (the generate stage)."""
    unity = fixed_build or unity_build_requested()
    ev = job.evaluation
    from .. import settings
    from ..trainer.runner import owned_flags_in

    owned = owned_flags_in(settings.train_command()) if trainer.needs_player else []
    if owned:
        raise StageError("generate", f"MLAGENTS_TRAIN_COMMAND sets {', '.join(owned)}, which each job decides (its "
                                     "build, its results directory, its reserved ports); remove them from the command")
    from ..devices import device_problem

    problem = device_problem(job.resources.device, job.resources.gpus, trainer.needs_player,
                             (trainer_env_path or trainer_env.default_env_path()).expanduser())
    if problem:
        raise StageError("generate", problem)
    if unity and not trainer.needs_player:
        raise StageError("generate", f"trainer '{trainer.name}' trains on the built-in simulator, not on a Unity "
                                     "build (UNITY_BUILD_COMMAND is set); use trainer: mlagents")
    if unity and ev.environment == "simulator":
        raise StageError("generate", "evaluation.environment 'simulator' would judge a model of your Unity build "
                                     "in the description's simulator, another game; use 'auto' or 'build'")
    if unity or ev.environment == "build":
        try:  # the build is played through ML-Agents' UnityEnvironment, which lives there
            trainer_env.resolve(trainer_env_path)
        except UserError as exc:
            raise StageError("generate", f"evaluating on a build needs the trainer environment: {exc}") from None


def training_device(ctx: JobContext, trainer_env_path: Path | None) -> str:
    """The torch device of the update: the job's `resources.device`, `auto` decided on this machine."""
    from ..devices import resolve_device

    if not ctx.trainer.needs_player:
        return "cpu"  # the in-process trainer (a CUDA request was refused before generating)
    device, note = resolve_device(ctx.job.resources.device,
                                  (trainer_env_path or trainer_env.default_env_path()).expanduser())
    if note:
        log.info("train: %s", note)
    return device


def evaluation_environment(ctx: JobContext, trainer_env_path: Path | None) -> EvaluationEnvironment:
    from ..evaluation.build_env import BuildEnvironment
    from ..evaluation.onnx_policy import OnnxPolicy

    assert ctx.build and ctx.definition and ctx.generated and ctx.training
    ev, build = ctx.job.evaluation, ctx.build
    if ev.environment == "simulator" or (ev.environment == "auto" and build.has_simulator):
        return SimulatorEnvironment(ctx.definition)
    python = trainer_env.resolve(trainer_env_path).python
    if build.kind == "simulator":  # the in-process trainer built no player: build the headless one to play
        build = HeadlessPlayerBuilder(python, agents_per_env(ctx.job.rl_config)).build(
            ctx.definition, ctx.generated, ctx.ws.build, ctx.ws.logs / "build.log")
    graphics = OnnxPolicy(ctx.training.onnx_path).spec.visual  # camera sensors need rendering
    return BuildEnvironment(build.env_path, kind=build.kind, digest=build.digest, python=python,
                            time_scale=ctx.job.rl_config.time_scale, graphics=graphics, envs=ev.envs,
                            timeout_s=ev.timeout_s, success_stat=ev.success_stat, collision_stat=ev.collision_stat,
                            log_dir=ctx.ws.logs / "evaluation", stop=ctx.cancel, root=build.root)


def judge(ctx: JobContext, trainer_env_path: Path | None, default_episodes: int,
          show_progress: bool) -> tuple[EvaluationReport, EvaluationReport, dict]:
    """The evaluate stage: every behaviour the run trained (the job's own first; a build may have several), its
    model and a random policy on held-out episodes of where the models belong, in one environment session. Returns
    the job's own two reports and its record; every behaviour's record goes to `ctx.evaluations`."""
    assert ctx.definition and ctx.training
    environment = evaluation_environment(ctx, trainer_env_path)
    episodes = ctx.job.evaluation.episodes or default_episodes
    reports = {}
    try:
        for behavior, path in ctx.training.models.items():
            bar = ConsoleProgress(f"evaluate {behavior} on the {environment.kind}", enabled=show_progress)
            try:
                model, baseline = evaluate_model(path, environment, behavior, episodes, progress=bar.count)
            except ValueError as exc:  # a model that does not fit the environment's behaviour
                raise StageError("evaluate", str(exc)) from None
            finally:
                bar.done()
            reports[behavior] = (model, baseline)
            ctx.evaluations[behavior] = {
                "source": f"held-out episodes on the {environment.kind}", "environment": environment.describe(),
                "behavior_spec": environment.specs()[behavior].to_dict(), "model": model.to_dict(),
                "random_baseline": baseline.to_dict()}
    finally:
        environment.close()
    own = ctx.definition.behavior_name
    return reports[own][0], reports[own][1], ctx.evaluations[own]


def verdict(model: EvaluationReport, baseline: EvaluationReport, where: str) -> str:
    success = "success n/a (no success statistic from the build)" if model.success_rate is None else \
        f"success {model.success_rate:.1%} (random {baseline.success_rate or 0:.1%})"
    collisions = "" if model.collision_rate is None else f", collisions {model.collision_rate:.1%}"
    return (f"{success}, mean reward {model.mean_reward:.3f} [{model.reward_ci95[0]:.3f}, {model.reward_ci95[1]:.3f}]"
            f"{collisions} over {model.episodes} held-out episodes on the {where}")


def check_demonstrations(ctx: JobContext, trainer_env_path: Path | None) -> None:
    """The `.demo` files the run's trainer config names (GAIL, behavioral cloning) must match the behaviour: refused
    before training, with both specs, rather than failing inside ML-Agents. The behaviour is the one the build
    declares (a Unity build is asked through ML-Agents' protocol) or the built-in one."""
    import yaml

    from ..demos.demofile import DemoError, read_demos
    from ..demos.record import check_compatible
    from ..trainer.mlagents_yaml import behavior_block

    assert ctx.definition and ctx.generated and ctx.build
    doc = yaml.safe_load(ctx.generated.trainer_config.read_text()) or {}
    block = behavior_block(doc, ctx.definition.behavior_name)
    paths = [b["demo_path"] for b in ((block.get("reward_signals") or {}).get("gail"), block.get("behavioral_cloning"))
             if isinstance(b, dict) and b.get("demo_path")]
    if not paths:
        return
    spec = None
    if not ctx.build.has_simulator:
        from ..evaluation.build_env import BuildEnvironment

        with BuildEnvironment(ctx.build.env_path, python=trainer_env.resolve(trainer_env_path).python, envs=1,
                              log_dir=ctx.ws.logs / "evaluation") as env:
            spec = env.specs().get(ctx.definition.behavior_name)
    problems = []
    for path in dict.fromkeys(paths):
        try:
            problems += check_compatible(read_demos(path), spec or ctx.definition)
        except DemoError as exc:
            problems.append(str(exc))
    if problems:
        raise StageError("train", "demonstrations do not match the behavior: " + "; ".join(problems))
