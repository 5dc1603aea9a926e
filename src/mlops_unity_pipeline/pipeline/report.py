"""What a job reports: `metrics.json`, its `TrainingResult`, and the lifecycle events of its outcome."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from ..errors import StageError
from ..events import Event, JobCompleted, JobFailed, ModelRegistered
from ..redaction import redact
from ..specs import TrainingResult
from .context import JobContext


def summary_metrics(ctx: JobContext) -> dict[str, Any]:
    if ctx.recovered and ctx.version is not None:  # what the run registered before the restart
        return _with_versions(dict(ctx.version.metrics), ctx)
    out: dict[str, Any] = {}
    t = ctx.training
    if t is not None:
        out["training"] = {
            "final_step": t.final_step, "max_steps": t.max_steps, "returncode": t.returncode,
            "last_mean_reward": t.progress[-1].mean_reward if t.progress else None,
            "elapsed_s": t.progress[-1].elapsed_s if t.progress else None,
            "resumed_from_step": t.resumed_from_step, "device": t.device,
            "reward_curve": [[p.step, p.mean_reward] for p in t.progress],
        }
        if t.pretrain:
            out["pretrain"] = t.pretrain
    if ctx.evaluation:
        out["evaluation"] = ctx.evaluation
    if len(ctx.evaluations) > 1:  # a build with several behaviours: each one's evaluation and version
        out["behaviors"] = {b: {"evaluation": ev} for b, ev in ctx.evaluations.items()}
    return _with_versions(out, ctx)


def _with_versions(metrics: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """Each behaviour's registered version, once there are versions (registration itself records none yet)."""
    versions = {v.behavior_name: v for v in ctx.versions}
    if "behaviors" in metrics and versions:
        metrics["behaviors"] = {b: {**entry, "model_version": versions[b].version if b in versions else None,
                                    "asset": versions[b].asset_name if b in versions else None}
                                for b, entry in metrics["behaviors"].items()}
    return metrics


def metrics(ctx: JobContext, result: TrainingResult) -> dict[str, Any]:
    return {
        "job_id": ctx.job.job_id, "asset_id": ctx.job.asset_spec.asset_id, "status": result.status,
        "model_version": result.model_version, "failed_stage": result.failed_stage, "error": result.error,
        "stage_seconds": ctx.timings, **summary_metrics(ctx),
    }


def result(ctx: JobContext, status: str, exc: StageError | None = None) -> TrainingResult:
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
    v = ctx.version
    if v:
        artifacts["registry_uri"] = v.uri
    return TrainingResult(
        job_id=ctx.job.job_id, status=status,  # type: ignore[arg-type]
        model_version=v.version if v else None, trained_model_path=str(v.model_path) if v else None,
        model_uri=v.uri if v else None, metrics=summary_metrics(ctx), artifacts=artifacts,
        failed_stage=exc.stage if exc else None, error=redact(exc.message) if exc else None,
        log_tail=redact(exc.log_tail) or None if exc else None,
        started_at=ctx.started_at, finished_at=datetime.now(timezone.utc),
    )


def outcome_events(ctx: JobContext, r: TrainingResult) -> list[Event]:
    """A run announces its outcome once, even when a restart finishes it (keyed by the run)."""
    base = {"job_id": r.job_id, "asset_id": ctx.job.asset_spec.asset_id, "model_version": r.model_version}
    if not r.succeeded:
        return [JobFailed(**base, status=r.status, stage=r.failed_stage, message=r.error,
                          log_tail=(r.log_tail or "")[-2000:])]
    key = ctx.state.run_key
    model = (r.metrics.get("evaluation") or {}).get("model") or {}
    return [ModelRegistered(**base, uri=ctx.version.uri if ctx.version else None, key=key),
            JobCompleted(**base, success_rate=model.get("success_rate"), mean_reward=model.get("mean_reward"),
                         trained_model_path=r.trained_model_path, key=key)]
