"""The `fast` trainer: PPO in-process on the vectorized simulator, driven by the same trainer YAML as ML-Agents.

Semantics follow ML-Agents' PPO: `buffer_size` experiences per update, `num_epoch` passes in minibatches of
`batch_size`, linear (or constant) schedules for the learning rate, `beta` (to 1e-5) and `epsilon` (to 0.1) over
`max_steps`, GAE with the extrinsic signal's `gamma` and `lambd`, bootstrapping at every `time_horizon` cut and on
max-step interruptions, clipped value loss, separate actor and critic MLPs (`hidden_units` x `num_layers`, Swish),
a state-independent Gaussian (continuous) or masked categorical branches (discrete), observation normalization
inside the graph when `normalize` is set. Options it does not implement are reported before training starts.

Outputs are what the pipeline reads from ML-Agents: `<run>/<B>/<B>-<step>.onnx|.pt`, `checkpoint.pt`, `<run>/<B>.onnx`,
`run_logs/training_status.json` and TensorBoard events under ML-Agents' tag names; `resume` continues a run.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from ..behavior.definition import BehaviorDefinition
from ..evaluation.tfevents import EventWriter
from .export import export_onnx
from .loss import Minibatch, continuous_grads, discrete_grads
from .network import ActorCritic, Adam
from .options import unsupported_options
from .rollout import Rollout, RolloutCollector, gae


class UnsupportedOption(ValueError):
    pass


@dataclass
class FastProgress:
    step: int
    max_steps: int
    elapsed_s: float
    mean_reward: float | None


def _save_atomic(obj: Any, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as fh:
        torch.save(obj, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


class FastPPOTrainer:
    def __init__(self, definition: BehaviorDefinition, settings: dict[str, Any], run_dir: Path, *, num_agents: int,
                 seed: int = 0, on_progress: Callable[[FastProgress], None] | None = None,
                 log: Callable[[str], None] = print) -> None:
        problems = unsupported_options(settings)
        if problems:
            raise UnsupportedOption("the fast trainer does not support: " + ", ".join(problems)
                                    + " (use trainer: mlagents, or remove them)")
        self.d = definition
        self.s = settings
        self.h = {"learning_rate_schedule": "linear", **settings.get("hyperparameters", {})}
        self.net_settings = settings.get("network_settings", {})
        extrinsic = (settings.get("reward_signals") or {}).get("extrinsic") or {}
        self.gamma = float(extrinsic.get("gamma", 0.99))
        self.strength = float(extrinsic.get("strength", 1.0))
        self.run_dir = Path(run_dir)
        self.model_dir = self.run_dir / definition.behavior_name
        self.n = num_agents
        self.seed = seed
        self.on_progress = on_progress
        self.log = log
        self.timings = {"rollout": 0.0, "prepare": 0.0, "update": 0.0}

    # ------------------------------------------------------------------ schedules (as ML-Agents' DecayedValue)
    def _decay(self, initial: float, final: float, schedule: str, step: int) -> float:
        if schedule == "constant":
            return initial
        frac = min(1.0, step / max(1, int(self.s["max_steps"])))
        return initial - (initial - final) * frac

    def _schedules(self, step: int) -> tuple[float, float, float]:
        h = self.h
        lr_schedule = h.get("learning_rate_schedule", "linear")
        lr = max(self._decay(float(h.get("learning_rate", 3e-4)), 1e-10, lr_schedule, step), 1e-10)
        beta = self._decay(float(h.get("beta", 5e-3)), 1e-5, h.get("beta_schedule", lr_schedule), step)
        eps = self._decay(float(h.get("epsilon", 0.2)), 0.1, h.get("epsilon_schedule", lr_schedule), step)
        return lr, beta, eps

    # ------------------------------------------------------------------ one PPO iteration
    def _prepare(self, net: ActorCritic, buf: Rollout, lam: float) -> tuple[torch.Tensor, float]:
        """Normalizer update, value estimates, GAE; returns the update's samples as one [columns, samples] table
        (normalized observations, actions, old log-probs, advantages, returns, old values) and the mean value."""
        T, n, o = buf.rewards.shape[0], buf.rewards.shape[1], self.d.observation_size
        obs = buf.obs.reshape(T * n, o)
        net.update_normalizer(obs)  # before the value estimates, as ML-Agents does
        width = buf.actions.shape[2]
        table = torch.empty(o + width + 4, T * n)
        x = net.normalized(obs)
        table[:o] = torch.from_numpy(x.T)
        with torch.no_grad():
            values = net.values(torch.from_numpy(np.concatenate([x, net.normalized(buf.next_obs[buf.boot])]))).numpy()
        v, next_values = values[:T * n].reshape(T, n), np.zeros((T, n), np.float32)
        next_values[buf.boot] = values[T * n:]
        adv = gae(buf.rewards, v, next_values, buf.cut, self.gamma, lam)
        table[o:o + width] = torch.from_numpy(buf.actions.reshape(T * n, width).T)
        table[o + width] = torch.from_numpy(buf.logp.reshape(-1))
        table[o + width + 1] = torch.from_numpy(adv.reshape(-1))
        table[o + width + 2] = torch.from_numpy((adv + v).reshape(-1))
        table[o + width + 3] = torch.from_numpy(v.reshape(-1))
        return table, float(v.mean())

    def _update(self, net: ActorCritic, opt: Adam, table: torch.Tensor, beta: float, eps: float,
                rng: np.random.Generator) -> list[float]:
        """`num_epoch` passes over the samples in shuffled minibatches; mean [policy loss, value loss, entropy]."""
        h, o, a = self.h, self.d.observation_size, self.d.action
        epochs, batch_size = int(h.get("num_epoch", 3)), int(h.get("batch_size", 1024))
        total = table.shape[1]
        width = table.shape[0] - o - 4
        batch_size = min(batch_size, total)
        mb = torch.empty(table.shape[0], batch_size)
        stats = []
        with torch.no_grad():
            for _ in range(epochs):
                perm = torch.from_numpy(rng.permutation(total))
                for start in range(0, total - batch_size + 1, batch_size):
                    torch.index_select(table, 1, perm[start:start + batch_size], out=mb)
                    actions = mb[o:o + width].T
                    batch = Minibatch(actions if a.is_continuous else actions.long(), *mb[o + width:])
                    out, value = net.forward(mb[:o].T)
                    if a.is_continuous:
                        g = continuous_grads(out, value, net.params["log_std"], batch, eps, beta)
                    else:
                        g = discrete_grads(out, value, a.branches, batch, eps, beta)
                    net.backward(g.out, g.value, g.log_std)
                    opt.step()
                    stats.append(g.stats)
        return torch.stack(stats).mean(0).tolist()

    def train(self, resume: bool = False, cancel: threading.Event | None = None,
              deadline: float | None = None) -> dict[str, Any]:
        # torch's update uses both cores; NumPy's BLAS (the rollout's small matmuls) gets one thread, so that its
        # idle-spinning workers do not compete with torch's for the cores (measured: ~15 % of the whole run)
        torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
        with threadpool_limits(limits=1, user_api="blas"):
            return self._train(resume, cancel, deadline)

    def _train(self, resume: bool, cancel: threading.Event | None, deadline: float | None) -> dict[str, Any]:
        torch.manual_seed(self.seed)
        d, h = self.d, self.h
        max_steps = int(self.s["max_steps"])
        buffer_size = int(h.get("buffer_size", 10240))
        lam = float(h.get("lambd", 0.95))
        summary_freq = int(self.s.get("summary_freq", 50000))
        ckpt_interval = int(self.s.get("checkpoint_interval", 500000))
        keep = int(self.s.get("keep_checkpoints", 5))
        net = ActorCritic.for_behavior(d, int(self.net_settings.get("hidden_units", 128)),
                                       int(self.net_settings.get("num_layers", 2)),
                                       bool(self.net_settings.get("normalize", False)))
        opt = Adam(net.flat, net.grad, lr=float(h.get("learning_rate", 3e-4)))
        step, checkpoints = 0, []
        resumed_from = None
        self.model_dir.mkdir(parents=True, exist_ok=True)
        ckpt_file = self.model_dir / "checkpoint.pt"
        if resume and ckpt_file.is_file():
            state = torch.load(ckpt_file, weights_only=False)
            net.load_state_dict(state["network"])
            opt.load_state_dict(state["optimizer"])
            step, checkpoints = int(state["step"]), state.get("checkpoints", [])
            resumed_from = step
            self.log(f"[INFO] Resuming from {ckpt_file} at step {step}.")
        elif not resume:
            shutil.rmtree(self.run_dir, ignore_errors=True)
            self.model_dir.mkdir(parents=True, exist_ok=True)
        writer = EventWriter(self.model_dir)
        collector = RolloutCollector(d, self.n, max(1, math.ceil(buffer_size / self.n)),
                                     horizon=int(self.s.get("time_horizon", 64)), reward_scale=self.strength,
                                     seed=self.seed)
        episodes = collector.episodes
        rng = np.random.default_rng(self.seed)
        stats: dict[str, list[float]] = {}
        seen = 0  # episodes already summarised
        t0 = time.monotonic()
        next_summary = (step // summary_freq + 1) * summary_freq
        next_ckpt = (step // ckpt_interval + 1) * ckpt_interval
        interrupted_by_user = False

        def save_checkpoint(at: int) -> None:
            base = self.model_dir / f"{d.behavior_name}-{at}"
            state = {"step": at, "network": net.state_dict(), "optimizer": opt.state_dict(),
                     "checkpoints": checkpoints}
            _save_atomic(state, Path(f"{base}.pt"))
            export_onnx(net.torch_actor(), d, Path(f"{base}.onnx.tmp"))
            os.replace(f"{base}.onnx.tmp", f"{base}.onnx")
            mean = float(np.mean(episodes.returns[-100:])) if episodes.returns else None
            checkpoints.append({"steps": at, "file_path": f"{base}.onnx", "reward": mean,
                                "creation_time": time.time(), "auxillary_file_paths": [f"{base}.pt"]})
            state["checkpoints"] = checkpoints
            _save_atomic(state, ckpt_file)  # a kill -9 mid-save leaves the previous checkpoint intact
            while len(checkpoints) > keep:
                old = checkpoints.pop(0)
                for f in [old["file_path"], *old["auxillary_file_paths"]]:
                    Path(f).unlink(missing_ok=True)

        while step < max_steps:
            if (cancel is not None and cancel.is_set()) or (deadline is not None and time.monotonic() > deadline):
                interrupted_by_user = True
                break
            t_phase = time.perf_counter()
            buf = collector.collect(net.numpy_actor())
            t_prepare = time.perf_counter()
            table, value_estimate = self._prepare(net, buf, lam)
            step += buf.rewards.size
            t_update = time.perf_counter()
            lr, beta, eps = self._schedules(step)
            opt.lr = lr
            policy_loss, value_loss, entropy = self._update(net, opt, table, beta, eps, rng)
            t_end = time.perf_counter()
            for k, v in (("rollout", t_prepare - t_phase), ("prepare", t_update - t_prepare),
                         ("update", t_end - t_update)):
                self.timings[k] += v
            for k, v in (("Losses/Policy Loss", policy_loss), ("Losses/Value Loss", value_loss),
                         ("Policy/Entropy", entropy), ("Policy/Learning Rate", lr), ("Policy/Beta", beta),
                         ("Policy/Epsilon", eps), ("Policy/Extrinsic Value Estimate", value_estimate)):
                stats.setdefault(k, []).append(float(v))
            if step >= next_summary or step >= max_steps:
                elapsed = time.monotonic() - t0
                recent = episodes.returns[seen:]
                scalars = {k: float(np.mean(v)) for k, v in stats.items()}
                mean_r = float(np.mean(recent)) if recent else None
                if recent:
                    scalars["Environment/Cumulative Reward"] = mean_r
                    scalars["Policy/Extrinsic Reward"] = mean_r
                    scalars["Environment/Episode Length"] = float(np.mean(episodes.lengths[-len(recent):]))
                writer.add_scalars(step, scalars)
                stats, seen = {}, len(episodes.returns)
                if mean_r is None:
                    self.log(f"[INFO] {d.behavior_name}. Step: {step}. Time Elapsed: {elapsed:.3f} s. No episode was "
                             "completed since last summary. Training.")
                else:
                    self.log(f"[INFO] {d.behavior_name}. Step: {step}. Time Elapsed: {elapsed:.3f} s. Mean Reward: "
                             f"{mean_r:.3f}. Std of Reward: {np.std(recent):.3f}. Training.")
                if self.on_progress:
                    self.on_progress(FastProgress(step, max_steps, elapsed, mean_r))
                next_summary = (step // summary_freq + 1) * summary_freq
            if step >= next_ckpt and step < max_steps:
                save_checkpoint(step)
                next_ckpt = (step // ckpt_interval + 1) * ckpt_interval
        if not checkpoints or checkpoints[-1]["steps"] != step:
            save_checkpoint(step)  # final (also on cancel: ML-Agents saves on interruption too)
        final = self.run_dir / f"{d.behavior_name}.onnx"
        shutil.copyfile(checkpoints[-1]["file_path"], f"{final}.tmp")
        os.replace(f"{final}.tmp", final)
        writer.close()
        status = {d.behavior_name: {"checkpoints": checkpoints,
                                    "final_checkpoint": {**checkpoints[-1], "file_path": str(final)}},
                  "metadata": {"stats_format_version": "0.3.0", "mlagents_version": "fast (unity-mlops)",
                               "torch_version": torch.__version__}}
        (self.run_dir / "run_logs").mkdir(parents=True, exist_ok=True)
        status_file = self.run_dir / "run_logs" / "training_status.json"
        Path(f"{status_file}.tmp").write_text(json.dumps(status, indent=4))
        os.replace(f"{status_file}.tmp", status_file)
        return {"final_step": step, "interrupted": interrupted_by_user, "onnx": str(final),
                "seconds": time.monotonic() - t0, "resumed_from_step": resumed_from}

