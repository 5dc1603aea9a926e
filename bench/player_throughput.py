"""Trainer throughput with the headless player, against a "null" player that does no simulation.

The real ML-Agents trainer (PPO, batch 1024, buffer 10240, 3 epochs: the settings of the measurements in
shared/reference/rl-measurements.md) trains the 12-float / 2-action navigation task for several agents-per-player
and --num-envs settings. The same runs against the null player (constant observations, zero reward; same
message sizes) give the ceiling: the trainer's own cost. The ratio says how much the player costs.

Throughput = agent-steps per second between the first and the last progress line (start-up excluded).

    python bench/player_throughput.py [--steps 30000] [--settings 16x1,64x1,64x2,64x4]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import yaml

from mlops_unity_pipeline.behavior import build_behavior
from mlops_unity_pipeline.build.headless import build_headless_player
from mlops_unity_pipeline.specs import RLTrainingConfig
from mlops_unity_pipeline.trainer.config import trainer_config
from mlops_unity_pipeline.trainer.environment import resolve
from mlops_unity_pipeline.trainer.ports import reserve_ports
from mlops_unity_pipeline.trainer.runner import build_command, run_trainer


def measure(tmp: Path, agents: int, num_envs: int, steps: int, null: bool) -> float:
    env = resolve()
    d = build_behavior(behavior_name="Bench", archetype="navigation",
                       observation_space={"raycast": 8, "velocity": 2})
    cfg = RLTrainingConfig(max_steps=steps, num_envs=num_envs, summary_freq=max(2000, steps // 10),
                           hyperparameters={"batch_size": 1024, "buffer_size": 10240, "num_epoch": 3})
    name = f"{'null' if null else 'sim'}-{agents}x{num_envs}"
    player = build_headless_player(d, tmp / name / "build" / "Bench", env.python, agents)
    config = tmp / name / "trainer.yaml"
    config.write_text(yaml.safe_dump(trainer_config(d, cfg)))
    with reserve_ports(num_envs) as ports:
        cmd = build_command(env, config, player, name, tmp / name / "results", num_envs=num_envs, seed=1,
                            base_port=ports.base, resume=False, env_args=["--null"] if null else None)
        out = run_trainer(cmd, run_dir=tmp / name / "results" / name, behavior="Bench", max_steps=steps,
                          log_path=tmp / name / "trainer.log", cwd=tmp / name)
    if out.returncode != 0 or len(out.progress) < 2:
        sys.exit(f"benchmark run {name} failed; see {out.log_path}")
    first, last = out.progress[0], out.progress[-1]
    return (last.step - first.step) / (last.elapsed_s - first.elapsed_s)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=30000)
    ap.add_argument("--settings", default="16x1,64x1,64x2,64x4", help="agents-per-player x num-envs, comma-separated")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="unity-mlops-bench-") as tmp:
        for setting in args.settings.split(","):
            agents, envs = (int(x) for x in setting.split("x"))
            sim = measure(Path(tmp), agents, envs, args.steps, null=False)
            null = measure(Path(tmp), agents, envs, args.steps, null=True)
            rows.append((agents, envs, sim, null))
            print(f"  {agents:3d} agents x {envs} envs: player {sim:7.0f}  null {null:7.0f}  ratio {sim / null:.2f}",
                  flush=True)
    print("\n| agents per player | --num-envs | headless player (steps/s) | null player (steps/s) | ratio |")
    print("|---:|---:|---:|---:|---:|")
    for agents, envs, sim, null in rows:
        print(f"| {agents} | {envs} | {sim:,.0f} | {null:,.0f} | {sim / null:.2f} |")
    best = max(rows, key=lambda r: r[2])
    print(f"\nbest setting: {best[0]} agents x {best[1]} envs, {best[2]:,.0f} steps/s, ratio {best[2] / best[3]:.2f} "
          f"(target >= 0.85)")


if __name__ == "__main__":
    main()
