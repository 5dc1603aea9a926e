"""ML-Agents' PPO loss and its gradient with respect to the network outputs, written out.

loss = policy_loss + 0.5 * value_loss - beta * mean(entropy), with
policy_loss = -mean(min(r * A, clip(r, 1 - eps, 1 + eps) * A)), r = exp(log pi(a|s) - old log pi(a|s)), and
value_loss = mean(max((R - v)^2, (R - v_clip)^2)), v_clip = v_old + clip(v - v_old, -eps, eps).

The gradients are the ones autograd gives for that expression (ties in min/max split evenly there, which sums to
the same thing); `tests/test_fast.py` checks them against autograd. Written out they are a dozen kernels on
[B]-sized tensors instead of autograd's ~60 recorded ops, which dominated the minibatch time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


@dataclass
class Minibatch:
    actions: torch.Tensor    # [B, k] float (continuous) or [B, branches] long (discrete)
    old_logp: torch.Tensor   # [B]
    advantages: torch.Tensor  # [B]
    returns: torch.Tensor    # [B]
    old_values: torch.Tensor  # [B]


@dataclass
class LossGrads:
    out: torch.Tensor                 # d loss / d policy output [B, n_out]
    value: torch.Tensor               # d loss / d value [B]
    log_std: torch.Tensor | None      # d loss / d log_std [k] (continuous)
    stats: torch.Tensor               # [policy loss, value loss, entropy]


def _policy_term(logp: torch.Tensor, mb: Minibatch, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(policy loss, d loss / d logp); consumes `logp`. At [B]-sized tensors each op costs its dispatch, so the
    terms are computed in place where a buffer is spent."""
    ratio = logp.sub_(mb.old_logp).exp_()
    s1 = ratio * mb.advantages
    s2 = ratio.clamp_(1 - eps, 1 + eps).mul_(mb.advantages)
    loss = torch.minimum(s1, s2).mean().neg_()
    # d(-s1/B)/d logp = -r * A / B where the unclipped term is taken, 0 elsewhere
    g_logp = s1.masked_fill_(s1 > s2, 0.0).mul_(-1.0 / len(s1))
    return loss, g_logp


def _value_term(value: torch.Tensor, mb: Minibatch, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(value loss, d (0.5 * value loss) / d value)."""
    change = value - mb.old_values
    error = value - mb.returns
    e1 = error.square()
    e2 = change.clamp(-eps, eps).add_(mb.old_values).sub_(mb.returns).square_()
    loss = torch.maximum(e1, e2).mean()
    # the gradient flows where the unclipped error is taken, or where the clip is inactive (both terms are then
    # the same function of the value, whichever rounding makes max() pick)
    stuck = (e1 < e2).logical_and_(change.abs_() > eps)
    g_value = error.masked_fill_(stuck, 0.0).mul_(1.0 / len(value))
    return loss, g_value


def continuous_grads(out: torch.Tensor, value: torch.Tensor, log_std: torch.Tensor, mb: Minibatch, eps: float,
                     beta: float) -> LossGrads:
    """Gaussian policy with state-independent log_std; `out` is the mean."""
    k = out.shape[1]
    inv_std = torch.exp(-log_std)
    z = (mb.actions - out).mul_(inv_std)
    z2 = z.square()
    logp = z2.sum(1).mul_(-0.5).sub_(log_std.sum() + k * HALF_LOG_2PI)
    policy_loss, g_logp = _policy_term(logp, mb, eps)
    value_loss, g_value = _value_term(value, mb, eps)
    g_logp = g_logp.unsqueeze(1)
    g_out = z.mul_(g_logp).mul_(inv_std)  # d logp / d mean = z / std
    g_log_std = z2.sub_(1.0).mul_(g_logp).sum(0).sub_(beta)  # d logp / d log_std = z^2 - 1; entropy adds 1 each
    entropy = log_std.sum() + k * (0.5 + HALF_LOG_2PI)
    return LossGrads(g_out, g_value, g_log_std, torch.stack([policy_loss, value_loss, entropy]))


def discrete_grads(out: torch.Tensor, value: torch.Tensor, branches: tuple[int, ...], mb: Minibatch, eps: float,
                   beta: float) -> LossGrads:
    """Independent categorical branches over slices of `out` (the logits)."""
    batch = out.shape[0]
    log_p, probs, logp, entropy, start = [], [], 0, 0, 0
    for i, b in enumerate(branches):
        ls = torch.log_softmax(out[:, start:start + b], 1)
        p = ls.exp()
        log_p.append(ls)
        probs.append(p)
        logp = logp + ls.gather(1, mb.actions[:, i:i + 1]).squeeze(1)
        entropy = entropy - (p * ls).sum(1)
        start += b
    policy_loss, g_logp = _policy_term(logp, mb, eps)
    value_loss, g_value = _value_term(value, mb, eps)
    g_out = torch.empty_like(out)
    start = 0
    for i, b in enumerate(branches):
        ls, p = log_p[i], probs[i]
        onehot = torch.zeros_like(p).scatter_(1, mb.actions[:, i:i + 1], 1.0)
        h = -(p * ls).sum(1, keepdim=True)
        # d logp / d logits = onehot - p; d entropy / d logits = -p (log p + H)
        g_out[:, start:start + b] = g_logp.unsqueeze(1) * (onehot - p) + (beta / batch) * p * (ls + h)
        start += b
    return LossGrads(g_out, g_value, None, torch.stack([policy_loss, value_loss, entropy.mean()]))
