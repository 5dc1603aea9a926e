"""`UnityMLOpsOrchestrator`: one training job is generate -> build -> train -> evaluate -> register.

Each stage is a small component behind an interface (generator, environment builder, trainer, evaluator,
registry), chosen once per job. A failing stage raises `StageError`; the job ends "failed", the stage named, its
log tail quoted, `metrics.json` written, every artifact kept. Events (`events.py`) go to the outbox and the log.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from .. import settings
from ..behavior.definition import BehaviorError, build_behavior
from ..build.builders import BuildArtifact, EnvironmentBuilder, log_tail, select_builder, unity_build_requested
from ..errors import StageError, UserError
from ..evaluation.evaluate import log_to_tensorboard
from ..events import EventBus, JobStarted
from ..failpoints import failpoint
from ..generate.base import CodeGenerator, TemplateGenerator
from ..generate.validate import validate_generated
from ..logs import ensure_console_logging, job_log
from ..registry.base import ModelRegistry, RegistryError
from ..specs import TrainingJob, TrainingResult, VertexSettings
from ..trainer import environment as trainer_env
from ..trainer.base import CallbackList, ProgressCallback, StopCondition, TrainRequest
from ..trainer.config import agents_per_env
from ..trainer.runner import stop_orphan_trainer
from ..trainer.select import select_trainer
from ..trainer.settings import TrainerSettings
from ..webhooks import WebhookOutbox, lifecycle_bus
from . import report
from .artifacts import RunSync
from .context import JobContext
from .jobstate import JobState
from .judging import check_demonstrations, judge, preflight, training_device, verdict
from .lineage import registration_requests, run_versions
from .progress import ConsoleProgress
from .registries import Registries, vertex_settings
from .runindex import index_run
from .workspace import JobWorkspace, atomic_write_json

log = logging.getLogger("unity_mlops")


class UnityMLOpsOrchestrator:
    """Runs training jobs end to end. Defaults need no configuration: workspace `./runs`, the local registry
    under `./runs/_registry`, the headless player, and the managed ML-Agents trainer environment."""

    def __init__(
        self, workspace: str | Path | None = None, *, registry: ModelRegistry | str | None = None,
        registry_root: str | Path | None = None, vertex_project: str | None = None, vertex_region: str | None = None,
        vertex_bucket: str | None = None, vertex: VertexSettings | None = None,
        trainer_env_path: str | Path | None = None, generator: CodeGenerator | None = None,
        evaluation_episodes: int = 500, show_progress: bool = True, webhooks: WebhookOutbox | None = None,
        events: EventBus | None = None, database: str | None = None, artifacts: str | None = None,
        builder: EnvironmentBuilder | None = None,
    ) -> None:
        chosen = registry if isinstance(registry, str) else registry_root
        self.paths = settings.Paths.resolve(workspace, chosen, database=database, artifacts=artifacts)
        self.workspace = self.paths.workspace
        vertex = vertex_settings(vertex, vertex_project, vertex_region, vertex_bucket)
        self.registries = registries = Registries(self.paths, registry, vertex)
        self.local_registry, self.registry = registries.local, registries.default
        self.vertex = registries.vertex_settings
        self.trainer_env_path = Path(trainer_env_path) if trainer_env_path else None
        self.generator = generator or TemplateGenerator()
        self.builder = builder  # a fixed build (the reproducibility gate's); default: chosen per job
        self.evaluation_episodes, self.show_progress = evaluation_episodes, show_progress
        self.events, self.webhooks = lifecycle_bus(self.paths, events, webhooks)  # the log, plugins, the outbox

    # ------------------------------------------------------------------ public API
    async def execute_training_job(self, job: TrainingJob, *, run_key: str | None = None) -> TrainingResult:
        """Run the job without blocking the event loop. Cancelling the task stops training with SIGINT
        (ML-Agents saves a checkpoint), waits for the trainer, and returns a "cancelled" result. `run_key` names
        the run (the scheduler passes its run key): running the same run again — after a crash, a kill -9 or a
        retry, here or on another machine — continues it and never registers a second version."""
        cancel = threading.Event()
        task = asyncio.ensure_future(asyncio.to_thread(self.run_job, job, cancel, run_key=run_key))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            cancel.set()
            return await task

    def execute_training_job_sync(self, job: TrainingJob, *, run_key: str | None = None) -> TrainingResult:
        return self.run_job(job, run_key=run_key)  # for callers without an event loop

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop the webhook sender once what is due is sent or `timeout_s` passed (a process may just exit)."""
        self.events.close(timeout_s)

    def __enter__(self) -> UnityMLOpsOrchestrator:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def run_job(self, job: TrainingJob, cancel: threading.Event | None = None, *,
                run_key: str | None = None) -> TrainingResult:
        ws = JobWorkspace(self.workspace, job.job_id).acquire()
        sync = RunSync(self.registries.artifacts, ws.dir)  # the job's files in shared storage, if configured
        try:
            sync.restore()
            state = JobState.begin(ws.dir, job.job_id, run_key)
            state.on_save = index_run(self.paths, ws.dir, state)  # the runs index's row, at each transition
            ws.run_id = state.run_id
            if self.show_progress:
                ensure_console_logging()
            with job_log(job.job_id, ws.logs / "pipeline.log"):
                trainer = select_trainer(job.rl_config.trainer, self.trainer_env_path)
                return self._run(JobContext(job, ws, cancel or threading.Event(), state, trainer, self.registry, sync))
        finally:
            sync.push()
            ws.release()

    def _run(self, ctx: JobContext) -> TrainingResult:
        job, state = ctx.job, ctx.state
        result = TrainingResult(job_id=job.job_id, status="failed")
        try:
            atomic_write_json(ctx.ws.dir / "job.json", job.model_dump(mode="json"))
            try:
                ctx.registry = self.registries.for_job(job)
                ctx.version = ctx.registry.find_run(state.run_key)
            except (RegistryError, UserError) as exc:
                raise StageError("register", str(exc)) from None
            if ctx.version is not None:  # registered before a restart: finish the bookkeeping only
                ctx.recovered, ctx.versions = True, run_versions(ctx.registry, ctx.version)
                log.info("job %s: run %s already registered %s; finishing", job.job_id, state.run_key,
                         ctx.version.version)
            else:
                self.events.publish(JobStarted(job_id=job.job_id, asset_id=job.asset_spec.asset_id,
                                               attempt=state.attempt, key=state.run_key))
                if state.phase != "trained":  # a restart after training keeps the model it has
                    state.move("running")
                log.info("job %s: %s (%s) -> %s (attempt %d)", job.job_id, job.asset_spec.name,
                         job.asset_spec.description, ctx.ws.dir, state.attempt)
                for stage in (self.generate, self.build, self.train, self.evaluate, self.register):
                    self._stage(ctx, stage.__name__, stage)
                    failpoint({"train": "trained", "register": "registered"}.get(stage.__name__, stage.__name__))
            state.move("registered", model_version=ctx.version.version if ctx.version else None)
            result = report.result(ctx, "completed")
        except StageError as exc:
            status = "cancelled" if ctx.cancel.is_set() and exc.stage == "train" else "failed"
            result = report.result(ctx, status, exc)
            log.error("job %s %s in stage %s: %s", job.job_id, status, exc.stage, exc.message)
        finally:
            atomic_write_json(ctx.ws.metrics_path, report.metrics(ctx, result))
            atomic_write_json(ctx.ws.result_path, result.model_dump(mode="json"))
            state.move(result.status)
            for event in report.outcome_events(ctx, result):
                self.events.publish(event)
            self.events.flush(5.0)
        return result

    # ------------------------------------------------------------------ stages
    def generate(self, ctx: JobContext) -> None:
        spec = ctx.job.asset_spec
        try:
            ctx.definition = d = build_behavior(
                behavior_name=spec.effective_behavior_name, asset_type=spec.asset_type,
                description=spec.description, observation_space=spec.observation_space,
                action_space=spec.action_space, archetype=spec.archetype)
        except BehaviorError as exc:
            raise StageError("generate", str(exc)) from None
        preflight(ctx.job, ctx.trainer, self.builder is not None, self.trainer_env_path)
        ctx.generated = self.generator.generate(spec, d, ctx.job.rl_config, ctx.ws.generated)
        problems = validate_generated(ctx.generated, d, ctx.trainer.checker_python())
        if problems:
            raise StageError("generate", "generated files failed validation: " + "; ".join(problems))
        log.info("generate: behavior %s, archetype %s, %d observations, actions %s", d.behavior_name,
                 d.archetype, d.observation_size, d.action.to_dict())

    def build(self, ctx: JobContext) -> None:
        assert ctx.definition and ctx.generated
        builder = self.builder  # a fixed build, or chosen for the job
        if builder is None and not ctx.trainer.needs_player and not unity_build_requested():
            digest = hashlib.sha256(ctx.definition.to_json().encode()).hexdigest()
            ctx.build = BuildArtifact(Path("simulator"), "simulator", digest, has_simulator=True)
            log.info("build: trainer '%s' steps the simulator in-process (no player process)", ctx.trainer.name)
            return
        if builder is None:
            python = None if unity_build_requested() else trainer_env.resolve(self.trainer_env_path).python
            builder = select_builder(python, agents_per_env(ctx.job.rl_config))
        ctx.build = builder.build(ctx.definition, ctx.generated, ctx.ws.build, ctx.ws.logs / "build.log")
        log.info("build: %s at %s", ctx.build.kind, ctx.build.env_path)

    def train(self, ctx: JobContext) -> None:
        assert ctx.definition and ctx.generated and ctx.build
        ws, cfg = ctx.ws, ctx.job.rl_config
        stop_orphan_trainer(ws.trainer_pid_path)
        ctx.training = ctx.state.completed_training()
        if ctx.training is not None:
            log.info("train: already complete at step %s (before a restart)", ctx.training.final_step)
            return
        check_demonstrations(ctx, self.trainer_env_path)
        own_run_id = getattr(ctx.trainer, "run_id", None)  # a custom command's --run-id, inside this attempt's dir
        request = TrainRequest(ctx.definition, cfg, TrainerSettings.for_job(ctx.definition, cfg),
                               ctx.generated.trainer_config, ctx.build, ws.run_dir / own_run_id if own_run_id
                               else ws.run_dir, ws.logs, ws.dir, StopCondition.for_job(ctx.cancel, ctx.job.timeout_s),
                               ws.trainer_pid_path, device=training_device(ctx, self.trainer_env_path))
        suffix = "" if ctx.trainer.name == "mlagents" else f" ({ctx.trainer.name})"
        bar = ConsoleProgress(f"train {request.behavior}{suffix}", enabled=self.show_progress)
        try:
            ctx.training = ctx.trainer.train(request, CallbackList([ProgressCallback(bar.update), ctx.sync]))
        finally:
            bar.done()
        reason = ctx.training.failure_reason()
        if reason:
            raise StageError("train", reason, log_tail=log_tail(ctx.training.log_path))
        ctx.state.record_training(ctx.training)

    def evaluate(self, ctx: JobContext) -> None:
        assert ctx.definition and ctx.training
        model, baseline, ctx.evaluation = judge(ctx, self.trainer_env_path, self.evaluation_episodes,
                                                self.show_progress)
        atomic_write_json(ctx.ws.dir / "evaluation.json", ctx.evaluation)
        log_to_tensorboard(ctx.training.run_dir / ctx.definition.behavior_name, ctx.training.final_step or 0, model,
                           baseline)
        log.info("evaluate: %s", verdict(model, baseline, ctx.evaluation["environment"]["kind"]))

    def register(self, ctx: JobContext) -> None:
        try:  # one version per behaviour of the run, together (all or none)
            ctx.versions = ctx.registry.register_many(registration_requests(ctx))
        except RegistryError as exc:
            raise StageError("register", str(exc)) from None
        ctx.version = ctx.versions[0]
        log.info("register: %s", "; ".join(f"{v.version} -> {v.model_path}" for v in ctx.versions))

    # ------------------------------------------------------------------ helpers
    def _stage(self, ctx: JobContext, name: str, fn: Callable[[JobContext], None]) -> None:
        t0 = time.monotonic()
        log.info("stage %s ...", name)
        try:
            fn(ctx)
        except StageError:
            raise
        except (UserError, RegistryError) as exc:
            raise StageError(name, str(exc)) from None
        except Exception as exc:  # an unexpected bug still ends the job cleanly, with the stage named
            log.exception("unexpected error in stage %s", name)
            raise StageError(name, f"{type(exc).__name__}: {exc}") from exc
        finally:
            ctx.timings[name] = round(time.monotonic() - t0, 3)

