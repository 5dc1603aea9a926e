"""Retraining for the reproducibility gate: the candidate's exact job, again, with other seeds.

A model that cannot be reproduced from its recorded configuration (a lucky seed, an edited file, a hand-made
model) should not reach production. `Retrainer` re-runs the job recorded with the version (`job.json`) through
the same pipeline — generate, build, train — with `seeds` further training seeds at a step budget, into a scratch
registry under the workspace, and returns each retrained ONNX. The gate then plays the candidate and each
retrained model on fresh held-out episodes. A version of a team's own build is retrained on that very build (found
by its recorded digest, or rebuilt with `UNITY_BUILD_COMMAND`), never on a player of the description.
"""

from __future__ import annotations

import json
from pathlib import Path

from .. import settings
from ..registry.base import ModelVersion


class RetrainUnavailable(Exception):
    """This version cannot be retrained here (no recorded job, or the job failed); the message says why."""


class Retrainer:
    def __init__(self, workspace: str | Path, evaluation_episodes: int = 50) -> None:
        self.workspace = Path(workspace)
        self.evaluation_episodes = evaluation_episodes
        self.last_build: dict | None = None  # the build the last retraining ran on (kind, digest, reused/rebuilt)

    def __call__(self, version: ModelVersion, seed: int, max_steps: int | None = None) -> Path:
        from ..pipeline.orchestrator import UnityMLOpsOrchestrator
        from ..specs import TrainingJob

        job_file = version.model_path.parent / "job.json"
        if not job_file.is_file():
            raise RetrainUnavailable(f"{version.version} has no recorded job.json to retrain from")
        job = TrainingJob.model_validate(json.loads(job_file.read_text()))
        cfg = job.rl_config.model_copy(update={"seed": seed, **({"max_steps": max_steps} if max_steps else {})})
        job = job.model_copy(update={"job_id": f"{job.job_id}-repro-{version.run_number}-s{seed}", "rl_config": cfg,
                                     "registry": None, "vertex": None})  # a job's own registry is not for repros
        repro = self.workspace / "_repro"  # retrained candidates never enter the real registry
        builder = None
        record = (version.metrics.get("evaluation") or {}).get("environment") or {}
        if record.get("kind") == "unity":  # the candidate's own game, not the description's player
            from ..build.reuse import ReuseBuilder

            builder = ReuseBuilder(record)
        orch = UnityMLOpsOrchestrator(repro, registry_root=repro / settings.REGISTRY_DIRNAME,
                                      evaluation_episodes=self.evaluation_episodes, show_progress=False,
                                      builder=builder)
        result = orch.execute_training_job_sync(job)
        if not result.succeeded or not result.trained_model_path:
            raise RetrainUnavailable(f"retraining {version.version} with seed {seed} failed in stage "
                                     f"{result.failed_stage}: {result.error}")
        lineage = orch.local_registry.get(result.model_version).lineage if result.model_version else {}
        self.last_build = {**(lineage.get("build") or {}), "found": builder.outcome if builder else "built"}
        return Path(result.trained_model_path)
