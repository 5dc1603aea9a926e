"""What a registered version records about how it was made: files, hashes, seeds, code and tool versions."""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess
from pathlib import Path
from typing import Any

from .. import __version__
from ..evaluation.evaluate import HELD_OUT_SEED
from ..registry.base import TRAINING_EVENTS, RegistrationRequest
from .context import JobContext
from .report import summary_metrics


def sha256_json(data: Any) -> str:
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


def demo_lineage(config) -> list[dict[str, str]]:
    if not (config.use_offline_rl and config.demonstrations_path):
        return []
    from ..demos.demofile import demo_sha256

    return demo_sha256(config.demonstrations_path)


def read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _files(ctx: JobContext, behavior: str) -> dict[str, Path]:
    assert ctx.generated and ctx.training and ctx.definition
    run_dir = ctx.training.run_dir
    files = {"trainer_config.yaml": ctx.generated.trainer_config,
             ctx.generated.agent_source.name: ctx.generated.agent_source,
             "behavior.json": ctx.generated.behavior_json}
    events = sorted((run_dir / behavior).glob("events.out.tfevents.*"),
                    key=lambda p: p.stat().st_size)
    if events:
        files[TRAINING_EVENTS] = events[-1]
    for name, path in (("job.json", ctx.ws.dir / "job.json"),
                       ("training_status.json", run_dir / "run_logs" / "training_status.json"),
                       ("configuration.yaml", run_dir / "configuration.yaml"),
                       ("evaluation.json", ctx.ws.dir / "evaluation.json")):
        if path.is_file():
            files[name] = path
    return files


def registration_requests(ctx: JobContext) -> list[RegistrationRequest]:
    """One version per behaviour the run trained, the job's own first (its asset); another behaviour's version is
    the asset `<asset>-<Behaviour>`, linked to the run (`<run key>#<Behaviour>`), with its own evaluation."""
    own = registration_request(ctx)
    out = [own]
    assert ctx.training
    for behavior, model in ctx.training.models.items():
        if behavior == own.behavior_name:
            continue
        metrics = {**own.metrics, "evaluation": ctx.evaluations.get(behavior, {})}
        out.append(RegistrationRequest(
            asset_id=f"{ctx.job.asset_spec.asset_id}-{behavior.lower()}", asset_name=f"{own.asset_name}-{behavior}",
            behavior_name=behavior, job_id=own.job_id, model_path=model, files=_files(ctx, behavior),
            metrics=metrics, lineage={**own.lineage, "behavior": behavior, "run_behaviors": list(ctx.training.models)},
            git_sha=own.git_sha, run_key=f"{own.run_key}#{behavior}" if own.run_key else None))
    return out


def registration_request(ctx: JobContext) -> RegistrationRequest:
    assert ctx.definition and ctx.generated and ctx.build and ctx.training
    job = ctx.job
    sha, dirty = git_sha(Path.cwd())
    status = read_json(ctx.training.run_dir / "run_logs" / "training_status.json")
    lineage = {
        "job_id": job.job_id, "run_key": ctx.state.run_key, "attempt": ctx.state.attempt,
        "spec_sha256": sha256_json(job.asset_spec.model_dump(mode="json")),
        "rl_config_sha256": sha256_json(job.rl_config.model_dump(mode="json")),
        "trainer_config_sha256": hashlib.sha256(ctx.generated.trainer_config.read_bytes()).hexdigest(),
        "behavior_sha256": hashlib.sha256(ctx.generated.behavior_json.read_bytes()).hexdigest(),
        "build": ctx.build.record(),
        "git_sha": sha, "git_dirty": dirty,
        "seeds": {"training": job.rl_config.seed, "evaluation": HELD_OUT_SEED},
        "demonstrations": demo_lineage(job.rl_config),
        "run_behaviors": list(ctx.training.models),
        "versions": {"unity_mlops": __version__, "python": platform.python_version(),
                     **{k: v for k, v in (status.get("metadata") or {}).items() if k.endswith("version")}},
    }
    return RegistrationRequest(
        asset_id=job.asset_spec.asset_id, asset_name=job.asset_spec.name, behavior_name=ctx.definition.behavior_name,
        job_id=job.job_id, model_path=ctx.training.onnx_path, files=_files(ctx, ctx.definition.behavior_name),
        metrics=summary_metrics(ctx),
        lineage=lineage, git_sha=sha, run_key=ctx.state.run_key,
    )


def run_versions(registry, version) -> list:
    """Every version a run registered (one per behaviour), the job's own first."""
    others = [b for b in version.lineage.get("run_behaviors") or [] if b != version.behavior_name]
    found = [registry.find_run(f"{version.run_key}#{b}") for b in others] if version.run_key else []
    return [version, *(v for v in found if v is not None)]
