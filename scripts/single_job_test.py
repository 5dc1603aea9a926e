# scripts/single_job_test.py
import asyncio
import sys

from mlops_unity_pipeline import (
    RLTrainingConfig,
    TrainingJob,
    UnityAssetSpec,
    UnityMLOpsOrchestrator,
)


async def main() -> None:
    orchestrator = UnityMLOpsOrchestrator()

    asset = UnityAssetSpec(
        asset_id="test-001",
        name="SimpleAgent",
        asset_type="behavior",
        description="Reach target position",
    )

    config = RLTrainingConfig(
        algorithm="PPO",
        max_steps=100_000,
    )

    job = TrainingJob(
        job_id="single-job-test",
        asset_spec=asset,
        rl_config=config,
    )

    result = await orchestrator.execute_training_job(job)
    print(f"Training complete: {result.trained_model_path}")
    if not result.succeeded:  # fail fast with a non-zero exit code (seed 000, section 4)
        print(f"job failed in stage {result.failed_stage}: {result.error}", file=sys.stderr)
        sys.exit(1)
    print("See it in the dashboard: .venv/bin/unity-mlops ui   then open http://127.0.0.1:8765/")


if __name__ == "__main__":
    asyncio.run(main())
