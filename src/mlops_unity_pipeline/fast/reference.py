"""The fast trainer's PPO update written the plain way: torch modules, the loss as one expression, autograd and
`torch.optim.Adam` (CleanRL style, readable top to bottom).

It is slow at these sizes — autograd's per-op bookkeeping costs more than the arithmetic, which is why the trainer
uses the hand-derived `network.py` + `loss.py` — but it is where a new loss term is written and checked first:
add it to `ppo_loss` here, then derive its gradient in `loss.py`; `tests/test_fast.py` checks that both compute the
same gradients and the same parameters after several Adam steps (fp32, within 1e-4).
"""

from __future__ import annotations

import torch
from torch import nn

from .loss import Minibatch
from .network import ActorCritic


def _body(n_obs: int, hidden: int, layers: int) -> nn.Sequential:
    parts: list[nn.Module] = []
    for i in range(layers):
        parts += [nn.Linear(n_obs if i == 0 else hidden, hidden), nn.SiLU()]  # ML-Agents' Swish
    return nn.Sequential(*parts)


class ReferenceActorCritic(nn.Module):
    """ML-Agents' separate actor and critic MLPs; a state-independent `log_std` for continuous actions."""

    def __init__(self, n_obs: int, n_out: int, hidden: int, layers: int, continuous: bool) -> None:
        super().__init__()
        self.actor, self.policy = _body(n_obs, hidden, layers), nn.Linear(hidden, n_out)
        self.critic, self.value = _body(n_obs, hidden, layers), nn.Linear(hidden, 1)
        self.log_std = nn.Parameter(torch.zeros(n_out)) if continuous else None

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(policy output: the mean or the logits, value)."""
        return self.policy(self.actor(obs)), self.value(self.critic(obs)).squeeze(-1)

    # ------------------------------------------------------------------ the fast network's layout
    def _pairs(self) -> list[tuple[str, list[torch.Tensor], str]]:
        """(fast parameter name, the reference tensors it is made of, how)."""
        linears = [(a, c) for a, c in zip(self.actor, self.critic, strict=True) if isinstance(a, nn.Linear)]
        out = []
        for i, (a, c) in enumerate(linears):
            out += [(f"body.{i}.weight", [a.weight, c.weight], "stack_t"),
                    (f"body.{i}.bias", [a.bias, c.bias], "stack")]
        out += [("policy.weight", [self.policy.weight], "t"), ("policy.bias", [self.policy.bias], "same"),
                ("value.weight", [self.value.weight], "t"), ("value.bias", [self.value.bias], "same")]
        if self.log_std is not None:
            out.append(("log_std", [self.log_std], "same"))
        return out

    @classmethod
    def from_fast(cls, net: ActorCritic) -> ReferenceActorCritic:
        """The same network with the fast one's current weights."""
        model = cls(net.n_obs, net.n_out, net.hidden, net.layers, net.continuous)
        with torch.no_grad():
            for name, tensors, how in model._pairs():
                fast = net.params[name]
                for k, t in enumerate(tensors):
                    src = fast[k] if how.startswith("stack") else fast
                    t.copy_(src.reshape(t.shape) if how in ("stack", "same") else src.T)
        return model

    def flat(self, grad: bool = False) -> torch.Tensor:
        """Parameters (or their gradients) in the fast network's flat layout, to compare with `net.flat`."""
        parts = []
        for _, tensors, how in self._pairs():
            ts = [t.grad if grad else t.detach() for t in tensors]
            if how == "stack_t":
                parts.append(torch.stack([t.T for t in ts]))
            elif how == "stack":
                parts.append(torch.stack(ts))
            else:
                parts.append(ts[0].T if how == "t" else ts[0])
        return torch.cat([p.reshape(-1) for p in parts])


def ppo_loss(model: ReferenceActorCritic, obs: torch.Tensor, mb: Minibatch, branches: tuple[int, ...] | None,
             eps: float, beta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """ML-Agents' PPO loss: clipped surrogate + 0.5 * clipped value loss - beta * entropy. Returns (loss,
    [policy loss, value loss, entropy])."""
    out, value = model(obs)
    if branches is None:
        dist = torch.distributions.Normal(out, torch.exp(model.log_std).expand_as(out))
        logp, entropy = dist.log_prob(mb.actions).sum(1), dist.entropy().sum(1)
    else:
        logp = entropy = torch.zeros(len(obs))
        for i, logits in enumerate(out.split(list(branches), 1)):
            dist = torch.distributions.Categorical(logits=logits)
            logp, entropy = logp + dist.log_prob(mb.actions[:, i]), entropy + dist.entropy()
    ratio = torch.exp(logp - mb.old_logp)
    policy_loss = -torch.min(ratio * mb.advantages, torch.clamp(ratio, 1 - eps, 1 + eps) * mb.advantages).mean()
    clipped = mb.old_values + torch.clamp(value - mb.old_values, -eps, eps)
    value_loss = torch.max((mb.returns - value) ** 2, (mb.returns - clipped) ** 2).mean()
    loss = policy_loss + 0.5 * value_loss - beta * entropy.mean()
    return loss, torch.stack([policy_loss, value_loss, entropy.mean()]).detach()


def update(model: ReferenceActorCritic, optimizer: torch.optim.Optimizer, obs: torch.Tensor, mb: Minibatch,
           branches: tuple[int, ...] | None, eps: float, beta: float) -> torch.Tensor:
    """One minibatch step: the loss, its gradients by autograd, one optimizer step. Returns the loss's parts."""
    optimizer.zero_grad()
    loss, stats = ppo_loss(model, obs, mb, branches, eps, beta)
    loss.backward()
    optimizer.step()
    return stats
