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

import math
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from ..behavior.definition import BehaviorDefinition
from ..trainer.base import Callback, StopCondition
from ..trainer.settings import TrainerSettings
from .callbacks import Checkpoints, Summaries
from .loss import Minibatch, continuous_grads, discrete_grads
from .network import ActorCritic, Adam
from .options import unsupported_options
from .rollout import Rollout, RolloutCollector, gae
from .threads import UpdateThreads


class UnsupportedOption(ValueError):
    pass


class FastPPOTrainer:
    def __init__(self, definition: BehaviorDefinition, settings: TrainerSettings, run_dir: Path, *,
                 num_agents: int, seed: int = 0, log: Callable[[str], None] = print) -> None:
        problems = unsupported_options(settings.raw)
        if problems:
            raise UnsupportedOption("the fast trainer does not support: " + ", ".join(problems)
                                    + " (use trainer: mlagents, or remove them)")
        self.d = definition
        self.s = settings
        self.h = settings.hyperparameters
        self.run_dir = Path(run_dir)
        self.model_dir = self.run_dir / definition.behavior_name
        self.n = num_agents
        self.seed = seed
        self.log = log
        self.timings = {"rollout": 0.0, "prepare": 0.0, "update": 0.0}

    # ------------------------------------------------------------------ schedules (as ML-Agents' DecayedValue)
    def _decay(self, initial: float, final: float, schedule: str, step: int) -> float:
        if schedule == "constant":
            return initial
        frac = min(1.0, step / max(1, self.s.max_steps))
        return initial - (initial - final) * frac

    def _schedules(self, step: int) -> tuple[float, float, float]:
        h = self.h
        lr = max(self._decay(h.learning_rate, 1e-10, h.learning_rate_schedule, step), 1e-10)
        beta = self._decay(h.beta, 1e-5, h.beta_schedule or h.learning_rate_schedule, step)
        eps = self._decay(h.epsilon, 0.1, h.epsilon_schedule or h.learning_rate_schedule, step)
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
        adv = gae(buf.rewards, v, next_values, buf.cut, self.s.gamma, lam)
        table[o:o + width] = torch.from_numpy(buf.actions.reshape(T * n, width).T)
        table[o + width] = torch.from_numpy(buf.logp.reshape(-1))
        # the policy term sees advantages normalized over the whole update, as ML-Agents' PPO does; the value
        # target is the raw return
        table[o + width + 1] = torch.from_numpy(((adv - adv.mean()) / (adv.std() + 1e-10)).reshape(-1))
        table[o + width + 2] = torch.from_numpy((adv + v).reshape(-1))
        table[o + width + 3] = torch.from_numpy(v.reshape(-1))
        return table, float(v.mean())

    def _update(self, net: ActorCritic, opt: Adam, table: torch.Tensor, beta: float, eps: float,
                rng: np.random.Generator) -> list[float]:
        """`num_epoch` passes over the samples in shuffled minibatches; mean [policy loss, value loss, entropy]."""
        h, o, a = self.h, self.d.observation_size, self.d.action
        epochs, batch_size = h.num_epoch, h.batch_size
        total = table.shape[1]
        width = table.shape[0] - o - 4
        batch_size = min(batch_size, total)
        mb = torch.empty(table.shape[0], batch_size)
        # views of the minibatch buffer, made once: each minibatch is gathered into it
        obs, actions, columns = mb[:o].T, mb[o:o + width].T, mb[o + width:].unbind()
        batch = Minibatch(actions, *columns)
        stats = []
        with torch.no_grad():
            for _ in range(epochs):
                perm = torch.from_numpy(rng.permutation(total))
                for start in range(0, total - batch_size + 1, batch_size):
                    torch.index_select(table, 1, perm[start:start + batch_size], out=mb)
                    if not a.is_continuous:
                        batch.actions = actions.long()
                    out, value = net.forward(obs)
                    if a.is_continuous:
                        g = continuous_grads(out, value, net.params["log_std"], batch, eps, beta)
                    else:
                        g = discrete_grads(out, value, a.branches, batch, eps, beta)
                    net.backward(g.out, g.value, g.log_std)
                    opt.step()
                    stats.append(g.stats)
        return torch.stack(stats).mean(0).tolist()

    def train(self, resume: bool = False, stop: StopCondition | None = None,
              callback: Callback | None = None) -> dict[str, Any]:
        # torch's update threads are chosen before each update (fast/threads.py); NumPy's BLAS (the rollout's small
        # matmuls) gets one thread, so its idle-spinning workers do not compete with torch's (~15 % of a run)
        with threadpool_limits(limits=1, user_api="blas"):
            return self._train(resume, stop or StopCondition(), callback or Callback())

    def _start(self, resume: bool) -> tuple[ActorCritic, Adam, int, list[dict[str, Any]], int | None]:
        """A new network, or the run's checkpoint when resuming: (net, optimizer, step, checkpoints, resumed from)."""
        n = self.s.network
        net = ActorCritic.for_behavior(self.d, n.hidden_units, n.num_layers, n.normalize)
        opt = Adam(net.flat, net.grad, lr=self.h.learning_rate)
        ckpt_file = self.model_dir / "checkpoint.pt"
        if resume and ckpt_file.is_file():
            state = torch.load(ckpt_file, weights_only=False)
            net.load_state_dict(state["network"])
            opt.load_state_dict(state["optimizer"])
            step = int(state["step"])
            self.log(f"[INFO] Resuming from {ckpt_file} at step {step}.")
            return net, opt, step, state.get("checkpoints", []), step
        if not resume:
            shutil.rmtree(self.run_dir, ignore_errors=True)
        self.model_dir.mkdir(parents=True, exist_ok=True)
        return net, opt, 0, [], None

    def _train(self, resume: bool, stop: StopCondition, callback: Callback) -> dict[str, Any]:
        torch.manual_seed(self.seed)
        s, h, behavior = self.s, self.h, self.d.behavior_name
        net, opt, step, history, resumed_from = self._start(resume)
        collector = RolloutCollector(self.d, self.n, max(1, math.ceil(h.buffer_size / self.n)),
                                     horizon=s.time_horizon, reward_scale=s.strength, seed=self.seed)
        rng = np.random.default_rng(self.seed)
        threads = UpdateThreads()
        summaries = Summaries(self.model_dir, behavior, collector.episodes, s.summary_freq, s.max_steps, self.log,
                              start_step=step)
        checkpoints = Checkpoints(self.run_dir, behavior, self.d, s.checkpoint_interval, s.keep_checkpoints,
                                  collector.episodes, history, start_step=step)
        interrupted = False
        while step < s.max_steps:
            if stop.should_stop():
                interrupted = True
                break
            t_phase = time.perf_counter()
            buf = collector.collect(net.numpy_actor())
            torch.set_num_threads(threads.choose())  # after the NumPy-only rollout: our torch threads are idle
            t_prepare = time.perf_counter()
            table, value_estimate = self._prepare(net, buf, h.lambd)
            step += buf.rewards.size
            t_update = time.perf_counter()
            lr, beta, eps = self._schedules(step)
            opt.lr = lr
            policy_loss, value_loss, entropy = self._update(net, opt, table, beta, eps, rng)
            t_end = time.perf_counter()
            for k, v in (("rollout", t_prepare - t_phase), ("prepare", t_update - t_prepare),
                         ("update", t_end - t_update)):
                self.timings[k] += v
            summaries.add({"Losses/Policy Loss": policy_loss, "Losses/Value Loss": value_loss,
                           "Policy/Entropy": entropy, "Policy/Learning Rate": lr, "Policy/Beta": beta,
                           "Policy/Epsilon": eps, "Policy/Extrinsic Value Estimate": value_estimate})
            if summaries.due(step) and not callback.on_progress(summaries.write(step)):
                stop.stopped_by_callback = True
            if checkpoints.due(step, s.max_steps):
                checkpoints.save(step, net, opt)
        final = checkpoints.finish(step, net, opt)
        summaries.close()
        return {"final_step": step, "interrupted": interrupted, "onnx": str(final),
                "seconds": time.monotonic() - summaries.t0, "resumed_from_step": resumed_from}
