"""Evaluation on a build against evaluation in the simulator, for every built-in behaviour.

The same policy (the scripted expert, deterministic) plays the same number of held-out episodes in the in-process
simulator and on the headless player through ML-Agents' `UnityEnvironment` (the path a team's Unity build takes).
Printed per behaviour: success with its 95 % interval on both, whether each lies in the other's interval, mean
reward, and throughput (episodes/s; agent steps/s on the build); then the build's throughput with 1, 2 and 4
environment processes at once, and the paired mode the gates use against the default one.

    python bench/build_eval_bench.py [--episodes 500] [--agents 64] [--envs 1,2,4]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from mlops_unity_pipeline.behavior import build_behavior
from mlops_unity_pipeline.build.headless import build_headless_player
from mlops_unity_pipeline.demos.record import expert_policy
from mlops_unity_pipeline.evaluation.build_env import BuildEnvironment
from mlops_unity_pipeline.evaluation.environments import SimulatorEnvironment
from mlops_unity_pipeline.evaluation.evaluate import HELD_OUT_SEED, _FunctionPolicy
from mlops_unity_pipeline.evaluation.outcomes import summarize
from mlops_unity_pipeline.trainer.environment import resolve

ARCHETYPES = ("reach_target", "navigation", "patrol", "obstacle_course")


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--episodes", type=int, default=500)
    ap.add_argument("--agents", type=int, default=64, help="agents per headless player")
    ap.add_argument("--envs", default="1,2,4", help="environment processes to compare on navigation")
    args = ap.parse_args()
    python = resolve().python
    tmp = Path(tempfile.mkdtemp(prefix="build-eval-bench-"))
    print(f"{'behaviour':<16} {'simulator success':>24} {'build success':>24} {'agree':>6} "
          f"{'sim reward':>10} {'build reward':>12} {'sim ep/s':>9} {'build ep/s':>10} {'agent steps/s':>13}")
    for name in ARCHETYPES:
        d = build_behavior(behavior_name="Agent", archetype=name)
        policy = _FunctionPolicy(expert_policy(d), d)
        sim, sim_s = timed(lambda d=d, policy=policy: SimulatorEnvironment(d).run({"Agent": policy}, args.episodes,
                                                                                  HELD_OUT_SEED)["Agent"])
        exe = build_headless_player(d, tmp / name / "Agent", python, args.agents)
        with BuildEnvironment(exe, kind="headless-player", python=python, envs=2) as env:
            env.specs()  # start-up is not evaluation time
            out, build_s = timed(lambda env=env, policy=policy: env.run({"Agent": policy}, args.episodes,
                                                                        HELD_OUT_SEED)["Agent"])
            rate = env.last_run["steps_per_s"]
        a, b = summarize(sim, "expert", HELD_OUT_SEED), summarize(out, "expert", HELD_OUT_SEED)
        agree = a.success_ci95[0] <= b.success_rate <= a.success_ci95[1] and \
            b.success_ci95[0] <= a.success_rate <= b.success_ci95[1]
        fmt = lambda r: f"{r.success_rate:.3f} [{r.success_ci95[0]:.3f}, {r.success_ci95[1]:.3f}]"  # noqa: E731
        print(f"{name:<16} {fmt(a):>24} {fmt(b):>24} {'yes' if agree else 'NO':>6} {a.mean_reward:>10.3f} "
              f"{b.mean_reward:>12.3f} {args.episodes / sim_s:>9.0f} {args.episodes / build_s:>10.1f} {rate:>13,.0f}")

    d = build_behavior(behavior_name="Agent", archetype="navigation")
    policy = _FunctionPolicy(expert_policy(d), d)
    exe = tmp / "navigation" / "Agent" / "Agent"
    print(f"\nnavigation on the build, {args.episodes} episodes, {args.agents} agents per player:")
    print(f"{'processes':>9} {'mode':>8} {'seconds':>8} {'episodes/s':>10} {'agent steps/s':>13} {'vs 1 process':>12}")
    base = None
    for k in (int(x) for x in args.envs.split(",")):
        for paired in (False, True):
            with BuildEnvironment(exe, kind="headless-player", python=python, envs=k) as env:
                env._open(k)  # start-up excluded
                _, seconds = timed(lambda env=env, paired=paired: env.run({"Agent": policy}, args.episodes,
                                                                          HELD_OUT_SEED, paired=paired))
                rate = env.last_run["steps_per_s"]
            if base is None:
                base = seconds
            print(f"{k:>9} {'paired' if paired else 'default':>8} {seconds:>8.1f} {args.episodes / seconds:>10.1f} "
                  f"{rate:>13,.0f} {base / seconds:>11.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
