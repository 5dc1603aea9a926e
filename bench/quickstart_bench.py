"""The setup guide's quick start (seed 001: navigation, rays 8 + velocity 2, 8 envs, 100k steps), several seeds on
each trainer, through the public API exactly as the guide runs it; success on 500 held-out episodes per run.

`--before` adds ML-Agents with the navigation defaults this project had before (time horizon 64 whatever the agent
count, learning rate 3e-4, minibatches of 512, observation normalization), for the same seeds in the same run.

    python bench/quickstart_bench.py [--seeds 1,2,3,4,5] [--trainers mlagents,fast] [--max-steps 100000] [--before]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from mlops_unity_pipeline import RLTrainingConfig, TrainingJob, UnityAssetSpec, UnityMLOpsOrchestrator

BAR = 0.90
BEFORE = {"time_horizon": 64, "hyperparameters": {"learning_rate": 3.0e-4, "batch_size": 512},
          "network_settings": {"normalize": True}}


def quick_start(root: Path, trainer: str, seed: int, max_steps: int, **extra) -> tuple[float, float]:
    """(held-out success, wall seconds of the whole job) for one seed."""
    asset = UnityAssetSpec(asset_id="test-001", name="SimpleAgent", asset_type="behavior",
                           description="Reach target position while avoiding obstacles",
                           observation_space={"raycast": 8, "velocity": 2},
                           action_space={"type": "continuous", "size": 2})
    config = RLTrainingConfig(algorithm="PPO", max_steps=max_steps, num_envs=8, time_scale=20.0, seed=seed,
                              trainer=trainer, **extra)
    orch = UnityMLOpsOrchestrator(root / f"{trainer}-{seed}", show_progress=False)
    t0 = time.perf_counter()
    result = orch.execute_training_job_sync(TrainingJob(job_id=f"smoke-{trainer}-{seed}", asset_spec=asset,
                                                        rl_config=config))
    wall = time.perf_counter() - t0
    if not result.succeeded:
        raise SystemExit(f"{trainer} seed {seed} failed at {result.failed_stage}: {result.error}")
    return result.metrics["evaluation"]["model"]["success_rate"], wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="1,2,3,4,5")
    ap.add_argument("--trainers", default="mlagents,fast")
    ap.add_argument("--max-steps", type=int, default=100_000)
    ap.add_argument("--before", action="store_true", help="also ML-Agents with the previous navigation defaults")
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    runs = [(t, t, {}) for t in args.trainers.split(",")]
    if args.before:
        runs.append(("mlagents, previous defaults", "mlagents", BEFORE))
    rows = {}
    with tempfile.TemporaryDirectory(prefix="unity-mlops-quickstart-") as tmp:
        for label, trainer, extra in runs:
            rows[label] = []
            for seed in seeds:
                success, wall = quick_start(Path(tmp) / label.replace(", ", "-").replace(" ", "-"), trainer, seed,
                                            args.max_steps, **extra)
                rows[label].append((success, wall))
                print(f"{label} seed {seed}: success {success:.1%}, job {wall:.0f} s", flush=True)
    print(f"\n| trainer | {' | '.join(f'seed {s}' for s in seeds)} | ≥ {BAR:.0%} | median job (s) |")
    print(f"|---|{'---:|' * len(seeds)}---:|---:|")
    for trainer, runs in rows.items():
        ok = sum(s >= BAR for s, _ in runs)
        print(f"| {trainer} | {' | '.join(f'{s:.1%}' for s, _ in runs)} | {ok}/{len(runs)} | "
              f"{statistics.median(w for _, w in runs):.0f} |")


if __name__ == "__main__":
    main()
