"""`UnityMLOpsOrchestrator`: one training job is generate -> build -> train -> evaluate -> register.

Each stage is a small component behind an interface (generator, environment builder, trainer, evaluator,
registry). A failing stage raises `StageError`; the job then ends with status "failed", the stage named, its
log tail quoted, `metrics.json` written and every artifact kept for inspection.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import platform
import subprocess
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .. import __version__
from ..behavior.definition import BehaviorDefinition, BehaviorError, build_behavior
from ..build.builders import BuildArtifact, log_tail, select_builder, unity_build_requested
from ..errors import StageError, UserError
from ..evaluation.evaluate import HELD_OUT_SEED, evaluate_onnx
from ..failpoints import failpoint
from ..generate.base import CodeGenerator, GeneratedArtifacts, TemplateGenerator
from ..generate.validate import validate_generated
from ..logs import ensure_console_logging, job_log
from ..redaction import redact
from ..registry.base import ModelRegistry, ModelVersion, RegistrationRequest, RegistryError
from ..registry.local import LocalModelRegistry
from ..specs import TrainingJob, TrainingResult, VertexSettings
from ..trainer import environment as trainer_env
from ..trainer.config import agents_per_env
from ..trainer.ports import reserve_ports
from ..trainer.runner import (
    Progress,
    TrainingOutcome,
    build_command,
    has_checkpoint,
    run_trainer,
    stop_orphan_trainer,
)
from ..webhooks.outbox import WebhookOutbox
from .jobstate import JobState
from .progress import ConsoleProgress
from .workspace import JobWorkspace, atomic_write_json

log = logging.getLogger("unity_mlops")

DEFAULT_WORKSPACE = "runs"
REGISTRY_DIRNAME = "_registry"  # job ids start with a letter or digit, so these cannot collide
STATE_DIRNAME = "_state"
PORT_ATTEMPTS = 4  # trainer starts tried when a foreign process takes the reserved port first


def _sha256_json(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def git_sha(cwd: Path | None = None) -> tuple[str, bool]:
    """(7-char sha of HEAD or "nogit", working tree dirty?)."""
    try:
        sha = subprocess.run(["git", "rev-parse", "--short=7", "HEAD"], cwd=cwd, capture_output=True, text=True,
                             timeout=10)
        if sha.returncode != 0:
            return "nogit", False
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True, timeout=10)
        return sha.stdout.strip()[:7], bool(dirty.stdout.strip())
    except (OSError, subprocess.TimeoutExpired):
        return "nogit", False


@dataclass
class JobContext:
    """What the stages hand each other."""

    job: TrainingJob
    ws: JobWorkspace
    cancel: threading.Event
    state: JobState
    definition: BehaviorDefinition | None = None
    generated: GeneratedArtifacts | None = None
    build: BuildArtifact | None = None
    training: TrainingOutcome | None = None
    evaluation: dict[str, Any] = field(default_factory=dict)
    version: ModelVersion | None = None
    timings: dict[str, float] = field(default_factory=dict)
    resumed_from_step: int | None = None
    pretrain: dict[str, Any] | None = None
    recovered: bool = False  # the run had registered before a restart: only the bookkeeping was left
    started_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))


def vertex_registry(local: LocalModelRegistry, project: str, region: str | None = None,
                    bucket: str | None = None, serving_image: str | None = None) -> ModelRegistry:
    """The Vertex AI backend over the local registry. `UNITY_MLOPS_VERTEX_ENDPOINT` points the SDK at another
    endpoint (a regional or private one; an http:// one, such as a local test server, uses anonymous credentials)."""
    from ..registry.vertex import VertexModelRegistry, default_bucket

    endpoint = os.environ.get("UNITY_MLOPS_VERTEX_ENDPOINT") or None
    credentials = None
    if endpoint and endpoint.startswith("http://"):
        from google.auth.credentials import AnonymousCredentials

        credentials = AnonymousCredentials()
    try:
        return VertexModelRegistry(
            project, region or os.environ.get("VERTEX_REGION", "us-central1"),
            bucket or os.environ.get("UNITY_MLOPS_VERTEX_BUCKET") or default_bucket(project), local,
            api_endpoint=endpoint, credentials=credentials, serving_image=serving_image)
    except RegistryError as exc:
        raise UserError(str(exc)) from None


class UnityMLOpsOrchestrator:
    """Runs training jobs end to end. Defaults need no configuration: workspace `./runs`, the local registry
    under `./runs/_registry`, the headless player, and the managed ML-Agents trainer environment."""

    def __init__(
        self,
        workspace: str | Path | None = None,
        *,
        registry: ModelRegistry | None = None,
        registry_root: str | Path | None = None,
        vertex_project: str | None = None,
        vertex_region: str | None = None,
        vertex_bucket: str | None = None,
        vertex: VertexSettings | None = None,
        trainer_env_path: str | Path | None = None,
        generator: CodeGenerator | None = None,
        evaluation_episodes: int = 500,
        show_progress: bool = True,
        webhooks: WebhookOutbox | None = None,
    ) -> None:
        self.workspace = Path(workspace or os.environ.get("UNITY_MLOPS_WORKSPACE", DEFAULT_WORKSPACE)).resolve()
        root = registry_root or os.environ.get("UNITY_MLOPS_REGISTRY") or self.workspace / REGISTRY_DIRNAME
        self.local_registry = LocalModelRegistry(root)
        self._registries: dict[Any, ModelRegistry] = {}
        if vertex_project:
            vertex = VertexSettings(project=vertex_project, region=vertex_region or "us-central1",
                                    bucket=vertex_bucket)
        elif vertex is None and registry is None:
            vertex = VertexSettings.from_environment()  # GOOGLE_CLOUD_PROJECT / VERTEX_REGION, as in the setup guide
            try:
                registry = self._vertex_registry(vertex) if vertex is not None else None
            except UserError as exc:  # e.g. Cloud Shell sets GOOGLE_CLOUD_PROJECT on a machine without the extra
                log.warning("GOOGLE_CLOUD_PROJECT is set, but %s; models stay in the local registry "
                            "(UNITY_MLOPS_VERTEX=off silences this)", exc)
                vertex = None
        self.vertex = vertex
        if registry is None and vertex is not None:
            registry = self._vertex_registry(vertex)
        self.registry = registry or self.local_registry
        self.trainer_env_path = Path(trainer_env_path) if trainer_env_path else None
        self.generator = generator or TemplateGenerator()
        self.evaluation_episodes = evaluation_episodes
        self.show_progress = show_progress
        if webhooks is None and os.environ.get("WEBHOOK_URL", "").strip():
            webhooks = WebhookOutbox.from_environment(self.workspace / STATE_DIRNAME / "webhooks.db")
        self.webhooks = webhooks

    def _vertex_registry(self, v: VertexSettings) -> ModelRegistry:
        key = (v.project, v.region, v.bucket, v.serving_image)
        if key not in self._registries:
            self._registries[key] = vertex_registry(self.local_registry, v.project, v.region, v.bucket,
                                                    v.serving_image)
        return self._registries[key]

    def registry_for(self, job: TrainingJob) -> ModelRegistry:
        """The job's `vertex:` settings, where it has them, else the orchestrator's registry."""
        return self._vertex_registry(job.vertex) if job.vertex is not None else self.registry

    def notify(self, event_type: str, data: dict[str, Any], key: str | None = None) -> None:
        """Queue a lifecycle event (durably); delivery happens in the background and never fails a job. Events
        with the same `key` (a run's identity) are one message: a restarted run does not announce itself twice."""
        if self.webhooks is not None and self.webhooks.endpoints:
            self.webhooks.start()
            self.webhooks.emit(event_type, data, key=key)

    # ------------------------------------------------------------------ public API
    async def execute_training_job(self, job: TrainingJob, *, run_key: str | None = None) -> TrainingResult:
        """Run the job without blocking the event loop. Cancelling the task stops training with SIGINT
        (ML-Agents saves a checkpoint), waits for the trainer, and returns a "cancelled" result.

        `run_key` names the run (the scheduler passes its run key): running the same run again — after a crash,
        a kill -9 or a retry — continues it and never registers a second version."""
        cancel = threading.Event()
        task = asyncio.ensure_future(asyncio.to_thread(self.run_job, job, cancel, run_key=run_key))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            cancel.set()
            return await task

    def execute_training_job_sync(self, job: TrainingJob, *, run_key: str | None = None) -> TrainingResult:
        """For callers without an event loop."""
        return self.run_job(job, run_key=run_key)

    def run_job(self, job: TrainingJob, cancel: threading.Event | None = None, *,
                run_key: str | None = None) -> TrainingResult:
        ws = JobWorkspace(self.workspace, job.job_id).acquire()
        try:
            state = JobState.begin(ws.dir, job.job_id, run_key)
            ws.run_id = state.run_id
            if self.show_progress:
                ensure_console_logging()
            with job_log(job.job_id, ws.logs / "pipeline.log"):
                return self._run(JobContext(job, ws, cancel or threading.Event(), state))
        finally:
            ws.release()

    def _run(self, ctx: JobContext) -> TrainingResult:
        job, ws, state = ctx.job, ctx.ws, ctx.state
        result = TrainingResult(job_id=job.job_id, status="failed")
        key = state.run_key
        try:
            atomic_write_json(ws.dir / "job.json", job.model_dump(mode="json"))
            try:
                done = self.registry_for(job).find_run(key)
            except (RegistryError, UserError) as exc:
                raise StageError("register", str(exc)) from None
            if done is not None:  # registered before a restart: finish the bookkeeping only
                ctx.version, ctx.recovered = done, True
                log.info("job %s: run %s already registered %s; finishing", job.job_id, key, done.version)
            else:
                self.notify("job.started", {"job_id": job.job_id, "asset_id": job.asset_spec.asset_id,
                                            "model_version": None, "attempt": state.attempt}, key=key)
                if state.phase != "trained":  # a restart after training keeps the model it has
                    state.move("running")
                log.info("job %s: %s (%s) -> %s (attempt %d)", job.job_id, job.asset_spec.name,
                         job.asset_spec.description, ws.dir, state.attempt)
                self._stage(ctx, "generate", self.generate)
                failpoint("generate")
                self._stage(ctx, "build", self.build)
                failpoint("build")
                self._stage(ctx, "train", self.train)
                failpoint("trained")
                self._stage(ctx, "evaluate", self.evaluate)
                self._stage(ctx, "register", self.register)
                failpoint("registered")
            state.move("registered", model_version=ctx.version.version if ctx.version else None)
            result = self._result(ctx, "completed")
        except StageError as exc:
            status = "cancelled" if ctx.cancel.is_set() and exc.stage == "train" else "failed"
            result = self._result(ctx, status, exc)
            log.error("job %s %s in stage %s: %s", job.job_id, status, exc.stage, exc.message)
        finally:
            atomic_write_json(ws.metrics_path, self._metrics(ctx, result))
            atomic_write_json(ws.result_path, result.model_dump(mode="json"))
            state.move(result.status)
            self._notify_outcome(ctx, result)
        return result

    # ------------------------------------------------------------------ stages
    def generate(self, ctx: JobContext) -> None:
        spec = ctx.job.asset_spec
        try:
            ctx.definition = build_behavior(
                behavior_name=spec.effective_behavior_name, asset_type=spec.asset_type,
                description=spec.description, observation_space=spec.observation_space,
                action_space=spec.action_space, archetype=spec.archetype,
            )
        except BehaviorError as exc:
            raise StageError("generate", str(exc)) from None
        ctx.generated = self.generator.generate(spec, ctx.definition, ctx.job.rl_config, ctx.ws.generated)
        uses_managed_trainer = not os.environ.get("MLAGENTS_TRAIN_COMMAND", "").strip()
        python = None
        if ctx.job.rl_config.trainer == "fast":  # ML-Agents' parser checks the config if its environment exists
            env = trainer_env.TrainerEnvironment(trainer_env.default_env_path()) if not self.trainer_env_path \
                else trainer_env.TrainerEnvironment(self.trainer_env_path)
            python = env.python if env.is_ready() else None
        elif uses_managed_trainer:
            python = self._trainer_environment().python
        problems = validate_generated(ctx.generated, ctx.definition, python)
        if problems:
            raise StageError("generate", "generated files failed validation: " + "; ".join(problems))
        d = ctx.definition
        log.info("generate: behavior %s, archetype %s, %d observations, actions %s", d.behavior_name,
                 d.archetype, d.observation_size, d.action.to_dict())

    def build(self, ctx: JobContext) -> None:
        assert ctx.definition and ctx.generated
        if ctx.job.rl_config.trainer == "fast" and not unity_build_requested():
            digest = hashlib.sha256(ctx.definition.to_json().encode()).hexdigest()
            ctx.build = BuildArtifact(Path("simulator"), "simulator", digest, has_simulator=True)
            log.info("build: trainer 'fast' steps the behavior simulator in-process (no player process)")
            return
        python = None if unity_build_requested() else self._trainer_environment().python
        builder = select_builder(python, agents_per_env(ctx.job.rl_config))
        ctx.build = builder.build(ctx.definition, ctx.generated, ctx.ws.build, ctx.ws.logs / "build.log")
        log.info("build: %s at %s", ctx.build.kind, ctx.build.env_path)

    def train(self, ctx: JobContext) -> None:
        assert ctx.definition and ctx.generated and ctx.build
        cfg, ws, behavior = ctx.job.rl_config, ctx.ws, ctx.definition.behavior_name
        custom = os.environ.get("MLAGENTS_TRAIN_COMMAND", "").strip() or None
        stop_orphan_trainer(ws.trainer_pid_path)
        if self._trained(ctx):
            return
        if cfg.trainer == "fast":
            return self._train_fast(ctx)
        init_from = None
        if cfg.use_offline_rl:
            init_from = self._pretrain(ctx)
            if cfg.offline_mode == "offline_only":
                return self._mark_trained(ctx)
        resume = has_checkpoint(ws.run_dir, behavior)  # this attempt's own checkpoint: never restart from zero
        if resume:
            ctx.resumed_from_step = self._checkpoint_step(ws.run_dir, behavior)
            log.info("train: resuming run %s from its checkpoint (step %s)", ws.run_dir.name, ctx.resumed_from_step)
        avoid: set[int] = set()
        bar = ConsoleProgress(f"train {behavior}", enabled=self.show_progress)
        for _ in range(PORT_ATTEMPTS):
            with reserve_ports(cfg.num_envs, avoid=frozenset(avoid)) as ports:
                command = build_command(
                    None if custom else self._trainer_environment(), ctx.generated.trainer_config,
                    ctx.build.env_path, ws.run_dir.name, ws.training, num_envs=cfg.num_envs, seed=cfg.seed,
                    base_port=ports.base, resume=resume, custom_command=custom,
                )
                if init_from and not resume:
                    command[command.index("--force"):command.index("--force")] = ["--initialize-from", init_from]
                outcome = run_trainer(
                    command, run_dir=ws.run_dir, behavior=behavior, max_steps=cfg.max_steps,
                    log_path=ws.logs / "trainer.log", cwd=ws.dir, on_progress=lambda p: (bar.update(p), log.debug(
                        "step %d mean reward %s", p.step, p.mean_reward)),
                    timeout_s=ctx.job.timeout_s, cancel=ctx.cancel, pid_file=ws.trainer_pid_path,
                )
            if not (outcome.port_in_use and not outcome.progress and not ctx.cancel.is_set()):
                break
            avoid |= set(ports.ports)  # a foreign process took a port between our check and the trainer's bind
            log.warning("train: port %d was taken by another process; retrying on another range", ports.base)
        bar.done()
        ctx.training = outcome
        if outcome.progress:
            last = outcome.progress[-1]
            log.info("train: step %d, mean reward %s, %.0f s", last.step, last.mean_reward, last.elapsed_s)
        reason = outcome.failure_reason()
        if reason:
            raise StageError("train", reason, log_tail=log_tail(outcome.log_path))
        self._mark_trained(ctx)

    def _trained(self, ctx: JobContext) -> bool:
        """After a restart past training (killed, or failed in evaluate/register): the attempt's complete training
        output is on disk; keep it instead of training again."""
        t = ctx.state.training  # recorded when this attempt's training completed; a later failure keeps it
        if not t:
            return False
        outcome = TrainingOutcome(returncode=0, run_dir=Path(t["run_dir"]), onnx_path=Path(t["onnx_path"]),
                                  final_step=t["final_step"], max_steps=t["max_steps"], interrupted=False,
                                  timed_out=False, log_path=Path(t["log_path"]))
        if not outcome.completed:
            return False
        ctx.training = outcome
        log.info("train: already complete at step %s (before a restart)", outcome.final_step)
        return True

    def _mark_trained(self, ctx: JobContext) -> None:
        t = ctx.training
        assert t is not None
        ctx.state.move("trained", training={"run_dir": str(t.run_dir), "onnx_path": str(t.onnx_path),
                                            "final_step": t.final_step, "max_steps": t.max_steps,
                                            "log_path": str(t.log_path)})

    def _train_fast(self, ctx: JobContext) -> None:
        """PPO in-process on the vectorized simulator, with the same trainer YAML semantics and outputs."""
        assert ctx.definition and ctx.generated and ctx.build
        if not ctx.build.has_simulator:
            raise StageError("train", "trainer 'fast' trains on the built-in simulator; a Unity build needs "
                                      "trainer 'mlagents'")
        if ctx.job.rl_config.use_offline_rl:
            raise StageError("train", "trainer 'fast' has no offline/hybrid mode; use trainer 'mlagents'")
        try:
            from ..fast.ppo import FastPPOTrainer, UnsupportedOption
        except ImportError:
            raise StageError("train", "trainer 'fast' needs torch: pip install 'unity-mlops[fast]'") from None
        import yaml

        cfg, ws, behavior = ctx.job.rl_config, ctx.ws, ctx.definition.behavior_name
        settings = yaml.safe_load(ctx.generated.trainer_config.read_text())["behaviors"][behavior]
        resume = has_checkpoint(ws.run_dir, behavior)  # this attempt's own checkpoint: never restart from zero
        if resume:
            ctx.resumed_from_step = self._checkpoint_step(ws.run_dir, behavior)
            log.info("train: resuming run %s from its checkpoint (step %s)", ws.run_dir.name, ctx.resumed_from_step)
        bar = ConsoleProgress(f"train {behavior} (fast)", enabled=self.show_progress)
        log_path = ws.logs / "trainer.log"
        progress: list[Progress] = []

        def on_progress(p) -> None:
            progress.append(Progress(p.step, p.max_steps, p.elapsed_s, p.mean_reward))
            bar.update(progress[-1])

        with log_path.open("a", encoding="utf-8") as fh:
            def log_line(line: str) -> None:
                fh.write(line + "\n")
                fh.flush()

            try:
                trainer = FastPPOTrainer(ctx.definition, settings, ws.run_dir,
                                         num_agents=cfg.num_envs * agents_per_env(cfg), seed=cfg.seed,
                                         on_progress=on_progress, log=log_line)
            except UnsupportedOption as exc:
                raise StageError("train", str(exc)) from None
            deadline = time.monotonic() + ctx.job.timeout_s if ctx.job.timeout_s else None
            out = trainer.train(resume=resume, cancel=ctx.cancel, deadline=deadline)
        bar.done()
        if resume:
            ctx.resumed_from_step = out["resumed_from_step"]
        ctx.training = TrainingOutcome(returncode=0, run_dir=ws.run_dir, onnx_path=Path(out["onnx"]),
                                       final_step=out["final_step"], max_steps=cfg.max_steps,
                                       interrupted=out["interrupted"] and ctx.cancel.is_set(),
                                       timed_out=out["interrupted"] and not ctx.cancel.is_set(), log_path=log_path,
                                       progress=progress)
        reason = ctx.training.failure_reason()
        if reason:
            raise StageError("train", reason, log_tail=log_tail(log_path))
        self._mark_trained(ctx)

    def _pretrain(self, ctx: JobContext) -> str:
        """Offline behavior cloning from the demonstrations (no environment interaction); returns the run id the
        online run continues from (`--initialize-from`)."""
        from ..demos.demofile import DemoError, read_demos
        from ..demos.record import check_compatible

        cfg, ws, behavior = ctx.job.rl_config, ctx.ws, ctx.definition.behavior_name
        assert cfg.demonstrations_path and ctx.generated
        demo_path = Path(cfg.demonstrations_path).resolve()
        try:
            problems = check_compatible(read_demos(demo_path), ctx.definition)
        except DemoError as exc:
            raise StageError("train", f"demonstrations unusable: {exc}") from None
        if problems:
            raise StageError("train", "demonstrations do not match the behavior: " + "; ".join(problems))
        run_id = f"{ws.run_dir.name}-bc"
        out = ws.training / run_id
        env = self._trainer_environment()
        script = Path(__file__).resolve().parent.parent / "trainer" / "pretrain_bc.py"
        log_path = ws.logs / "pretrain.log"
        cmd = [str(env.python), "-s", "-W", "ignore", str(script), "--config", str(ctx.generated.trainer_config),
               "--behavior", behavior, "--demo", str(demo_path), "--out", str(out), "--updates", str(cfg.bc_updates),
               "--seed", str(cfg.seed)]
        log.info("train: offline behavior cloning from %s (%d updates)", demo_path, cfg.bc_updates)
        with log_path.open("w") as fh:
            proc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=trainer_env.clean_env(),
                                  cwd=ws.dir)
        onnx = out / f"{behavior}.onnx"
        if proc.returncode != 0 or not onnx.is_file():
            raise StageError("train", f"offline pretraining failed (exit {proc.returncode})",
                             log_tail=log_tail(log_path))
        ctx.pretrain = {"run_id": run_id, "onnx": str(onnx), **_read_json(out / "pretrain_bc.json")}
        if cfg.offline_mode == "offline_only":
            ctx.training = TrainingOutcome(returncode=0, run_dir=out, onnx_path=onnx, final_step=0, max_steps=0,
                                           interrupted=False, timed_out=False, log_path=log_path)
        return run_id

    def evaluate(self, ctx: JobContext) -> None:
        assert ctx.definition and ctx.build and ctx.training
        if not ctx.build.has_simulator:
            status = _read_json(ctx.training.run_dir / "run_logs" / "training_status.json")
            final = (status.get(ctx.definition.behavior_name) or {}).get("final_checkpoint") or {}
            ctx.evaluation = {
                "source": "trainer statistics (Unity build: no simulator to evaluate on)",
                "final_step": final.get("steps"), "mean_reward": final.get("reward"),
            }
            return
        try:
            model, baseline = evaluate_onnx(str(ctx.training.onnx_path), ctx.definition, self.evaluation_episodes)
        except ValueError as exc:
            raise StageError("evaluate", str(exc)) from None
        ctx.evaluation = {"source": "held-out simulator episodes", "model": model.to_dict(),
                          "random_baseline": baseline.to_dict()}
        atomic_write_json(ctx.ws.dir / "evaluation.json", ctx.evaluation)
        log.info("evaluate: success %.1f%% (random %.1f%%), mean reward %.3f [%.3f, %.3f], collisions %.1f%% "
                 "over %d held-out episodes", 100 * model.success_rate, 100 * baseline.success_rate,
                 model.mean_reward, *model.reward_ci95, 100 * model.collision_rate, model.episodes)

    def register(self, ctx: JobContext) -> None:
        assert ctx.definition and ctx.generated and ctx.build and ctx.training
        job, ws = ctx.job, ctx.ws
        sha, dirty = git_sha(Path.cwd())
        status = _read_json(ctx.training.run_dir / "run_logs" / "training_status.json")
        files = {
            "trainer_config.yaml": ctx.generated.trainer_config,
            ctx.generated.agent_source.name: ctx.generated.agent_source,
            "behavior.json": ctx.generated.behavior_json,
        }
        events = sorted((ctx.training.run_dir / ctx.definition.behavior_name).glob("events.out.tfevents.*"),
                        key=lambda p: p.stat().st_size)
        if events:
            files["events.out.tfevents"] = events[-1]
        for name, path in (("job.json", ws.dir / "job.json"),
                           ("training_status.json", ctx.training.run_dir / "run_logs" / "training_status.json"),
                           ("configuration.yaml", ctx.training.run_dir / "configuration.yaml"),
                           ("evaluation.json", ws.dir / "evaluation.json")):
            if path.is_file():
                files[name] = path
        lineage = {
            "job_id": job.job_id, "run_key": ctx.state.run_key, "attempt": ctx.state.attempt,
            "spec_sha256": _sha256_json(job.asset_spec.model_dump(mode="json")),
            "rl_config_sha256": _sha256_json(job.rl_config.model_dump(mode="json")),
            "trainer_config_sha256": hashlib.sha256(ctx.generated.trainer_config.read_bytes()).hexdigest(),
            "behavior_sha256": hashlib.sha256(ctx.generated.behavior_json.read_bytes()).hexdigest(),
            "build": {"kind": ctx.build.kind, "digest": ctx.build.digest},
            "git_sha": sha, "git_dirty": dirty,
            "seeds": {"training": job.rl_config.seed, "evaluation": HELD_OUT_SEED},
            "demonstrations": demo_lineage(job.rl_config),
            "versions": {"unity_mlops": __version__, "python": platform.python_version(),
                         **{k: v for k, v in (status.get("metadata") or {}).items() if k.endswith("version")}},
        }
        request = RegistrationRequest(
            asset_id=job.asset_spec.asset_id, asset_name=job.asset_spec.name,
            behavior_name=ctx.definition.behavior_name, job_id=job.job_id, model_path=ctx.training.onnx_path,
            files=files, metrics=self._summary_metrics(ctx), lineage=lineage, git_sha=sha,
            run_key=ctx.state.run_key,
        )
        try:
            ctx.version = self.registry_for(job).register(request)
        except RegistryError as exc:
            raise StageError("register", str(exc)) from None
        log.info("register: %s -> %s", ctx.version.version, ctx.version.model_path)

    # ------------------------------------------------------------------ helpers
    def _notify_outcome(self, ctx: JobContext, result: TrainingResult) -> None:
        base = {"job_id": result.job_id, "asset_id": ctx.job.asset_spec.asset_id, "model_version": result.model_version}
        key = ctx.state.run_key  # a run announces its outcome once, even when a restart finishes it
        if result.succeeded:
            model = (result.metrics.get("evaluation") or {}).get("model") or {}
            self.notify("model.registered", {**base, "uri": ctx.version.uri if ctx.version else None}, key=key)
            self.notify("job.completed", {**base, "success_rate": model.get("success_rate"),
                                          "mean_reward": model.get("mean_reward"),
                                          "trained_model_path": result.trained_model_path}, key=key)
        else:
            self.notify("job.failed", {**base, "status": result.status, "stage": result.failed_stage,
                                       "message": result.error, "log_tail": (result.log_tail or "")[-2000:]})
        if self.webhooks is not None:
            self.webhooks.flush(5.0)


    def _stage(self, ctx: JobContext, name: str, fn) -> None:
        t0 = time.monotonic()
        log.info("stage %s ...", name)
        try:
            fn(ctx)
        except StageError:
            raise
        except UserError as exc:
            raise StageError(name, str(exc)) from None
        except Exception as exc:  # an unexpected bug still ends the job cleanly, with the stage named
            log.exception("unexpected error in stage %s", name)
            raise StageError(name, f"{type(exc).__name__}: {exc}") from exc
        finally:
            ctx.timings[name] = round(time.monotonic() - t0, 3)

    def _trainer_environment(self) -> trainer_env.TrainerEnvironment:
        return trainer_env.resolve(self.trainer_env_path)

    @staticmethod
    def _checkpoint_step(run_dir: Path, behavior: str) -> int | None:
        """The step of the last complete checkpoint: ML-Agents writes `<B>-<step>.pt`, then `checkpoint.pt`, then
        exports `<B>-<step>.onnx`, so a step whose ONNX exists is fully saved."""
        steps = [int(p.stem.rsplit("-", 1)[1]) for p in (run_dir / behavior).glob(f"{behavior}-*.onnx")
                 if p.stem.rsplit("-", 1)[1].isdigit() and p.with_suffix(".pt").is_file()]
        return max(steps) if steps else None

    def _summary_metrics(self, ctx: JobContext) -> dict[str, Any]:
        if ctx.recovered and ctx.version is not None:
            return ctx.version.metrics  # what the run registered before the restart
        out: dict[str, Any] = {}
        t = ctx.training
        if t is not None:
            curve = [[p.step, p.mean_reward] for p in t.progress]
            out["training"] = {
                "final_step": t.final_step, "max_steps": t.max_steps, "returncode": t.returncode,
                "last_mean_reward": t.progress[-1].mean_reward if t.progress else None,
                "elapsed_s": t.progress[-1].elapsed_s if t.progress else None,
                "resumed_from_step": ctx.resumed_from_step, "reward_curve": curve,
            }
        if ctx.pretrain:
            out["pretrain"] = ctx.pretrain
        if ctx.evaluation:
            out["evaluation"] = ctx.evaluation
        return out

    def _metrics(self, ctx: JobContext, result: TrainingResult) -> dict[str, Any]:
        return {
            "job_id": ctx.job.job_id, "asset_id": ctx.job.asset_spec.asset_id, "status": result.status,
            "model_version": result.model_version, "failed_stage": result.failed_stage, "error": result.error,
            "stage_seconds": ctx.timings, **self._summary_metrics(ctx),
        }

    def _result(self, ctx: JobContext, status: str, exc: StageError | None = None) -> TrainingResult:
        artifacts = {"workspace": str(ctx.ws.dir), "metrics": str(ctx.ws.metrics_path),
                     "logs": str(ctx.ws.logs), "tensorboard": str(ctx.ws.training)}
        if ctx.generated:
            artifacts.update(ctx.generated.as_dict())
        if ctx.build:
            artifacts["build"] = str(ctx.build.env_path)
        if ctx.training:
            artifacts["training_run"] = str(ctx.training.run_dir)
            if ctx.training.onnx_exists:
                artifacts["trained_onnx"] = str(ctx.training.onnx_path)
        if ctx.version:
            artifacts["registry_uri"] = ctx.version.uri
        return TrainingResult(
            job_id=ctx.job.job_id, status=status,  # type: ignore[arg-type]
            model_version=ctx.version.version if ctx.version else None,
            trained_model_path=str(ctx.version.model_path) if ctx.version else None,
            model_uri=ctx.version.uri if ctx.version else None,
            metrics=self._summary_metrics(ctx), artifacts=artifacts,
            failed_stage=exc.stage if exc else None, error=redact(exc.message) if exc else None,
            log_tail=redact(exc.log_tail) or None if exc else None,
            started_at=ctx.started_at, finished_at=datetime.now(timezone.utc),
        )


def demo_lineage(config) -> list[dict[str, str]]:
    if not (config.use_offline_rl and config.demonstrations_path):
        return []
    from ..demos.demofile import demo_sha256

    return demo_sha256(config.demonstrations_path)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
