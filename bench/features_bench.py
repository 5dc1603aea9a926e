"""ML-Agents features on the headless player, each trained long enough to learn, against its baseline.

Every scenario is a real job (the product's pipeline: generate, build the player, train with `mlagents-learn`,
evaluate on held-out episodes in the simulator), so the numbers are what a user would get:

* curriculum vs none, judged on the hardest lesson (the obstacle course with all 10 obstacles);
* self-play: the duel's ELO over the run (the ghost trainer's Self-play/ELO);
* MA-POCA vs a random pair on the pads;
* LSTM vs feed-forward on the memory corridor (a feed-forward policy can only guess: about half);
* camera only vs random on reaching the target.

    python bench/features_bench.py [--steps 150000] [--only lstm,camera]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from mlops_unity_pipeline import RLTrainingConfig, TrainingJob, UnityAssetSpec, UnityMLOpsOrchestrator
from mlops_unity_pipeline.evaluation.tfevents import read_scalars

CURRICULUM = {"num_obstacles": {"curriculum": [
    {"name": "open", "value": 0.0, "completion_criteria": {"measure": "progress", "behavior": "Course",
                                                           "threshold": 0.2}},
    {"name": "some", "value": 4.0, "completion_criteria": {"measure": "progress", "behavior": "Course",
                                                           "threshold": 0.45}},
    {"name": "all", "value": 10.0}]}}


def scenarios() -> dict[str, list[tuple[str, dict, dict]]]:
    """name -> [(label, asset spec, rl_config)]"""
    return {
        "curriculum": [("curriculum", {"name": "Course", "archetype": "obstacle_course"},
                        {"environment_parameters": CURRICULUM, "curriculum_behavior": "Course"}),
                       ("no curriculum", {"name": "Course", "archetype": "obstacle_course"}, {})],
        "selfplay": [("self-play", {"name": "Racer", "archetype": "duel"}, {})],
        "poca": [("MA-POCA", {"name": "PadPair", "archetype": "pads"}, {})],
        "lstm": [("LSTM", {"name": "Hallwayer", "archetype": "corridor"}, {}),
                 ("feed-forward", {"name": "Hallwayer", "archetype": "corridor"},
                  {"network_settings": {"memory": None}})],
        "camera": [("camera only", {"name": "Seer", "archetype": "reach_target", "observation_space": {"camera": 24}},
                    {})],
    }


def run(workspace: Path, label: str, spec: dict, rl: dict, steps: int) -> dict:
    orch = UnityMLOpsOrchestrator(workspace, evaluation_episodes=500, show_progress=False)
    job_id = label.replace(" ", "-").replace("/", "-").lower()
    job = TrainingJob(job_id=job_id, asset_spec=UnityAssetSpec(asset_id=job_id, **spec),
                      rl_config=RLTrainingConfig(max_steps=steps, num_envs=2, seed=1, **rl))
    t0 = time.perf_counter()
    result = orch.execute_training_job_sync(job)
    if not result.succeeded:
        raise SystemExit(f"{label}: {result.failed_stage}: {result.error}\n{result.log_tail}")
    ev = result.metrics["evaluation"]
    run_dir = workspace / job_id / "training" / job_id / spec["name"]
    elo = []
    for f in sorted(run_dir.glob("events.out.tfevents.*")):
        elo += read_scalars(f).get("Self-play/ELO", [])
    return {"label": label, "model": ev["model"], "random": ev["random_baseline"], "elo": elo,
            "minutes": (time.perf_counter() - t0) / 60}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=150_000)
    ap.add_argument("--only", help="comma-separated scenarios (curriculum,selfplay,poca,lstm,camera)")
    args = ap.parse_args()
    chosen = scenarios()
    if args.only:
        chosen = {k: v for k, v in chosen.items() if k in args.only.split(",")}
    workspace = Path(tempfile.mkdtemp(prefix="features-bench-"))
    print(f"{args.steps:,} steps per run, 500 held-out episodes each; workspace {workspace}")
    print(f"{'scenario':<12} {'policy':<15} {'success':>8} {'random':>8} {'mean reward':>12} {'minutes':>8}")
    for name, runs in chosen.items():
        for label, spec, rl in runs:
            r = run(workspace, label, spec, rl, args.steps)
            print(f"{name:<12} {label:<15} {r['model']['success_rate']:>8.3f} {r['random']['success_rate']:>8.3f} "
                  f"{r['model']['mean_reward']:>12.3f} {r['minutes']:>8.1f}", flush=True)
            if r["elo"]:
                points = r["elo"][:: max(1, len(r["elo"]) // 8)] + r["elo"][-1:]
                print("  ELO over the run: " + ", ".join(f"{s // 1000}k {v:.0f}" for s, v in points))
    return 0


if __name__ == "__main__":
    sys.exit(main())
