"""Offline-first training on the navigation task (seed 001's layout: rays 8, velocity 2, target 2).

1. Record scripted-expert demonstrations in the simulator.
2. Offline behavior cloning alone (no environment interaction): held-out success vs a random policy.
3. Online steps to reach the 70 % success bar: hybrid (BC checkpoint + behavioral_cloning in PPO) against PPO from
   scratch, both with the real ML-Agents trainer on the headless player; every checkpoint's ONNX is evaluated on
   the same held-out episodes.

    python bench/offline_bench.py [--max-steps 150000] [--interval 10000] [--episodes 300]
"""

from __future__ import annotations

import argparse
import re
import tempfile
from pathlib import Path

from mlops_unity_pipeline import RLTrainingConfig, TrainingJob, UnityAssetSpec, UnityMLOpsOrchestrator
from mlops_unity_pipeline.behavior import build_behavior
from mlops_unity_pipeline.demos.record import record_demonstrations
from mlops_unity_pipeline.evaluation.evaluate import evaluate_onnx

BAR = 0.70


def curve(run_dir: Path, behavior, episodes: int) -> list[tuple[int, float]]:
    points = []
    for onnx in (run_dir / behavior.behavior_name).glob(f"{behavior.behavior_name}-*.onnx"):
        step = int(re.search(r"-(\d+)\.onnx$", onnx.name).group(1))
        points.append((step, evaluate_onnx(str(onnx), behavior, episodes)[0].success_rate))
    return sorted(points)


def first_at_bar(points: list[tuple[int, float]]) -> int | None:
    return next((s for s, v in points if v >= BAR), None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--max-steps", type=int, default=150_000)
    ap.add_argument("--interval", type=int, default=10_000)
    ap.add_argument("--episodes", type=int, default=300)
    ap.add_argument("--demo-episodes", type=int, default=200)
    args = ap.parse_args()
    asset = UnityAssetSpec(asset_id="nav", name="Nav", description="Reach target position while avoiding obstacles",
                           observation_space={"raycast": 8, "velocity": 2})
    behavior = build_behavior(behavior_name="Nav", description=asset.description,
                              observation_space=asset.observation_space)
    with tempfile.TemporaryDirectory(prefix="unity-mlops-offline-") as tmp:
        root = Path(tmp)
        rec = record_demonstrations(behavior, args.demo_episodes, root / "demos" / "expert.demo")
        print(f"expert demonstrations: {rec.episodes} episodes, {rec.steps} steps, "
              f"expert success {rec.success_rate:.1%}")
        orch = UnityMLOpsOrchestrator(root / "runs", evaluation_episodes=args.episodes, show_progress=False)
        common = dict(max_steps=args.max_steps, checkpoint_interval=args.interval, keep_checkpoints=1000,
                      summary_freq=args.interval)
        offline = orch.execute_training_job_sync(TrainingJob(job_id="offline", asset_spec=asset, rl_config=
            RLTrainingConfig(use_offline_rl=True, demonstrations_path=str(rec.path), offline_mode="offline_only",
                             **common)))
        ev = offline.metrics["evaluation"]
        print(f"offline BC only: success {ev['model']['success_rate']:.1%} (random policy "
              f"{ev['random_baseline']['success_rate']:.1%}), no environment steps")
        results = {}
        for name, extra in (("hybrid", dict(use_offline_rl=True, demonstrations_path=str(rec.path))),
                            ("online", {})):
            r = orch.execute_training_job_sync(TrainingJob(job_id=name, asset_spec=asset,
                                                           rl_config=RLTrainingConfig(**common, **extra)))
            assert r.succeeded, (name, r.failed_stage, r.error)
            points = curve(root / "runs" / name / "training" / name, behavior, args.episodes)
            results[name] = (points, first_at_bar(points))
            print(f"{name}: " + ", ".join(f"{s // 1000}k:{v:.0%}" for s, v in points))
    print("\n| training | online steps to 70 % success | success at the end |")
    print("|---|---:|---:|")
    print(f"| offline BC only | 0 (no interaction) | {ev['model']['success_rate']:.1%} |")
    for name, (points, at_bar) in results.items():
        print(f"| {name} | {at_bar if at_bar is not None else f'> {args.max_steps}'} | {points[-1][1]:.1%} |")


if __name__ == "__main__":
    main()
