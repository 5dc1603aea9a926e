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
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..behavior.definition import BehaviorDefinition
from ..behavior.simulator import Simulator
from ..evaluation.tfevents import EventWriter

SUPPORTED_HYPER = {"batch_size", "buffer_size", "learning_rate", "beta", "epsilon", "lambd", "num_epoch",
                   "learning_rate_schedule", "beta_schedule", "epsilon_schedule", "shared_critic"}
SUPPORTED_NETWORK = {"normalize", "hidden_units", "num_layers", "vis_encode_type"}
SUPPORTED_BEHAVIOR = {"trainer_type", "hyperparameters", "network_settings", "reward_signals", "max_steps",
                      "time_horizon", "summary_freq", "checkpoint_interval", "keep_checkpoints"}


class UnsupportedOption(ValueError):
    pass


def unsupported_options(settings: dict[str, Any]) -> list[str]:
    """What the fast trainer cannot honour in a behavior's ML-Agents settings (it must not silently ignore them)."""
    out = []
    if settings.get("trainer_type", "ppo") != "ppo":
        out.append(f"trainer_type {settings['trainer_type']} (the fast trainer is PPO only)")
    out += [f"{k}" for k in settings if k not in SUPPORTED_BEHAVIOR]
    hyper = settings.get("hyperparameters") or {}
    out += [f"hyperparameters.{k}" for k in hyper if k not in SUPPORTED_HYPER]
    if hyper.get("shared_critic"):
        out.append("hyperparameters.shared_critic: true")
    net = settings.get("network_settings") or {}
    out += [f"network_settings.{k}" for k in net if k not in SUPPORTED_NETWORK]
    if net.get("memory"):
        out.append("network_settings.memory")
    signals = settings.get("reward_signals") or {"extrinsic": {}}
    out += [f"reward_signals.{k}" for k in signals if k != "extrinsic"]
    out += [f"reward_signals.extrinsic.{k}" for k in (signals.get("extrinsic") or {}) if k not in ("gamma", "strength")]
    return out


@dataclass
class FastProgress:
    step: int
    max_steps: int
    elapsed_s: float
    mean_reward: float | None


def _torch():
    import torch

    return torch


def build_modules(definition: BehaviorDefinition, hidden: int, layers: int, normalize: bool):
    torch = _torch()
    nn = torch.nn

    class Swish(nn.Module):
        def forward(self, x):
            return x * torch.sigmoid(x)

    def mlp(n_in: int, n_out: int) -> nn.Module:
        mods, last = [], n_in
        for _ in range(layers):
            mods += [nn.Linear(last, hidden), Swish()]
            last = hidden
        mods.append(nn.Linear(last, n_out))
        return nn.Sequential(*mods)

    a = definition.action
    n_obs = definition.observation_size
    out = a.continuous if a.is_continuous else sum(a.branches)

    class Normalizer(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("mean", torch.zeros(n_obs))
            self.register_buffer("var", torch.ones(n_obs))
            self.register_buffer("count", torch.tensor(1e-4))
            self.enabled = normalize

        def update(self, x) -> None:
            if not self.enabled:
                return
            b_mean, b_var, n = x.mean(0), x.var(0, unbiased=False), x.shape[0]
            delta, total = b_mean - self.mean, self.count + n
            self.mean += delta * n / total
            self.var = (self.var * self.count + b_var * n + delta**2 * self.count * n / total) / total
            self.count = total

        def forward(self, x):
            if not self.enabled:
                return x
            return torch.clamp((x - self.mean) / torch.sqrt(self.var + 1e-8), -5.0, 5.0)

    class Actor(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.normalizer = Normalizer()
            self.body = mlp(n_obs, out)
            self.log_std = nn.Parameter(torch.zeros(out)) if a.is_continuous else None

        def forward(self, obs):
            return self.body(self.normalizer(obs))

    class Critic(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = mlp(n_obs, 1)

        def forward(self, obs_norm):
            return self.body(obs_norm).squeeze(-1)

    return Actor(), Critic()


class ExportModule:
    """Wraps the actor in ML-Agents' model contract (v3) for `torch.onnx.export`."""

    @staticmethod
    def build(actor, definition: BehaviorDefinition):
        torch = _torch()
        a = definition.action

        class Export(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.actor = actor
                self.register_buffer("version_number", torch.tensor([3.0]))
                self.register_buffer("memory_size", torch.tensor([0.0]))
                if a.is_continuous:
                    self.register_buffer("shape", torch.tensor([float(a.continuous)]))
                else:
                    self.register_buffer("shape", torch.tensor([[float(b) for b in a.branches]]))

            def forward(self, obs, masks=None):
                out = self.actor(obs)
                if a.is_continuous:
                    std = torch.exp(self.actor.log_std).expand_as(out)
                    sample = out + torch.randn_like(out) * std
                    stochastic = torch.clamp(sample, -3, 3) / 3
                    deterministic = torch.clamp(out, -3, 3) / 3
                    return self.version_number, self.memory_size, stochastic, self.shape, deterministic
                samples, argmaxes, start = [], [], 0
                for b in a.branches:
                    logits = out[:, start:start + b] + (masks[:, start:start + b] - 1.0) * 1e8
                    probs = torch.softmax(logits, dim=1)
                    samples.append(torch.multinomial(probs, 1))
                    argmaxes.append(torch.argmax(probs, dim=1, keepdim=True))
                    start += b
                return (self.version_number, self.memory_size, torch.cat(samples, dim=1), self.shape,
                        torch.cat(argmaxes, dim=1))

        return Export()


def export_onnx(actor, definition: BehaviorDefinition, path: Path) -> None:
    torch = _torch()
    a = definition.action
    module = ExportModule.build(actor, definition).eval()
    obs = torch.zeros(1, definition.observation_size)
    if a.is_continuous:
        inputs, names = (obs,), ["obs_0"]
        outputs = ["version_number", "memory_size", "continuous_actions", "continuous_action_output_shape",
                   "deterministic_continuous_actions"]
    else:
        inputs, names = (obs, torch.ones(1, sum(a.branches))), ["obs_0", "action_masks"]
        outputs = ["version_number", "memory_size", "discrete_actions", "discrete_action_output_shape",
                   "deterministic_discrete_actions"]
    dynamic = {n: {0: "batch"} for n in names}
    dynamic.update({outputs[2]: {0: "batch"}, outputs[4]: {0: "batch"}})
    import warnings

    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the legacy exporter is deliberate: opset 9, one file
        torch.onnx.export(module, inputs, str(path), opset_version=9, input_names=names, output_names=outputs,
                          dynamic_axes=dynamic, dynamo=False)


class _Adam:
    """Adam (Kingma & Ba) with torch's foreach kernels. `torch.optim.Adam` imports torch._dynamo on construction,
    which costs ~2.8 s per job on this machine class; this update is the same arithmetic without that import."""

    def __init__(self, params, lr: float, betas=(0.9, 0.999), eps: float = 1e-8) -> None:
        torch = _torch()
        self.params = [p for p in params if p.requires_grad]
        self.lr, self.b1, self.b2, self.eps, self.t = lr, betas[0], betas[1], eps, 0
        self.m = [torch.zeros_like(p) for p in self.params]
        self.v = [torch.zeros_like(p) for p in self.params]

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def step(self) -> None:
        torch = _torch()
        self.t += 1
        grads = [p.grad for p in self.params]
        with torch.no_grad():
            torch._foreach_mul_(self.m, self.b1)
            torch._foreach_add_(self.m, grads, alpha=1 - self.b1)
            torch._foreach_mul_(self.v, self.b2)
            torch._foreach_addcmul_(self.v, grads, grads, value=1 - self.b2)
            bias1, bias2 = 1 - self.b1**self.t, 1 - self.b2**self.t
            denom = torch._foreach_sqrt(self.v)
            torch._foreach_div_(denom, math.sqrt(bias2))
            torch._foreach_add_(denom, self.eps)
            torch._foreach_addcdiv_(self.params, self.m, denom, value=-self.lr / bias1)

    def state_dict(self) -> dict:
        return {"t": self.t, "m": self.m, "v": self.v, "lr": self.lr}

    def load_state_dict(self, state: dict) -> None:
        self.t = state["t"]
        for dst, src in zip(self.m + self.v, state["m"] + state["v"], strict=True):
            dst.copy_(src)


def _log_prob(actor, obs, actions, branches, with_entropy: bool = False):
    """log pi(a|s) (and the entropy) for a batch, for the Gaussian or the categorical branches."""
    torch = _torch()
    out = actor(obs)
    if actor.log_std is not None:
        std = torch.exp(actor.log_std)
        logp = (-((actions - out) ** 2) / (2 * std**2) - actor.log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
        if not with_entropy:
            return logp
        entropy = (0.5 + 0.5 * math.log(2 * math.pi) + actor.log_std).sum().expand(len(obs))
        return logp, entropy
    logp, entropy, start = 0, 0, 0
    for i, b in enumerate(branches):
        ls = torch.log_softmax(out[:, start:start + b], -1)
        logp = logp + ls.gather(1, actions[:, i:i + 1].long()).squeeze(-1)
        entropy = entropy - (ls.exp() * ls).sum(-1)
        start += b
    return (logp, entropy) if with_entropy else logp


class _NumpyActor:
    def __init__(self, layers, mean, inv_std, std) -> None:
        self.layers, self.mean, self.inv_std, self.std = layers, mean, inv_std, std

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        x = obs if self.mean is None else np.clip((obs - self.mean) * self.inv_std, -5.0, 5.0)
        last = len(self.layers) - 1
        for i, (w, b) in enumerate(self.layers):
            x = x @ w + b
            if i < last:
                x = x / (1.0 + np.exp(-x))  # Swish
        return x


def _numpy_actor(actor) -> _NumpyActor:
    torch = _torch()
    with torch.no_grad():
        linears = [m for m in actor.body if isinstance(m, torch.nn.Linear)]
        layers = [(m.weight.numpy().T.copy(), m.bias.numpy().copy()) for m in linears]
        norm = actor.normalizer
        mean = norm.mean.numpy().copy() if norm.enabled else None
        inv_std = (1.0 / np.sqrt(norm.var.numpy() + 1e-8)).astype(np.float32) if norm.enabled else None
        std = np.exp(actor.log_std.numpy()).astype(np.float32) if actor.log_std is not None else None
    return _NumpyActor(layers, mean, inv_std, std)


def _sample_branches(logits: np.ndarray, branches: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    out, start = [], 0
    for b in branches:
        z = logits[:, start:start + b]
        p = np.exp(z - z.max(1, keepdims=True))
        cdf = np.cumsum(p, 1)
        u = rng.random((len(z), 1)) * cdf[:, -1:]
        out.append(np.minimum((u > cdf).sum(1), b - 1))
        start += b
    return np.stack(out, 1).astype(np.int64)


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
        self.net = settings.get("network_settings", {})
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

    def train(self, resume: bool = False, cancel: threading.Event | None = None,
              deadline: float | None = None) -> dict[str, Any]:
        torch = _torch()
        torch.manual_seed(self.seed)
        torch.set_num_threads(2)
        d, h = self.d, self.h
        max_steps = int(self.s["max_steps"])
        horizon = int(self.s.get("time_horizon", 64))
        buffer_size, batch_size = int(h.get("buffer_size", 10240)), int(h.get("batch_size", 1024))
        epochs = int(h.get("num_epoch", 3))
        lr0, beta0 = float(h.get("learning_rate", 3e-4)), float(h.get("beta", 5e-3))
        eps0 = float(h.get("epsilon", 0.2))
        lam = float(h.get("lambd", 0.95))
        summary_freq = int(self.s.get("summary_freq", 50000))
        ckpt_interval = int(self.s.get("checkpoint_interval", 500000))
        keep = int(self.s.get("keep_checkpoints", 5))
        actor, critic = build_modules(d, int(self.net.get("hidden_units", 128)), int(self.net.get("num_layers", 2)),
                                      bool(self.net.get("normalize", False)))
        params = list(actor.parameters()) + list(critic.parameters())
        opt = _Adam(params, lr=lr0)
        step, checkpoints = 0, []
        self.model_dir.mkdir(parents=True, exist_ok=True)
        ckpt_file = self.model_dir / "checkpoint.pt"
        if resume and ckpt_file.is_file():
            state = torch.load(ckpt_file, weights_only=False)
            actor.load_state_dict(state["actor"])
            critic.load_state_dict(state["critic"])
            opt.load_state_dict(state["optimizer"])
            step, checkpoints = int(state["step"]), state.get("checkpoints", [])
            self.log(f"[INFO] Resuming from {ckpt_file} at step {step}.")
        elif not resume:
            shutil.rmtree(self.run_dir, ignore_errors=True)
            self.model_dir.mkdir(parents=True, exist_ok=True)
        writer = EventWriter(self.model_dir)
        a = d.action
        sim = Simulator(d, self.n, self.seed)
        obs = sim.observe()
        rng = np.random.default_rng(self.seed)
        ep_returns, ep_lengths = np.zeros(self.n), np.zeros(self.n, np.int64)
        finished_returns: list[float] = []
        finished_lengths: list[int] = []
        stats: dict[str, list[float]] = {}
        seen = 0  # episodes already summarised
        t0 = time.monotonic()
        next_summary = (step // summary_freq + 1) * summary_freq
        next_ckpt = (step // ckpt_interval + 1) * ckpt_interval
        steps_per_update = max(1, math.ceil(buffer_size / self.n))
        interrupted_by_user = False

        def save_checkpoint(at: int) -> None:
            base = self.model_dir / f"{d.behavior_name}-{at}"
            state = {"step": at, "actor": actor.state_dict(), "critic": critic.state_dict(),
                     "optimizer": opt.state_dict(), "checkpoints": checkpoints}
            torch.save(state, f"{base}.pt")
            export_onnx(actor, d, Path(f"{base}.onnx"))
            mean = float(np.mean(finished_returns[-100:])) if finished_returns else None
            checkpoints.append({"steps": at, "file_path": f"{base}.onnx", "reward": mean,
                                "creation_time": time.time(), "auxillary_file_paths": [f"{base}.pt"]})
            state["checkpoints"] = checkpoints
            torch.save(state, ckpt_file)
            while len(checkpoints) > keep:
                old = checkpoints.pop(0)
                for f in [old["file_path"], *old["auxillary_file_paths"]]:
                    Path(f).unlink(missing_ok=True)

        while step < max_steps:
            if (cancel is not None and cancel.is_set()) or (deadline is not None and time.monotonic() > deadline):
                interrupted_by_user = True
                break
            T = steps_per_update
            obs_buf = np.empty((T, self.n, d.observation_size), np.float32)
            width = a.continuous or len(a.branches)
            act_buf = np.empty((T, self.n, width), np.float32 if a.is_continuous else np.int64)
            logp_buf = np.empty((T, self.n), np.float32)
            rew_buf = np.empty((T, self.n), np.float32)
            val_buf = np.empty((T, self.n), np.float32)
            nextval_buf = np.zeros((T, self.n), np.float32)  # bootstrap value where a chunk is cut or interrupted
            done_buf = np.zeros((T, self.n), bool)  # the trajectory chain is cut after this step
            boot_buf = np.zeros((T, self.n), bool)
            # rollout: the actor runs in NumPy (a few small matmuls per step beat torch's per-call overhead);
            # values and old log-probabilities are computed afterwards in one batched torch call
            t_phase = time.perf_counter()
            policy = _numpy_actor(actor)
            next_obs = np.zeros((T, self.n, d.observation_size), np.float32)
            for t in range(T):
                out = policy(obs)
                if a.is_continuous:
                    act = out + rng.standard_normal(out.shape).astype(np.float32) * policy.std
                    env_act = np.clip(act, -3, 3) / 3
                else:
                    act = _sample_branches(out, a.branches, rng)
                    env_act = act
                res = sim.step(env_act)
                obs_buf[t], act_buf[t] = obs, act
                rew_buf[t] = res.reward * self.strength
                ep_returns += res.reward
                ep_lengths += 1
                cut = res.done | ((t + 1) % horizon == 0) | (t == T - 1)
                done_buf[t] = cut
                boot = cut & ~(res.done & ~res.interrupted)  # value continues unless a true terminal
                boot_buf[t] = boot
                if boot.any():
                    next_obs[t, boot] = res.obs[boot]
                if res.done.any():
                    idx = np.flatnonzero(res.done)
                    finished_returns.extend(ep_returns[idx].tolist())
                    finished_lengths.extend(ep_lengths[idx].tolist())
                    ep_returns[idx], ep_lengths[idx] = 0.0, 0
                    obs = sim.reset_done(res.done, res.obs)
                else:
                    obs = res.obs
            self.timings["rollout"] += time.perf_counter() - t_phase
            t_phase = time.perf_counter()
            torch.set_num_threads(2)
            with torch.inference_mode():
                flat = torch.from_numpy(obs_buf.reshape(-1, d.observation_size))
                val_buf[:] = critic(actor.normalizer(flat)).numpy().reshape(T, self.n)
                if boot_buf.any():
                    nb = torch.from_numpy(next_obs[boot_buf])
                    nextval_buf[boot_buf] = critic(actor.normalizer(nb)).numpy()
                logp_buf[:] = _log_prob(actor, flat, torch.from_numpy(act_buf.reshape(T * self.n, -1)),
                                        a.branches).numpy().reshape(T, self.n)
            step += T * self.n
            # GAE, backwards, with the chain cut at every done/horizon boundary
            adv = np.zeros((T, self.n), np.float32)
            last = np.zeros(self.n, np.float32)
            for t in range(T - 1, -1, -1):
                nxt_val = np.where(done_buf[t], nextval_buf[t], val_buf[t + 1] if t + 1 < T else nextval_buf[t])
                delta = rew_buf[t] + self.gamma * nxt_val - val_buf[t]
                last = delta + self.gamma * lam * np.where(done_buf[t], 0.0, last)
                adv[t] = last
            returns = adv + val_buf
            self.timings["prepare"] += time.perf_counter() - t_phase
            t_phase = time.perf_counter()
            # update
            torch.set_num_threads(2)
            lr = max(self._decay(lr0, 1e-10, h.get("learning_rate_schedule", "linear"), step), 1e-10)
            beta = self._decay(beta0, 1e-5, h.get("beta_schedule", h.get("learning_rate_schedule", "linear")), step)
            eps = self._decay(eps0, 0.1, h.get("epsilon_schedule", h.get("learning_rate_schedule", "linear")), step)
            opt.lr = lr
            obs_t = torch.from_numpy(obs_buf.reshape(-1, d.observation_size))
            actor.normalizer.update(obs_t)
            A = torch.from_numpy(act_buf.reshape(T * self.n, -1))
            LP, ADV = torch.from_numpy(logp_buf.reshape(-1)), torch.from_numpy(adv.reshape(-1))
            RET, V_OLD = torch.from_numpy(returns.reshape(-1)), torch.from_numpy(val_buf.reshape(-1))
            total = obs_t.shape[0]
            pl_hist, vl_hist, ent_hist = [], [], []
            for _ in range(epochs):
                perm = torch.from_numpy(rng.permutation(total))
                for start in range(0, total - batch_size + 1 if total >= batch_size else 1, batch_size):
                    mb = perm[start:start + batch_size]
                    o, act_mb = obs_t[mb], A[mb]
                    logp, entropy = _log_prob(actor, o, act_mb, a.branches, with_entropy=True)
                    ratio = torch.exp(logp - LP[mb])
                    clipped = torch.clamp(ratio, 1 - eps, 1 + eps) * ADV[mb]
                    policy_loss = -torch.min(ratio * ADV[mb], clipped).mean()
                    v = critic(actor.normalizer(o))
                    v_clip = V_OLD[mb] + torch.clamp(v - V_OLD[mb], -eps, eps)
                    value_loss = torch.max((RET[mb] - v) ** 2, (RET[mb] - v_clip) ** 2).mean()
                    loss = policy_loss + 0.5 * value_loss - beta * entropy.mean()
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    pl_hist.append(policy_loss.item())
                    vl_hist.append(value_loss.item())
                    ent_hist.append(entropy.mean().item())
            self.timings["update"] += time.perf_counter() - t_phase
            for k, v in (("Losses/Policy Loss", np.mean(pl_hist)), ("Losses/Value Loss", np.mean(vl_hist)),
                         ("Policy/Entropy", np.mean(ent_hist)), ("Policy/Learning Rate", lr), ("Policy/Beta", beta),
                         ("Policy/Epsilon", eps), ("Policy/Extrinsic Value Estimate", float(val_buf.mean()))):
                stats.setdefault(k, []).append(float(v))
            if step >= next_summary or step >= max_steps:
                elapsed = time.monotonic() - t0
                recent = finished_returns[seen:]
                scalars = {k: float(np.mean(v)) for k, v in stats.items()}
                mean_r = float(np.mean(recent)) if recent else None
                if recent:
                    scalars["Environment/Cumulative Reward"] = mean_r
                    scalars["Policy/Extrinsic Reward"] = mean_r
                    scalars["Environment/Episode Length"] = float(np.mean(finished_lengths[-len(recent):]))
                writer.add_scalars(step, scalars)
                stats, seen = {}, len(finished_returns)
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
        save_checkpoint(step)  # final (also on cancel: ML-Agents saves on interruption too)
        final = self.run_dir / f"{d.behavior_name}.onnx"
        shutil.copyfile(checkpoints[-1]["file_path"], final)
        writer.close()
        status = {d.behavior_name: {"checkpoints": checkpoints,
                                    "final_checkpoint": {**checkpoints[-1], "file_path": str(final)}},
                  "metadata": {"stats_format_version": "0.3.0", "mlagents_version": "fast (unity-mlops)",
                               "torch_version": torch.__version__}}
        (self.run_dir / "run_logs").mkdir(parents=True, exist_ok=True)
        (self.run_dir / "run_logs" / "training_status.json").write_text(json.dumps(status, indent=4))
        return {"final_step": step, "interrupted": interrupted_by_user, "onnx": str(final),
                "seconds": time.monotonic() - t0}
