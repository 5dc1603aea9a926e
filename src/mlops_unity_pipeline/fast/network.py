"""The fast trainer's actor-critic: ML-Agents' separate actor and critic MLPs, computed as one stacked network.

Layer l of both bodies lives in one `[2, in, hidden]` tensor (index 0 actor, 1 critic), so one batched matmul
serves both networks. The bodies' backward pass is written out (matmuls and Swish' into preallocated buffers)
instead of recorded by autograd: at the sizes PPO uses here (1024 x 128) autograd's per-op bookkeeping and fresh
allocations cost more than the arithmetic. It starts from the loss's gradients w.r.t. the outputs (`loss.py`).
Every parameter is a view into one flat buffer, so the optimizer updates all of them with a handful of kernels.
The rollout uses a NumPy copy of the actor, and ONNX export writes the same copy's weights (`export.py`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..behavior.definition import BehaviorDefinition

ACTOR, CRITIC = 0, 1


@dataclass
class _Activations:
    """What the backward pass needs from one forward pass (buffers reused across minibatches)."""

    x: torch.Tensor             # [B, n_obs] normalized observations
    z: list[torch.Tensor]       # pre-activations per body layer, [2, B, h] (spent: backward reuses them as scratch)
    h: list[torch.Tensor]       # Swish(z) per body layer, [2, B, h]
    dh: torch.Tensor            # backward scratch: d loss / d h of the last layer [2, B, h]


class ActorCritic:
    def __init__(self, n_obs: int, n_out: int, hidden: int, layers: int, *, continuous: bool,
                 normalize: bool) -> None:
        self.n_obs, self.n_out, self.hidden, self.layers = n_obs, n_out, hidden, layers
        self.continuous, self.normalize = continuous, normalize
        # torch.nn.Linear's default initialization, created in the order of the reference modules (actor body and
        # head, then critic body and head), so a seed gives the same initial weights as torch modules would
        actor = [torch.nn.Linear(n_obs if i == 0 else hidden, hidden) for i in range(layers)]
        policy = torch.nn.Linear(hidden, n_out)
        critic = [torch.nn.Linear(n_obs if i == 0 else hidden, hidden) for i in range(layers)]
        value = torch.nn.Linear(hidden, 1)
        shapes: dict[str, tuple[int, ...]] = {}
        for i in range(layers):
            shapes[f"body.{i}.weight"] = (2, n_obs if i == 0 else hidden, hidden)
            shapes[f"body.{i}.bias"] = (2, 1, hidden)
        shapes.update({"policy.weight": (hidden, n_out), "policy.bias": (n_out,), "value.weight": (hidden, 1),
                       "value.bias": (1,)})
        if continuous:
            shapes["log_std"] = (n_out,)
        self.flat = torch.zeros(sum(math.prod(s) for s in shapes.values()))
        self.grad = torch.zeros_like(self.flat)
        self.params: dict[str, torch.Tensor] = {}
        self.grads: dict[str, torch.Tensor] = {}
        offset = 0
        for name, shape in shapes.items():
            size = math.prod(shape)
            self.params[name] = self.flat[offset:offset + size].view(shape)
            self.grads[name] = self.grad[offset:offset + size].view(shape)
            offset += size
        with torch.no_grad():
            for i in range(layers):
                for net, lin in ((ACTOR, actor[i]), (CRITIC, critic[i])):
                    self.params[f"body.{i}.weight"][net] = lin.weight.T
                    self.params[f"body.{i}.bias"][net, 0] = lin.bias
            self.params["policy.weight"].copy_(policy.weight.T)
            self.params["policy.bias"].copy_(policy.bias)
            self.params["value.weight"].copy_(value.weight.T)
            self.params["value.bias"].copy_(value.bias)
        self.norm_mean = torch.zeros(n_obs)
        self.norm_var = torch.ones(n_obs)
        self.norm_count = torch.tensor(1e-4)
        self._buffers: dict[int, _Activations] = {}

    @classmethod
    def for_behavior(cls, definition: BehaviorDefinition, hidden: int, layers: int, normalize: bool) -> ActorCritic:
        a = definition.action
        return cls(definition.observation_size, a.continuous if a.is_continuous else sum(a.branches), hidden, layers,
                   continuous=a.is_continuous, normalize=normalize)

    # ------------------------------------------------------------------ observation normalization (ML-Agents')
    def update_normalizer(self, obs: np.ndarray) -> None:
        if not self.normalize:
            return
        b_mean = torch.from_numpy(obs.mean(0, dtype=np.float64).astype(np.float32))
        b_var = torch.from_numpy(obs.var(0, dtype=np.float64).astype(np.float32))
        n = obs.shape[0]
        delta, total = b_mean - self.norm_mean, self.norm_count + n
        self.norm_mean += delta * n / total
        self.norm_var = (self.norm_var * self.norm_count + b_var * n + delta**2 * self.norm_count * n / total) / total
        self.norm_count = total

    def _mean_inv_std(self) -> tuple[np.ndarray, np.ndarray]:
        return self.norm_mean.numpy().copy(), (1.0 / np.sqrt(self.norm_var.numpy() + 1e-8)).astype(np.float32)

    def normalized(self, obs: np.ndarray) -> np.ndarray:
        if not self.normalize:
            return obs
        mean, inv_std = self._mean_inv_std()
        return np.clip((obs - mean) * inv_std, -5.0, 5.0)

    # ------------------------------------------------------------------ forward / backward
    def _acts(self, batch: int) -> _Activations:
        acts = self._buffers.get(batch)
        if acts is None:
            shape = (2, batch, self.hidden)
            acts = _Activations(torch.empty(batch, self.n_obs), [torch.empty(shape) for _ in range(self.layers)],
                                [torch.empty(shape) for _ in range(self.layers)], torch.empty(shape))
            self._buffers[batch] = acts
        return acts

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(policy output [B, n_out], value [B]) for normalized observations; activations kept for `backward`."""
        p = self.params
        acts = self._acts(x.shape[0])
        acts.x.copy_(x)
        inp = acts.x.expand(2, *x.shape)
        for i in range(self.layers):
            torch.baddbmm(p[f"body.{i}.bias"], inp, p[f"body.{i}.weight"], out=acts.z[i])
            torch.ops.aten.silu.out(acts.z[i], out=acts.h[i])
            inp = acts.h[i]
        out = torch.addmm(p["policy.bias"], inp[ACTOR], p["policy.weight"])
        value = torch.addmm(p["value.bias"], inp[CRITIC], p["value.weight"]).squeeze(-1)
        return out, value

    def backward(self, g_out: torch.Tensor, g_value: torch.Tensor, g_log_std: torch.Tensor | None = None) -> None:
        """Gradients of the loss w.r.t. every parameter, into `self.grad`, from those w.r.t. the last `forward`'s
        outputs (and `log_std`)."""
        p, g = self.params, self.grads
        acts = self._acts(g_out.shape[0])
        last = acts.h[-1]
        # as [n_out, B] @ [B, h]: MKL is ~2x slower on the [h, B] @ [B, n_out] form's skinny output
        g["policy.weight"].copy_(torch.mm(g_out.T, last[ACTOR]).T)
        torch.sum(g_out, 0, out=g["policy.bias"])
        g_value = g_value.unsqueeze(-1)
        torch.mm(last[CRITIC].T, g_value, out=g["value.weight"])
        torch.sum(g_value, 0, out=g["value.bias"])
        # the gradient flows back through as few buffers as possible (they are megabytes, L2 is not): d loss / d h
        # becomes d loss / d z in place, and each spent pre-activation buffer takes the gradient of the layer below
        dh = acts.dh
        torch.mm(g_out, p["policy.weight"].T, out=dh[ACTOR])
        torch.mm(g_value, p["value.weight"].T, out=dh[CRITIC])
        for i in range(self.layers - 1, -1, -1):
            torch.ops.aten.silu_backward.grad_input(dh, acts.z[i], grad_input=dh)
            inp = acts.h[i - 1] if i > 0 else acts.x.expand(2, *acts.x.shape)
            torch.bmm(inp.transpose(1, 2), dh, out=g[f"body.{i}.weight"])
            torch.sum(dh, 1, keepdim=True, out=g[f"body.{i}.bias"])
            if i > 0:
                below = acts.z[i]
                torch.bmm(dh, p[f"body.{i}.weight"].transpose(1, 2), out=below)
                dh = below
        if g_log_std is not None:
            g["log_std"].copy_(g_log_std)

    def values(self, x: torch.Tensor, chunk: int = 1024) -> torch.Tensor:
        """The critic alone on normalized observations [N, n_obs] (value estimates over a whole buffer), in chunks
        through reused buffers: large fresh temporaries cost more in page faults than in arithmetic."""
        p = self.params
        out = torch.empty(x.shape[0])
        hidden = [torch.empty(chunk, self.hidden) for _ in range(2)]
        for start in range(0, x.shape[0], chunk):
            h = x[start:start + chunk]
            rows = h.shape[0]
            for i in range(self.layers):
                nxt = hidden[i % 2][:rows]
                torch.addmm(p[f"body.{i}.bias"][CRITIC, 0], h, p[f"body.{i}.weight"][CRITIC], out=nxt)
                h = F.silu(nxt, inplace=True)
            torch.addmm(p["value.bias"], h, p["value.weight"], out=out[start:start + rows].unsqueeze(1))
        return out

    # ------------------------------------------------------------------ views for the rollout and for export
    def numpy_actor(self) -> NumpyActor:
        p = self.params
        layers = [(p[f"body.{i}.weight"][ACTOR].numpy().copy(), p[f"body.{i}.bias"][ACTOR, 0].numpy().copy())
                  for i in range(self.layers)]
        layers.append((p["policy.weight"].numpy().copy(), p["policy.bias"].numpy().copy()))
        mean, inv_std = self._mean_inv_std() if self.normalize else (None, None)
        std = np.exp(p["log_std"].numpy()).astype(np.float32) if self.continuous else None
        return NumpyActor(layers, mean, inv_std, std)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"flat": self.flat.clone(), "norm_mean": self.norm_mean.clone(), "norm_var": self.norm_var.clone(),
                "norm_count": self.norm_count.clone()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.flat.copy_(state["flat"])
        self.norm_mean, self.norm_var = state["norm_mean"].clone(), state["norm_var"].clone()
        self.norm_count = state["norm_count"].clone()


class NumpyActor:
    """The actor in NumPy for the rollout: at 64 observations per call a few small matmuls beat torch's per-call
    overhead."""

    def __init__(self, layers, mean, inv_std, std) -> None:
        self.layers, self.mean, self.inv_std, self.std = layers, mean, inv_std, std

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        x = obs if self.mean is None else np.minimum(np.maximum((obs - self.mean) * self.inv_std, -5.0), 5.0)
        last = len(self.layers) - 1
        for i, (w, b) in enumerate(self.layers):
            x = x @ w
            x += b
            if i < last:
                x /= 1.0 + np.exp(-x)  # Swish
        return x


class Adam:
    """Adam (Kingma & Ba) over the network's one flat parameter buffer: a few kernels per step. (`torch.optim.Adam`
    also imports torch._dynamo on construction, ~2.8 s per job on this machine class.)"""

    def __init__(self, params: torch.Tensor, grad: torch.Tensor, lr: float, betas=(0.9, 0.999),
                 eps: float = 1e-8) -> None:
        self.params, self.grad = params, grad
        self.lr, self.b1, self.b2, self.eps, self.t = lr, betas[0], betas[1], eps, 0
        self.m, self.v = torch.zeros_like(params), torch.zeros_like(params)
        self._denom = torch.empty_like(params)

    def step(self) -> None:
        self.t += 1
        g = self.grad
        self.m.mul_(self.b1).add_(g, alpha=1 - self.b1)
        self.v.mul_(self.b2).addcmul_(g, g, value=1 - self.b2)
        bias1, bias2 = 1 - self.b1**self.t, 1 - self.b2**self.t
        torch.sqrt(self.v, out=self._denom).div_(math.sqrt(bias2)).add_(self.eps)
        self.params.addcdiv_(self.m, self._denom, value=-self.lr / bias1)

    def state_dict(self) -> dict:
        return {"t": self.t, "m": self.m.clone(), "v": self.v.clone(), "lr": self.lr}

    def load_state_dict(self, state: dict) -> None:
        self.t = state["t"]
        self.m.copy_(state["m"])
        self.v.copy_(state["v"])
