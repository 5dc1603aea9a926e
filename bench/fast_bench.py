"""The `fast` trainer against Stable-Baselines3 PPO and the real ML-Agents trainer, in one run.

Same task (navigation, seed 001's layout: 8 rays + velocity + target = 12 floats, 2 continuous actions), same
hyperparameters (PPO, batch 1024, buffer 10240, 3 epochs, lr 3e-4 linear, beta 5e-3, epsilon 0.2, lambda 0.95,
gamma 0.99, 2 x 128 Swish, observation normalization), same seed, 64 simulated agents. Every trainer is evaluated
(deterministic actions, the same held-out episodes) every `--eval-every` steps; time-to-X counts training wall time
only (from the start of the train stage for the pipeline's trainers, from `learn()` for SB3, evaluations excluded).
steps/s is measured the same way for all three: steps between the first and the last evaluation point over the
training time between them, so start-up (imports, process and environment launch) counts for none of them; the
pipeline's whole train stage is shown beside it. Fast runs a second time right after SB3 and its steps/s pools
both runs (fast, SB3, fast): this machine class's speed drifts by ±20 % within minutes, and the bracket keeps a
drift from landing on one side of the ratio. Needs the bench extra: pip install 'unity-mlops[bench]'.

Then, in the same run: the same trainers again while `--load` busy processes (started here) compete for the cores,
and `--concurrent` fast jobs at once through the pipeline (as the scheduler's local executor runs them) against one
alone. `--task obstacle_course` runs the harder task (PPO needs about 350k steps to reach 90 % there).

    python bench/fast_bench.py [--steps 300000] [--eval-every 20000] [--episodes 300] [--only fast,sb3]
                               [--load 2] [--concurrent 2] [--task navigation|obstacle_course]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mlops_unity_pipeline import RLTrainingConfig, TrainingJob, UnityAssetSpec, UnityMLOpsOrchestrator
from mlops_unity_pipeline.behavior import build_behavior
from mlops_unity_pipeline.behavior.simulator import Simulator
from mlops_unity_pipeline.evaluation.evaluate import evaluate_onnx, evaluate_policy

TASKS = {"navigation": UnityAssetSpec(asset_id="nav", name="Nav", observation_space={"raycast": 8, "velocity": 2},
                                     description="Reach target position while avoiding obstacles"),
         "obstacle_course": UnityAssetSpec(asset_id="course", name="Nav", archetype="obstacle_course",
                                          description="Cross an obstacle course, visiting each target")}
ASSET = TASKS["navigation"]
HYPER = {"batch_size": 1024, "buffer_size": 10240, "num_epoch": 3, "learning_rate": 3e-4, "beta": 5e-3,
         "epsilon": 0.2, "lambd": 0.95, "learning_rate_schedule": "linear"}
NETWORK = {"normalize": True, "hidden_units": 128, "num_layers": 2}  # as SB3's VecNormalize + net_arch below
AGENTS, SEED = 64, 1


def definition():
    return build_behavior(behavior_name="Nav", description=ASSET.description, archetype=ASSET.archetype,
                          observation_space=ASSET.observation_space)


def _spin() -> None:
    while True:
        pass


@contextmanager
def busy(n: int):
    """n processes that keep a core busy each, as other jobs on a shared machine do."""
    procs = [mp.Process(target=_spin, daemon=True) for _ in range(n)]
    for p in procs:
        p.start()
    try:
        yield
    finally:
        for p in procs:
            p.kill()
            p.join()


def concurrent_fast(root: Path, jobs: int, steps: int) -> float:
    """Aggregate steps/s of `jobs` fast jobs started together in one orchestrator (the local executor's way)."""
    orch = UnityMLOpsOrchestrator(root, show_progress=False, evaluation_episodes=10)
    cfg = RLTrainingConfig(trainer="fast", max_steps=steps, seed=SEED, agents_per_env=AGENTS, hyperparameters=HYPER,
                           network_settings=NETWORK, summary_freq=steps, checkpoint_interval=steps)

    async def all_jobs():
        return await asyncio.gather(*(orch.execute_training_job(
            TrainingJob(job_id=f"c{jobs}-{i}", asset_spec=ASSET, rl_config=cfg)) for i in range(jobs)))

    results = asyncio.run(all_jobs())
    assert all(r.succeeded for r in results), [r.error for r in results]
    seconds = [json.loads((root / f"c{jobs}-{i}" / "metrics.json").read_text())["stage_seconds"]["train"]
               for i in range(jobs)]
    return jobs * steps / max(seconds)


def time_to(points: list[tuple[int, float, float]], bar: float) -> float | None:
    return next((t for _, t, s in points if s >= bar), None)


def run_pipeline(trainer: str, root: Path, steps: int, every: int, episodes: int):
    orch = UnityMLOpsOrchestrator(root / trainer, evaluation_episodes=episodes, show_progress=False)
    cfg = RLTrainingConfig(trainer=trainer, max_steps=steps, seed=SEED, agents_per_env=AGENTS, hyperparameters=HYPER,
                           network_settings=NETWORK, checkpoint_interval=every, keep_checkpoints=1000,
                           summary_freq=every)
    t0 = time.time()
    r = orch.execute_training_job_sync(TrainingJob(job_id=trainer, asset_spec=ASSET, rl_config=cfg))
    assert r.succeeded, (trainer, r.failed_stage, r.error)
    job_dir = root / trainer / trainer
    run = job_dir / "training" / trainer
    status = json.loads((run / "run_logs" / "training_status.json").read_text())["Nav"]["checkpoints"]
    stages = json.loads((job_dir / "metrics.json").read_text())["stage_seconds"]
    train_start = t0 + stages["generate"] + stages["build"]  # the training clock starts with the train stage
    d = definition()
    points = []
    for c in sorted(status, key=lambda c: c["steps"]):
        success = evaluate_onnx(c["file_path"], d, episodes)[0].success_rate
        points.append((c["steps"], c["creation_time"] - train_start, success))
    return points, stages["train"]


class SimVecEnv:
    """Our batched simulator as an SB3 VecEnv (auto-reset, terminal_observation, TimeLimit.truncated)."""

    def __init__(self, d, n, seed):
        import gymnasium as gym
        from stable_baselines3.common.vec_env import VecEnv

        class _Env(VecEnv):
            def __init__(self):
                self.sim = Simulator(d, n, seed)
                obs_space = gym.spaces.Box(-np.inf, np.inf, (d.observation_size,), np.float32)
                act_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
                super().__init__(n, obs_space, act_space)
                self._actions = None

            def reset(self):
                return self.sim.observe()

            def step_async(self, actions):
                self._actions = actions

            def step_wait(self):
                res = self.sim.step(np.clip(self._actions, -1, 1))
                infos = [{} for _ in range(self.num_envs)]
                obs = res.obs
                if res.done.any():
                    for i in np.flatnonzero(res.done):
                        infos[i]["terminal_observation"] = res.obs[i].copy()
                        infos[i]["TimeLimit.truncated"] = bool(res.interrupted[i])
                    obs = self.sim.reset_done(res.done, res.obs)
                return obs.copy(), res.reward.copy(), res.done.copy(), infos

            def close(self):
                pass

            def get_attr(self, name, indices=None):
                return [None] * self.num_envs

            def set_attr(self, name, value, indices=None):
                pass

            def env_method(self, name, *args, indices=None, **kwargs):
                return [None] * self.num_envs

            def env_is_wrapped(self, wrapper_class, indices=None):
                return [False] * self.num_envs

            def seed(self, seed=None):
                return [None] * self.num_envs

        self.env = _Env()


def run_sb3(steps: int, every: int, episodes: int):
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.vec_env import VecNormalize

    d = definition()
    venv = VecNormalize(SimVecEnv(d, AGENTS, SEED).env, norm_obs=True, norm_reward=False, clip_obs=5.0)
    points, train_time = [], [0.0]

    class Eval(BaseCallback):
        def __init__(self):
            super().__init__()
            self.next, self.t = every, time.time()

        def _on_step(self):
            if self.num_timesteps >= self.next:
                train_time[0] += time.time() - self.t
                policy = lambda o: self.model.predict(venv.normalize_obs(o), deterministic=True)[0]  # noqa: E731
                points.append((self.num_timesteps, train_time[0], evaluate_policy(policy, d, episodes).success_rate))
                self.next += every
                self.t = time.time()
            return True

    model = PPO("MlpPolicy", venv, n_steps=HYPER["buffer_size"] // AGENTS, batch_size=HYPER["batch_size"],
                n_epochs=HYPER["num_epoch"], learning_rate=lambda f: HYPER["learning_rate"] * f, ent_coef=HYPER["beta"],
                clip_range=HYPER["epsilon"], gae_lambda=HYPER["lambd"], gamma=0.99, seed=SEED, verbose=0,
                policy_kwargs={"net_arch": [128, 128], "activation_fn": torch.nn.SiLU})
    cb = Eval()
    model.learn(steps, callback=cb)
    train_time[0] += time.time() - cb.t
    return points, train_time[0]


def steady_span(points: list[tuple[int, float, float]]) -> tuple[int, float]:
    """(steps, seconds) between the first and the last evaluation point."""
    (s0, t0, _), (s1, t1, _) = points[0], points[-1]
    return s1 - s0, t1 - t0


@dataclass
class Run:
    points: list[tuple[int, float, float]]  # (steps, training seconds, evaluated success)
    total: float                            # the whole train stage, seconds
    spans: list[tuple[int, float]]          # (steps, seconds) of each measured run: one, or two for fast (A-B-A)

    @property
    def rate(self) -> float:
        return sum(s for s, _ in self.spans) / sum(t for _, t in self.spans)


def measure(chosen: list[str], root: Path, args: argparse.Namespace, when: str) -> dict[str, Run]:
    """Each trainer once, in order; where SB3 follows fast, fast runs again right after it (fast, SB3, fast) and its
    steps/s pools both runs, so a drift of this machine's speed during the pair skews neither side of the ratio."""
    runs: dict[str, Run] = {}
    for name in chosen:
        runs[name] = train(name, root / name, args)
        print(f"{name} done{when}", flush=True)
        if name == "sb3" and "fast" in runs:
            again = train("fast", root / "fast-again", args)
            runs["fast"].spans += again.spans
            print(f"fast done again{when}", flush=True)
    return runs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=300_000)
    ap.add_argument("--eval-every", type=int, default=20_000)
    ap.add_argument("--episodes", type=int, default=300)
    ap.add_argument("--only", default="fast,sb3,mlagents", help="comma-separated subset of fast,sb3,mlagents")
    ap.add_argument("--load", type=int, default=2, help="busy processes for the contended run (0: skip it)")
    ap.add_argument("--concurrent", type=int, default=2, help="fast jobs at once for the concurrency row (0: skip)")
    ap.add_argument("--task", choices=sorted(TASKS), default="navigation")
    args = ap.parse_args()
    global ASSET
    ASSET = TASKS[args.task]
    chosen = [t.strip() for t in args.only.split(",") if t.strip()]
    loaded: dict[str, Run] = {}
    with tempfile.TemporaryDirectory(prefix="unity-mlops-fast-") as tmp:
        results = measure(chosen, Path(tmp) / "quiet", args, "")
        if args.load:
            with busy(args.load):
                loaded = measure([n for n in chosen if n != "mlagents"], Path(tmp) / "loaded", args, " under load")
        if args.concurrent and "fast" in chosen:
            alone = concurrent_fast(Path(tmp) / "alone", 1, args.steps)
            together = concurrent_fast(Path(tmp) / "together", args.concurrent, args.steps)
    print(f"\ntask: {args.task}")
    table(results, "quiet machine")
    if loaded:
        table(loaded, f"{args.load} busy processes beside it")
    if args.concurrent and "fast" in chosen:
        print(f"\n{args.concurrent} fast jobs at once: {together:,.0f} steps/s in all, one alone {alone:,.0f} steps/s: "
              f"{together / alone:.2f}x (target >= 0.95)")
    for label, res in (("quiet", results), ("loaded", loaded)):
        for name, run in res.items():
            print(f"{label} {name}: " + ", ".join(f"{st // 1000}k:{sc:.0%}" for st, _, sc in run.points))


def train(name: str, root: Path, args: argparse.Namespace) -> Run:
    if name == "sb3":
        points, total = run_sb3(args.steps, args.eval_every, args.episodes)
    else:
        points, total = run_pipeline(name, root, args.steps, args.eval_every, args.episodes)
    return Run(points, total, [steady_span(points)])


def table(results: dict[str, Run], title: str) -> None:
    fmt = lambda t: f"{t:.1f} s" if t is not None else "not reached"  # noqa: E731
    label = {"fast": "unity-mlops fast", "sb3": "Stable-Baselines3 PPO", "mlagents": "ML-Agents (real trainer)"}
    print(f"\n{title}\n\n| trainer | steps/s | whole train stage | time to 70 % | time to 90 % | success at the end |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, run in results.items():
        print(f"| {label[name]} | {run.rate:,.0f} | {run.total:.1f} s | {fmt(time_to(run.points, 0.7))} | "
              f"{fmt(time_to(run.points, 0.9))} | {run.points[-1][2]:.1%} |")
    fast = results.get("fast")
    if fast and len(fast.spans) > 1:
        print("\nfast ran before and after SB3: " + " and ".join(f"{s / t:,.0f}" for s, t in fast.spans)
              + " steps/s, pooled above")
    if fast and "sb3" in results:
        f, b = fast.points[-1][2], results["sb3"].points[-1][2]
        print(f"\nsteps/s: fast/SB3 = {fast.rate / results['sb3'].rate:.2f}x; success at the end: fast {f:.1%} vs SB3 "
              f"{b:.1%} ({100 * (f - b):+.1f} points)")
    if fast and "mlagents" in results:
        f, m = fast.points[-1][2], results["mlagents"].points[-1][2]
        print(f"steps/s: fast/ML-Agents = {fast.rate / results['mlagents'].rate:.1f}x; success at the end: "
              f"fast {f:.1%} vs ML-Agents {m:.1%}")


if __name__ == "__main__":
    main()
