"""The generate stage: ML-Agents' strict YAML check costs a trainer-environment start (seconds) the first time a
config is seen, and a cache lookup after that (keyed by the YAML's bytes and the trainer environment's identity).

Runs the quick start's job twice in a fresh cache (UNITY_MLOPS_CACHE_DIR) with a tiny step budget and prints the
generate stage's seconds both times, and the cached check alone.

    python bench/generate_bench.py [--repeat 20]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from mlops_unity_pipeline import RLTrainingConfig, TrainingJob, UnityAssetSpec, UnityMLOpsOrchestrator
from mlops_unity_pipeline.trainer.environment import resolve
from mlops_unity_pipeline.trainer.mlagents_yaml import validate_with_mlagents


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=20, help="cached checks timed")
    args = ap.parse_args()
    asset = UnityAssetSpec(asset_id="test-001", name="SimpleAgent", asset_type="behavior",
                           description="Reach target position while avoiding obstacles",
                           observation_space={"raycast": 8, "velocity": 2},
                           action_space={"type": "continuous", "size": 2})
    config = RLTrainingConfig(max_steps=2048, num_envs=8, trainer="fast")
    python = resolve().python
    with tempfile.TemporaryDirectory(prefix="unity-mlops-generate-") as tmp:
        os.environ["UNITY_MLOPS_CACHE_DIR"] = str(Path(tmp) / "cache")
        orch = UnityMLOpsOrchestrator(Path(tmp) / "runs", show_progress=False)
        seconds = []
        for name in ("first", "again"):
            result = orch.execute_training_job_sync(TrainingJob(job_id=name, asset_spec=asset, rl_config=config))
            assert result.succeeded, result.error
            seconds.append(json.loads((Path(tmp) / "runs" / name / "metrics.json").read_text())
                           ["stage_seconds"]["generate"])
        yaml_path = next((Path(tmp) / "runs" / "again" / "generated").rglob("*.yaml"))
        checks = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            assert validate_with_mlagents(yaml_path, python) is None
            checks.append(time.perf_counter() - t0)
    print("| generate stage | seconds |")
    print("|---|---:|")
    print(f"| first time this config is seen (ML-Agents' parser runs) | {seconds[0]:.2f} |")
    print(f"| the same config again (cached verdict) | {seconds[1]:.3f} |")
    print(f"| the cached check alone (median of {args.repeat}) | {statistics.median(checks) * 1000:.1f} ms |")
    print(f"| ratio first / again | {seconds[0] / max(seconds[1], 1e-6):.0f}x |")


if __name__ == "__main__":
    main()
